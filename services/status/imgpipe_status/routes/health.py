from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from imgpipe_status.deps import BrokerDep, RepositoryDep
from imgpipe_status.schemas import Health

router = APIRouter()


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
async def healthz(broker: BrokerDep, repository: RepositoryDep) -> JSONResponse:
    database = await repository.ping()
    ok = broker.is_connected and database
    body = Health(
        status="ok" if ok else "unavailable", broker=broker.is_connected, database=database
    )
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
