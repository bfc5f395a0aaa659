"""The ingest app factory: builds clients in the lifespan, mounts the routes."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgpipe_ingest import metrics
from imgpipe_ingest.access import UPLOAD_PATHS, UploadAccess
from imgpipe_ingest.body_limit import BodySizeLimit
from imgpipe_ingest.bootstrap import bootstrap
from imgpipe_ingest.config import Settings
from imgpipe_ingest.routes import upload
from imgpipe_ingest.schemas import ProblemOut, UploadRejected
from imgpipe_runtime.web import service_app


async def form_rejected(request: Request, exc: Exception) -> JSONResponse:
    """Form errors in the same shape as CSV problems, so clients parse one error format."""
    assert isinstance(exc, RequestValidationError)
    problems = [
        ProblemOut(
            line=None,
            message=f"{'.'.join(str(p) for p in error['loc'][1:]) or 'form'}: {error['msg']}",
        )
        for error in exc.errors()
    ]
    body = UploadRejected(
        detail="the form is incomplete or invalid; send the CSV as the multipart field 'file'",
        problems=problems,
    )
    return JSONResponse(body.model_dump(), status_code=422)


class UploadOutcomes:
    """Counts every upload's answer by status. Middleware, because the answer may come from
    the route, the form-error handler or BodySizeLimit's 413, which this wraps."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] not in UPLOAD_PATHS
        ):
            await self.app(scope, receive, send)
            return
        status: int | None = None

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except Exception:
            status = status or 500  # what the server error middleware outside us answers
            raise
        finally:
            # None: the client went away before any answer; that is no verdict on the upload.
            if status == 202:
                metrics.UPLOADS_ACCEPTED.inc()
            elif status is not None:
                metrics.UPLOADS_REJECTED.labels(str(status)).inc()


def create_app(settings: Settings) -> FastAPI:
    app = service_app(
        "imgpipe ingest",
        "Upload a CSV of products and image URLs; get a request id at once.",
        settings,
        lambda: bootstrap(settings),
    )
    # Added innermost first: UploadAccess decides the tenant's cap before BodySizeLimit reads
    # the body, and UploadOutcomes counts every answer, 401, 413 and 429 included.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes)
    app.add_middleware(UploadAccess)
    app.add_middleware(UploadOutcomes)
    # The dashboard (served by the status service) uploads from the browser.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins(),
        allow_methods=["POST", "GET"],
        allow_headers=["*"],
    )
    app.add_exception_handler(RequestValidationError, form_rejected)
    app.include_router(upload.router)

    return app
