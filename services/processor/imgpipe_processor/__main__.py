"""`python -m imgpipe_processor`: the image worker."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

import prometheus_client

from imgpipe_processor.bootstrap import bootstrap
from imgpipe_processor.config import Settings
from imgpipe_runtime import eventloop, tracing
from imgpipe_runtime.files import exit_unless_store_usable
from imgpipe_runtime.logs import configure_logging
from imgpipe_runtime.settings import load_settings

log = logging.getLogger("imgpipe_processor")


async def run(settings: Settings, stop: asyncio.Event, ready: asyncio.Event) -> None:
    """Consume until `stop` is set; `ready` is set once start-up is done."""
    try:
        async with bootstrap(settings):
            log.info("processor consuming with %d image workers", settings.workers)
            # Start-up's objects out of the collector's way (see imgpipe_runtime.web).
            gc.freeze()
            ready.set()
            await stop.wait()
    finally:
        tracing.shutdown()


def serve_metrics(settings: Settings) -> None:
    """Serve /metrics from a daemon thread. A busy port (a second processor on this host)
    costs only the endpoint: the worker itself still runs."""
    try:
        prometheus_client.start_http_server(settings.metrics_port, addr=settings.host)
    except OSError as exc:
        log.warning("no /metrics on %s:%d: %s", settings.host, settings.metrics_port, exc)
        return
    log.info("metrics at http://%s:%d/metrics", settings.host, settings.metrics_port)


def main() -> None:
    settings = load_settings(Settings)
    configure_logging(settings.log_level, "processor", settings.log_format)
    tracing.start("processor")
    exit_unless_store_usable(settings)
    serve_metrics(settings)

    async def _main() -> None:
        stop, ready = asyncio.Event(), asyncio.Event()
        work = asyncio.create_task(run(settings, stop, ready))

        def on_signal() -> None:
            # Once consuming, stop lets the jobs in hand finish. During start-up there is
            # nothing to finish, and start-up may be waiting for a broker or database that
            # is gone (one that died with the launcher): cancelling is the way out.
            if ready.is_set():
                stop.set()
            else:
                work.cancel()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        try:
            await work
        except asyncio.CancelledError:
            if not work.cancelled():
                raise

    eventloop.run(_main())


if __name__ == "__main__":
    main()
