from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter()


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    ok = bool(request.app.state.broker.is_connected)
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "broker": ok}, status_code=200 if ok else 503
    )
