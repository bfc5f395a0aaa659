"""The event loop a service runs on: uvloop when it is installed, asyncio's own otherwise.

uvloop is a dependency of every service, to take event-loop CPU off the cores that the image
workers need. Its presence alone decides, as it does for the HTTP services through uvicorn's
`loop="auto"`: uninstalling it is the way back to asyncio's loop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
