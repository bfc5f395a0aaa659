"""Builds the status service's adapters once, wires its consumers, the completion relay and
the collector, and closes everything on the way out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

from pymongo.asynchronous.database import AsyncDatabase

from imgpipe_contracts.topology import (
    STATUS_IMAGE_BATCH,
    STATUS_IMAGE_OUTCOME,
    STATUS_WEBHOOK_OUTCOME,
)
from imgpipe_runtime.auth import Authenticator, KeyStore
from imgpipe_runtime.broker import Broker, running_broker
from imgpipe_runtime.files import FileStore, open_file_store
from imgpipe_runtime.health import Health, health_of
from imgpipe_runtime.links import LinkSigner, link_signer
from imgpipe_runtime.mongo import Document, connected_database, ping
from imgpipe_status.assembly import Assembly
from imgpipe_status.collector import Collected, collect
from imgpipe_status.config import Settings
from imgpipe_status.handlers import (
    handle_image_batches,
    handle_image_outcomes,
    handle_webhook_outcome,
    relay_pending_completions,
)
from imgpipe_status.progress import ProgressCache, load_snapshot
from imgpipe_status.repository import StatusRepository
from imgpipe_status.retention import RetentionRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Status:
    """Everything the status service talks to."""

    db: AsyncDatabase[Document]
    repository: StatusRepository
    broker: Broker
    files: FileStore
    authenticator: Authenticator
    signer: LinkSigner | None
    progress_cache: ProgressCache
    retention: RetentionRepository

    async def health(self) -> Health:
        return health_of(self.broker.is_connected, await ping(self.db))


@asynccontextmanager
async def bootstrap(settings: Settings) -> AsyncIterator[Status]:
    """Connect, consume outcomes and webhook results, relay unpublished completions, collect
    what is no longer referred to; stop and close everything after."""
    signer = link_signer(settings)
    async with (
        connected_database(settings) as db,
        open_file_store(settings, signer) as files,
        running_broker(settings, "imgpipe-status") as broker,
    ):
        repository = StatusRepository(db)
        status = Status(
            db,
            repository,
            broker,
            files,
            Authenticator(KeyStore(db), settings.api_keys, settings.key_cache_seconds),
            signer,
            ProgressCache(
                partial(load_snapshot, repository=repository, files=files),
                settings.status_cache_seconds,
            ),
            RetentionRepository(db),
        )
        # Shared by both consumers: a row's product needs its row and its outcomes.
        assembly = Assembly(settings.assembly_images)
        await broker.consume_batches(
            STATUS_IMAGE_OUTCOME,
            partial(
                handle_image_outcomes,
                repository=status.repository,
                broker=broker,
                files=status.files,
                progress_cache=status.progress_cache,
                assembly=assembly,
            ),
            batch_size=settings.batch_size,
            max_wait=settings.batch_wait,
        )
        await broker.consume_batches(
            STATUS_IMAGE_BATCH,
            partial(
                handle_image_batches,
                repository=status.repository,
                broker=broker,
                files=status.files,
                progress_cache=status.progress_cache,
                assembly=assembly,
            ),
            batch_size=settings.row_batch_messages,
            max_wait=settings.batch_wait,
        )
        await broker.consume(
            STATUS_WEBHOOK_OUTCOME,
            partial(
                handle_webhook_outcome,
                repository=status.repository,
                progress_cache=status.progress_cache,
            ),
            prefetch=settings.prefetch,
        )
        tasks = [
            asyncio.create_task(_relay_forever(status, settings)),
            asyncio.create_task(_collect_forever(status, settings)),
        ]
        try:
            yield status
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def _relay_forever(status: Status, settings: Settings) -> None:
    while True:
        await asyncio.sleep(settings.outbox_interval)
        try:
            await relay_pending_completions(
                repository=status.repository, broker=status.broker, grace=settings.outbox_grace
            )
        except Exception:
            log.exception("completion relay failed; trying again in %ss", settings.outbox_interval)


async def _collect_forever(status: Status, settings: Settings) -> None:
    # Every status process runs one: each removal is claimed by a conditional write first.
    while True:
        await asyncio.sleep(settings.collect_interval)
        try:
            collected = await collect(
                retention=status.retention,
                files=status.files,
                progress_cache=status.progress_cache,
                orphan_grace=settings.orphan_grace,
                retention_days=settings.retention_days,
            )
        except Exception:
            log.exception("collector failed; trying again in %ss", settings.collect_interval)
            continue
        if collected != Collected():
            log.info("collector: %s", collected)
