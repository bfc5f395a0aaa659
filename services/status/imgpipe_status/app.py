"""The status app factory: HTTP API, static files and the outcome consumer in one process."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from imgpipe_runtime.web import service_app
from imgpipe_status.bootstrap import bootstrap
from imgpipe_status.config import Settings
from imgpipe_status.routes import dashboard, files, requests, status
from imgpipe_status.routes.dashboard import DASHBOARD_DIR


def create_app(settings: Settings) -> FastAPI:
    app = service_app(
        "imgpipe status",
        "Processing status of uploads, output CSVs and processed images.",
        settings,
        lambda: bootstrap(settings),
    )
    app.include_router(status.router)
    app.include_router(requests.router)
    app.include_router(dashboard.router)

    if settings.storage_backend == "local" and not settings.auth_required:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        app.mount("/files", StaticFiles(directory=settings.data_dir), name="files")
    else:
        app.include_router(files.router)
    app.mount("/dashboard", StaticFiles(directory=DASHBOARD_DIR, html=True), name="dashboard")
    return app
