"""The web dashboard: static files (no build step) and the one setting the page needs."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from imgpipe_status.deps import SettingsDep

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"

router = APIRouter()


class DashboardConfig(BaseModel):
    ingest_url: str
    auth_required: bool


@router.get("/", include_in_schema=False)
async def home() -> RedirectResponse:
    return RedirectResponse("/dashboard/")


@router.get("/dashboard/config.json", response_model=DashboardConfig, include_in_schema=False)
async def dashboard_config(settings: SettingsDep) -> DashboardConfig:
    return DashboardConfig(
        ingest_url=settings.ingest_public_url.rstrip("/"), auth_required=settings.auth_required
    )
