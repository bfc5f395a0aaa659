"""What the three HTTP services share in wiring: a lifespan that runs the service's bootstrap,
and typed access to what it built."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from fastapi import FastAPI, Request

T = TypeVar("T")

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def bootstrap_lifespan(open_adapters: Callable[[], AbstractAsyncContextManager[Any]]) -> Lifespan:
    """A lifespan that opens the adapters when the server starts (inside its event loop),
    keeps them in `app.state.adapters` while it serves, and closes them when it stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_adapters() as adapters:
            app.state.adapters = adapters
            yield

    return lifespan


def from_state(name: str, kind: type[T]) -> Callable[[Request], T]:
    """A FastAPI dependency returning `app.state.<name>`, checked to be a `kind`."""

    def dependency(request: Request) -> T:
        value = getattr(request.app.state, name)
        if not isinstance(value, kind):
            raise TypeError(f"app.state.{name} is a {type(value).__name__}, not a {kind.__name__}")
        return value

    return dependency
