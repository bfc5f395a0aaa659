"""A job's image from earlier work wherever that is exact, made anew otherwise.

For each source (a URL in a reuse scope) the shared `sources` record keeps the last answer's
validators and lifetime and the output made of its bytes. A job then, in order of cost:
reuses that output without asking the origin (the same URL earlier in the same request, or
within the origin's max-age), asks with a conditional GET (304: reuse), or downloads; bytes
already known are not encoded again. Only one processor at a time fetches a source (a lease
in the database); the others wait for its answer instead of fetching too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from cachetools import LRUCache

from imgpipe_contracts.events import ImageRequested, Reuse
from imgpipe_processor import metrics
from imgpipe_processor.caching import (
    ReuseScope,
    answer_changed,
    conditional_headers,
    freshness,
    may_skip_asking,
    output_id,
    scope_of,
    shared_key,
    source_id,
)
from imgpipe_processor.fetch import Fetched
from imgpipe_processor.sources import Lease, OutputBeingRemoved, SourceStore, output_about
from imgpipe_processor.transform import Recompressed
from imgpipe_runtime.files import FileStore
from imgpipe_runtime.mongo import Document
from imgpipe_runtime.retry import Unavailable

Fetch = Callable[[str, dict[str, str] | None], Awaitable[Fetched]]
Recompress = Callable[[bytes], Awaitable[Recompressed]]

# (request, source) pairs remembered per process: the same URL again in a request costs nothing.
MEMO_ENTRIES = 100_000


@dataclass(frozen=True)
class Made:
    """A job's stored image: where it is and what it is."""

    key: str
    width: int
    height: int
    source_format: str
    bytes_in: int
    bytes_out: int
    reused: Reuse | None = None
    shared: bool = False


def _made(doc: Document, reused: Reuse) -> Made:
    return Made(
        doc["key"],
        doc["width"],
        doc["height"],
        doc["source_format"],
        doc["bytes_in"],
        doc["bytes_out"],
        reused,
        shared=True,
    )


async def make_anew(job: ImageRequested, key: str, *, fetch: Fetch, make: Maker) -> Made:
    """Download and encode the job's image into its own key (REUSE=off)."""
    with metrics.DOWNLOAD_SECONDS.time():
        fetched = await fetch(job.url, None)
    assert fetched.body is not None
    metrics.FULL_DOWNLOADS.inc()
    return await make(fetched.body, key, shared=False)


class Maker:
    """Encodes bytes and stores the JPEG under a key."""

    def __init__(self, recompress: Recompress, files: FileStore) -> None:
        self._recompress = recompress
        self._files = files

    async def __call__(self, body: bytes, key: str, *, shared: bool) -> Made:
        with metrics.PROCESSING_SECONDS.time():
            result = await self._recompress(body)
        metrics.ENCODES.inc()
        await self._files.write(key, result.jpeg, "image/jpeg")
        return Made(
            key,
            result.width,
            result.height,
            result.source_format,
            len(body),
            result.bytes_out,
            shared=shared,
        )


