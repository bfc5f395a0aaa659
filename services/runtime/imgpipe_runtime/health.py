"""`GET /healthz`, the same in every HTTP service: 200 when every dependency answers, else 503."""

from __future__ import annotations

from typing import Protocol

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict


class Health(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"status": "ok", "broker": True, "database": True},
                {"status": "unavailable", "broker": True, "database": False},
            ]
        }
    )

    status: str
    broker: bool
    database: bool | None = None


class Checkable(Protocol):
    """What a service's bootstrap offers a health check."""

    async def health(self) -> Health: ...


def health_router() -> APIRouter:
    """`/healthz` over the adapters in `app.state.adapters` (put there by the lifespan)."""
    router = APIRouter()

    @router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
    async def healthz(request: Request) -> JSONResponse:
        adapters: Checkable = request.app.state.adapters
        health = await adapters.health()
        code = 200 if health.status == "ok" else 503
        return JSONResponse(health.model_dump(exclude_none=True), status_code=code)

    return router


def health_of(broker: bool, database: bool | None = None) -> Health:
    """`ok` only when the broker and (where there is one) the database answer."""
    ok = broker and database is not False
    return Health(status="ok" if ok else "unavailable", broker=broker, database=database)
