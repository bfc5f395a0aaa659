"""One database round trip for what many images ask at about the same time.

A single write costs the database 2-5 ms (it is made durable on its own), a write inside a
bulk about half a millisecond; the jobs of a batch message reach the same step together. So
reads by `_id` that arrive within a short window become one `find` with `$in`, writes one
unordered `bulk_write`, and items for pages (PageWriter) one document per group; each caller
still gets its own answer, or its own error.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pymongo import InsertOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from imgpipe_contracts import documents
from imgpipe_runtime.mongo import Document

Write = InsertOne[Document] | UpdateOne


class _Window:
    """Calls `flush(items)` with the items added together.

    A lone addition goes at the next turn of the event loop, with whatever the other jobs of
    its batch message add in the same turn: a single image waits for nothing. In a stream
    (`STREAM` additions within `seconds`) the first of the next group waits for company, so
    that one round trip serves many images: until `enough` items are there, until the stream
    pauses for `quiet` seconds (at its end: a request's last images wait no longer than
    that), or for `seconds` at most.
    """

    STREAM = 3

    def __init__(
        self,
        seconds: float,
        enough: int,
        flush: Callable[[list[Any]], Any],
        quiet: float = 0.05,
    ) -> None:
        self._seconds = seconds
        self._enough = enough
        self._quiet = quiet
        self._flush = flush
        self._pending: list[Any] = []
        self._timer: asyncio.Handle | None = None
        self._deadline = 0.0
        self._recent: deque[float] = deque(maxlen=self.STREAM)
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, item: Any) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        streaming = len(self._recent) == self.STREAM and now - self._recent[0] < self._seconds
        self._recent.append(now)
        self._pending.append(item)
        if len(self._pending) >= self._enough:
            self._go()
        elif self._timer is None:
            if streaming:
                self._deadline = now + self._seconds
                self._timer = loop.call_later(min(self._quiet, self._seconds), self._wait)
            else:
                self._timer = loop.call_soon(self._go)

    def _wait(self) -> None:
        # One timer per group, moved on while additions keep coming (not one per addition).
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = min(self._recent[-1] + self._quiet, self._deadline)
        if now + 0.001 >= due:
            self._go()
        else:
            self._timer = loop.call_later(due - now, self._wait)

    def _go(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if not batch:
            return
        task = asyncio.create_task(self._flush(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class BatchedReader:
    """`get(_id)`: the document or None, read with others in one query."""

    def __init__(
        self,
        collection: AsyncCollection[Document],
        window: float = 0.02,
        enough: int = 32,
        projection: Document | None = None,
    ) -> None:
        self._collection = collection
        self._projection = projection
        self._window = _Window(window, enough, self._read)

    async def get(self, key: str) -> Document | None:
        done: asyncio.Future[Document | None] = asyncio.get_running_loop().create_future()
        self._window.add((key, done))
        return await done

    async def _read(self, batch: list[tuple[str, asyncio.Future[Document | None]]]) -> None:
        try:
            keys = list({key for key, _ in batch})
            cursor = self._collection.find({"_id": {"$in": keys}}, self._projection)
            found = {doc["_id"]: doc async for doc in cursor}
        except Exception as exc:
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for key, done in batch:
            if not done.done():
                done.set_result(found.get(key))


class BatchedWriter:
    """`write(op)`: done once the op is applied in one bulk with others. An insert that meets
    an existing `_id` raises DuplicateKeyError to its caller alone."""

    # SecantusDB's cost per inserted document falls with the size of the bulk (0.53 ms with an
    # index at 11 per bulk, 0.37 at 50): a cold run's new sources (60 a second here) went in
    # bulks of 21-24 (10-11 with 200 ms windows). A faster stream fills `enough` sooner.
    def __init__(
        self, collection: AsyncCollection[Document], window: float = 0.5, enough: int = 64
    ) -> None:
        self._collection = collection
        self._window = _Window(window, enough, self._send)

    async def write(self, op: Write) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._window.add((op, done))
        await done

    async def _send(self, batch: list[tuple[Write, asyncio.Future[None]]]) -> None:
        failed: dict[int, Exception] = {}
        try:
            await self._collection.bulk_write([op for op, _ in batch], ordered=False)
        except BulkWriteError as exc:
            for error in exc.details.get("writeErrors", []):
                failed[error["index"]] = (
                    DuplicateKeyError(error.get("errmsg", "duplicate key"))
                    if error.get("code") == documents.DUPLICATE_KEY
                    else exc
                )
            if exc.details.get("writeConcernErrors"):
                failed = dict.fromkeys(range(len(batch)), exc)
        except Exception as exc:
            failed = dict.fromkeys(range(len(batch)), exc)
        for index, (_, done) in enumerate(batch):
            if done.done():
                continue
            if index in failed:
                done.set_exception(failed[index])
            else:
                done.set_result(None)


class PageWriter:
    """`add(group, item)`: done once `item` is stored, in one new document per group and window
    (`{_id, <group_field>: group, <items_field>: [item, ...], at}`) with the items added with it.

    For records that are only ever asked "which items has a group" and "which groups have an
    item" (an index on each field; the second is multikey): SecantusDB stores 32 items in one
    document for a fifth of what 32 documents cost (0.12 against 0.56 ms per item, measured
    here). An item added again in another window is stored again: readers count groups, not
    documents.
    """

    def __init__(
        self,
        collection: AsyncCollection[Document],
        group_field: str,
        items_field: str,
        window: float = 0.5,
        enough: int = 64,
    ) -> None:
        self._collection = collection
        self._group_field = group_field
        self._items_field = items_field
        self._window = _Window(window, enough, self._send)

    async def add(self, group: str, item: str) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._window.add((group, item, done))
        await done

    async def _send(self, batch: list[tuple[str, str, asyncio.Future[None]]]) -> None:
        pages: dict[str, dict[str, None]] = {}
        for group, item, _ in batch:
            pages.setdefault(group, {})[item] = None
        now = datetime.now(UTC)
        docs = [
            {
                "_id": uuid.uuid4().hex,
                self._group_field: group,
                self._items_field: list(items),
                "at": now,
            }
            for group, items in pages.items()
        ]
        failure: Exception | None = None
        try:
            await self._collection.insert_many(docs, ordered=False)
        except Exception as exc:
            failure = exc
        for _, _, done in batch:
            if done.done():
                continue
            if failure is not None:
                done.set_exception(failure)
            else:
                done.set_result(None)
