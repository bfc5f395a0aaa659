"""`python -m imgpipe_processor`: the image worker."""

from __future__ import annotations

import asyncio
import logging
import signal
from functools import partial

import prometheus_client

from imgpipe_contracts.logs import configure_logging
from imgpipe_contracts.messaging import Broker
from imgpipe_contracts.topology import PROCESSOR_IMAGE_REQUESTED
from imgpipe_processor.config import Settings
from imgpipe_processor.fetch import FetchLimits, download, make_session
from imgpipe_processor.handlers import handle_image_requested
from imgpipe_processor.pool import ImagePool
from imgpipe_processor.storage import LocalStorage

log = logging.getLogger("imgpipe_processor")


async def run(settings: Settings, stop: asyncio.Event) -> None:
    pool = ImagePool(settings.workers, settings.max_pixels, settings.jpeg_quality)
    broker = Broker(settings, "imgpipe-processor")
    session = make_session(
        allow_private=settings.imgpipe_allow_private_networks,
        allowed_networks=settings.imgpipe_allowed_networks,
        connect_timeout=settings.connect_timeout,
        total_timeout=settings.download_timeout,
        per_host=settings.downloads_per_host,
    )
    try:
        await broker.start()
        limits = FetchLimits(settings.max_download_bytes, settings.max_redirects)
        handler = partial(
            handle_image_requested,
            fetch=partial(download, session, limits=limits),
            pool=pool,
            storage=LocalStorage(settings.data_dir, settings.public_base_url),
            broker=broker,
        )
        await broker.consume(PROCESSOR_IMAGE_REQUESTED, handler, prefetch=settings.prefetch)
        log.info("processor consuming with %d image workers", settings.workers)
        await stop.wait()
    finally:
        await broker.close()
        await session.close()
        pool.shutdown()


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
    settings = Settings()
    configure_logging(settings.log_level, "processor", settings.log_format)
    serve_metrics(settings)

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    asyncio.run(_main())


if __name__ == "__main__":
    main()
