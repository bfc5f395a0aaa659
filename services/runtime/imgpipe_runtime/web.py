"""What the three HTTP services share in wiring: the app with its lifespan, which runs the
service's bootstrap, its health and metrics routes, and typed access to what it built."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from imgpipe_runtime import tracing
from imgpipe_runtime.auth import BAD_KEY, NO_KEY
from imgpipe_runtime.health import health_router
from imgpipe_runtime.metrics import metrics_router

T = TypeVar("T")

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def bootstrap_lifespan(open_adapters: Callable[[], AbstractAsyncContextManager[Any]]) -> Lifespan:
    """A lifespan that opens the adapters when the server starts (inside its event loop),
    keeps them in `app.state.adapters` while it serves, and closes them when it stops; then
    sends the spans still buffered (tracing on)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            async with open_adapters() as adapters:
                app.state.adapters = adapters
                # What start-up built lives as long as the process: out of the collector's
                # way, a full collection walks only what requests allocate (pauses of tens
                # of ms otherwise, in front of whatever request is waiting).
                gc.freeze()
                yield
        finally:
            tracing.shutdown()

    return lifespan


def service_app(
    title: str,
    description: str,
    settings: object,
    open_adapters: Callable[[], AbstractAsyncContextManager[Any]],
) -> FastAPI:
    """The FastAPI app of one service: its settings in `app.state.settings`, its adapters
    opened by the lifespan, and `/healthz` and `/metrics` over them."""
    app = FastAPI(
        title=title,
        version="0.1.0",
        description=description,
        lifespan=bootstrap_lifespan(open_adapters),
    )
    app.state.settings = settings
    app.include_router(health_router())
    app.include_router(metrics_router())
    return app


_bearer = HTTPBearer(
    auto_error=False,
    description="An API key (`imgpipe keys create TENANT`); needed when AUTH_MODE=required.",
)
BearerKey = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


async def caller_tenant(request: Request, credentials: BearerKey) -> str | None:
    """The tenant whose key the request carries; None when AUTH_MODE=off (everyone may)."""
    if not request.app.state.settings.auth_required:
        return None
    if credentials is None:
        raise unauthorized(NO_KEY)
    tenant: str | None = await request.app.state.adapters.authenticator.tenant_for(
        credentials.credentials
    )
    if tenant is None:
        raise unauthorized(BAD_KEY)
    return tenant


Tenant = Annotated[str | None, Depends(caller_tenant)]


def adapter(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A FastAPI dependency returning the adapter `name` that the bootstrap built (typed by
    the `Annotated` alias that uses it).

    Coroutines, like `from_state`'s, though nothing here waits: FastAPI runs a plain `def`
    dependency in its thread pool, a round trip through another thread on every request
    (under load, the poller's answer then waits for that thread to get a core)."""

    async def dependency(request: Request) -> Any:
        return getattr(request.app.state.adapters, name)

    return dependency


def from_state(name: str, kind: type[T]) -> Callable[[Request], Awaitable[T]]:
    """A FastAPI dependency returning `app.state.<name>`, checked to be a `kind`."""

    async def dependency(request: Request) -> T:
        value = getattr(request.app.state, name)
        if not isinstance(value, kind):
            raise TypeError(f"app.state.{name} is a {type(value).__name__}, not a {kind.__name__}")
        return value

    return dependency
