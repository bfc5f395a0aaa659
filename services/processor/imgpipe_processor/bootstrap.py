"""Builds the processor's adapters once, wires its handler, and closes them on the way out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial

import aiohttp

from imgpipe_contracts.topology import PROCESSOR_LANES
from imgpipe_processor.caching import output_fingerprint
from imgpipe_processor.config import Settings
from imgpipe_processor.fetch import FetchLimits, download_session, fetch
from imgpipe_processor.handlers import Make, handle_image_jobs, handle_image_requested
from imgpipe_processor.limiter import HostLimiter
from imgpipe_processor.outcomes import OutcomeBatcher, Slots
from imgpipe_processor.pool import ImagePool
from imgpipe_processor.reuse import Maker, Reuser, make_anew
from imgpipe_processor.sources import SourceStore
from imgpipe_runtime.broker import Broker, running_broker
from imgpipe_runtime.files import FileStore, open_file_store
from imgpipe_runtime.links import link_signer
from imgpipe_runtime.mongo import connected_database


@dataclass(frozen=True)
class Processor:
    """Everything the processor talks to."""

    broker: Broker
    session: aiohttp.ClientSession
    pool: ImagePool
    files: FileStore


@asynccontextmanager
async def bootstrap(settings: Settings) -> AsyncIterator[Processor]:
    """Start the image pool, open the download session, the database (for reuse) and the
    broker link, consume image jobs; stop and close everything after."""
    pool = ImagePool(
        settings.workers, settings.max_pixels, settings.jpeg_quality, settings.worker_nice
    )
    try:
        await pool.warm_up()
        # Made after the warm-up: a start-up cancelled during it (SIGTERM before the
        # processor consumes) then leaves no unclosed session behind.
        session = download_session(
            settings,
            connect_timeout=settings.connect_timeout,
            total_timeout=settings.download_timeout,
            per_host=settings.downloads_per_host,
        )
        async with (
            session,
            open_file_store(settings, link_signer(settings)) as files,
            AsyncExitStack() as stack,
            running_broker(settings, "imgpipe-processor") as broker,
        ):
            processor = Processor(broker, session, pool, files)
            limits = FetchLimits(settings.max_download_bytes, settings.max_redirects)
            slots = Slots(settings.images_in_progress)
            hosts = HostLimiter(
                settings.host_tuning(), lend=slots.lent, labels=settings.metrics_hosts
            )
            get = hosts.wrap(partial(fetch, session, limits=limits))
            maker = Maker(pool.recompress, files)
            make: Make
            if settings.reuse:
                db = await stack.enter_async_context(connected_database(settings))
                make = Reuser(
                    SourceStore(db),
                    files,
                    get,
                    maker,
                    fingerprint=output_fingerprint(settings.jpeg_quality),
                    reuse_scope=settings.reuse_scope,
                    lease_seconds=settings.reuse_lease,
                ).image_for
            else:
                make = partial(make_anew, fetch=get, make=maker)
            outcomes = OutcomeBatcher(broker, slots, max_wait=settings.outcome_wait)
            handle_one = partial(
                handle_image_requested, make=make, files=processor.files, broker=outcomes
            )
            per_batch = max(1, settings.images_in_progress // settings.batch_prefetch)
            for lane in PROCESSOR_LANES:
                handler = partial(
                    handle_image_jobs,
                    handle_one=handle_one,
                    defer=partial(broker.defer, lane),
                    slots=slots,
                    per_batch=per_batch,
                    finished=outcomes.send_soon,
                )
                await broker.consume(lane, handler, prefetch=settings.batch_prefetch)
            yield processor
    finally:
        pool.shutdown()
