"""Every service's event loop is uvloop's when uvloop is installed, asyncio's when it is not."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop
from uvicorn.loops.auto import auto_loop_factory

from imgpipe_runtime import eventloop


async def loop_type() -> type[asyncio.AbstractEventLoop]:
    return type(asyncio.get_running_loop())


def test_the_processor_runs_on_uvloop_when_it_is_installed() -> None:
    assert eventloop.run(loop_type()) is uvloop.Loop


def test_without_uvloop_it_runs_on_asyncios_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what an uninstalled module looks like

    used = eventloop.run(loop_type())

    assert used is not uvloop.Loop
    assert issubclass(used, asyncio.BaseEventLoop)


def test_the_http_services_loop_is_uvloop_when_it_is_installed() -> None:
    # serve_http runs uvicorn with loop="auto", which names this factory.
    loop = auto_loop_factory()()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