class Reuser:
    """`image_for(job, own_key)`: the job's image, reused where exact (see the module)."""

    def __init__(
        self,
        store: SourceStore,
        files: FileStore,
        fetch: Fetch,
        make: Maker,
        *,
        fingerprint: str,
        reuse_scope: ReuseScope,
        lease_seconds: float,
        poll_seconds: float = 0.1,
    ) -> None:
        self._store = store
        self._files = files
        self._fetch = fetch
        self._make = make
        self._fingerprint = fingerprint
        self._scope = reuse_scope
        self._lease = timedelta(seconds=lease_seconds)
        self._poll = poll_seconds
        self._memo: LRUCache[tuple[str, str], Made] = LRUCache(MEMO_ENTRIES)
        self._working: dict[str, asyncio.Future[None]] = {}

    async def image_for(self, job: ImageRequested, own_key: str) -> Made:
        """The job's image; `own_key` is where it goes if it may not be shared."""
        scope = scope_of(job.tenant, self._scope)
        source = source_id(scope, job.url)
        memo = (job.request_id, source)
        # One fetch per source in this process at a time; the others wait for its result.
        while (working := self._working.get(source)) is not None:
            await asyncio.wait([working])
        if (made := self._memo.get(memo)) is not None:
            metrics.REUSED.labels("fresh").inc()
            return replace(made, reused="fresh")
        done = asyncio.get_running_loop().create_future()
        self._working[source] = done
        try:
            made = await self._obtain(job, scope, source, own_key)
        finally:
            del self._working[source]
            done.set_result(None)
        if made.shared:
            self._memo[memo] = made
        return made

    async def _obtain(self, job: ImageRequested, scope: str, source: str, own_key: str) -> Made:
        poll = self._poll
        while True:
            now = datetime.now(UTC)
            known = await self._store.source(source)
            earlier = self._earlier_output(scope, known)
            if known is not None and earlier is not None:
                if may_skip_asking(
                    known.get("fresh_until"), known.get("validated_for"), job.request_id, now
                ):
                    made = await self._reuse(earlier, job, "fresh")
                    if made is not None:
                        return made
                # A known source is asked about without a lease: two processors asking at
                # once cost a conditional GET each, and a lease a write per image.
                lease = None
                break
            lease = await self._store.take_lease(source, now, now + self._lease)
            if lease is not None:
                break
            # Another processor is fetching it: its answer (or its lease's end) comes soon.
            await asyncio.sleep(poll)
            poll = min(poll * 1.5, 1.0)
        try:
            return await self._fetch_and_make(job, scope, source, known, lease, own_key)
        except BaseException:
            if lease is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._store.release(lease))
            raise

    async def _fetch_and_make(
        self,
        job: ImageRequested,
        scope: str,
        source: str,
        known: Document | None,
        lease: Lease | None,
        own_key: str,
    ) -> Made:
        earlier = self._earlier_output(scope, known)
        stored: dict[str, str] = (known or {}).get("headers") or {}
        conditions = (
            conditional_headers(stored.get("etag"), stored.get("last-modified")) if earlier else {}
        )
        fetched = await self._get(job.url, conditions)
        now = datetime.now(UTC)
        if fetched.not_modified and earlier:
            metrics.REVALIDATIONS.labels("not_modified").inc()
            made = await self._reuse(earlier, job, "not_modified")
            # An origin's 304 updates what was stored of its answer (RFC 9111 §4.3.4).
            headers = stored | fetched.headers
            if made is not None:
                changes = _validated(job, headers, now)
                # Nothing learnt (the same headers but a new Date, no lifetime): no write.
                if answer_changed(stored, headers) or changes["fresh_until"]:
                    await self._store.record(source, known, changes)
                return made
            # No such output (gone from the store, or never made with today's settings): a 304
            # cannot rebuild it, so fetch the bytes again.
            fetched = await self._get(job.url, {})
        elif conditions:
            metrics.REVALIDATIONS.labels("modified").inc()
        body = fetched.body
        assert body is not None
        if not freshness(fetched.headers, now).storable:
            # no-store / private: nothing of this answer is kept or shared.
            await self._store.forget_source(source)
            if lease is not None:
                await self._store.release(lease)
            return await self._make(body, own_key, shared=False)
        digest = hashlib.sha256(body).hexdigest()
        output = output_id(scope, digest, self._fingerprint)
        changes = _validated(job, fetched.headers, now) | {
            "scope": scope,
            "url": job.url,
            "sha256": digest,
            "output_id": output,
            "bytes": len(body),
        }
        # A new source's bytes are most likely new too: look before referring.
        made = await self._reuse(output, job, "same_bytes", look_first=known is None)
        if made is not None:
            await self._store.record(source, known, changes)
            return made
        made = await self._make(body, shared_key(output), shared=True)
        about = output_about(
            scope,
            made.key,
            made.width,
            made.height,
            made.source_format,
            made.bytes_in,
            made.bytes_out,
        )
        # The source's record goes in with the output's (one write window, not two). Should
        # the output's fail, a record that names it is harmless: a job that finds no such
        # output fetches the bytes again.
        added, recorded = await asyncio.gather(
            self._store.add_output(output, about, job.request_id, now),
            self._store.record(source, known, changes),
            return_exceptions=True,
        )
        if isinstance(added, OutputBeingRemoved):
            raise Unavailable(str(added)) from added
        for error in (added, recorded):
            if isinstance(error, BaseException):
                raise error
        # A collector that removed an earlier copy between our write and our record took
        # our file with it; now that the record refers to us, none can claim it again.
        if not await self._files.exists(made.key):
            made = await self._make(body, made.key, shared=True)
        return made

    def _earlier_output(self, scope: str, known: Document | None) -> str | None:
        """The output the source's last bytes make under today's settings (it may not exist:
        with other settings, it was never made)."""
        if known is None or not known.get("sha256"):
            return None
        return output_id(scope, known["sha256"], self._fingerprint)

    async def _get(self, url: str, conditions: dict[str, str]) -> Fetched:
        with metrics.DOWNLOAD_SECONDS.time():
            fetched = await self._fetch(url, conditions or None)
        if conditions:
            metrics.CONDITIONAL_REQUESTS.inc()
        if not fetched.not_modified:
            metrics.FULL_DOWNLOADS.inc()
        return fetched

    async def _reuse(
        self, output: str, job: ImageRequested, how: Reuse, *, look_first: bool = False
    ) -> Made | None:
        """The ready output `output`, now also the job's request's, if its file is there."""
        doc = await self._store.use_output(output, job.request_id, look_first=look_first)
        if doc is None or not await self._files.exists(doc["key"]):
            return None
        metrics.REUSED.labels(how).inc()
        return _made(doc, how)


def _validated(job: ImageRequested, headers: dict[str, str], now: datetime) -> Document:
    """What a source's record keeps of an answer just received for `job`."""
    return {
        "headers": headers,
        "fresh_until": freshness(headers, now).fresh_until,
        "validated_for": job.request_id,
        "validated_at": now,
    }
