"""Bulk reads and writes (imgpipe_processor.batching) against the real database, counting the
commands that reach it: a lone request goes at once, a stream shares round trips, and each
caller gets its own answer or its own error."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient, InsertOne
from pymongo.errors import BulkWriteError, DuplicateKeyError
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from imgpipe_processor.batching import BatchedReader, BatchedWriter, PageWriter
from tests.conftest import Namespace

COLLECTION = "batched"


class Commands(CommandListener):
    """The commands sent to the test's collection, by name."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()

    def started(self, event: CommandStartedEvent) -> None:
        if event.command.get(event.command_name) == COLLECTION:
            self.sent[event.command_name] += 1

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def counted(
    ns: Namespace,
) -> AsyncIterator[tuple[AsyncMongoClient[dict[str, object]], Commands]]:
    commands = Commands()
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        ns.mongodb_url, event_listeners=[commands]
    )
    yield client, commands
    await client.close()


async def test_a_lone_write_goes_at_once_in_a_command_of_its_own(
    ns: Namespace, counted: tuple[AsyncMongoClient[dict[str, object]], Commands]
) -> None:
    client, commands = counted
    writer = BatchedWriter(client[ns.database][COLLECTION], window=30.0)  # type: ignore[arg-type]
    await asyncio.wait_for(writer.write(InsertOne({"_id": "alone"})), timeout=5)
    assert commands.sent["insert"] == 1


async def test_writes_made_together_share_bulk_commands_of_at_most_enough(
    ns: Namespace, counted: tuple[AsyncMongoClient[dict[str, object]], Commands]
) -> None:
    client, commands = counted
    writer = BatchedWriter(client[ns.database][COLLECTION], enough=16)  # type: ignore[arg-type]
    await asyncio.gather(*(writer.write(InsertOne({"_id": n})) for n in range(40)))
    assert commands.sent["insert"] == 3  # 16 + 16 + the 8 left, sent at the next turn
    assert await client[ns.database][COLLECTION].count_documents({}) == 40


async def test_a_stream_of_reads_waits_for_company(
    ns: Namespace, counted: tuple[AsyncMongoClient[dict[str, object]], Commands]
) -> None:
    client, commands = counted
    await client[ns.database][COLLECTION].insert_many([{"_id": n} for n in range(12)])
    reader = BatchedReader(client[ns.database][COLLECTION], window=0.5)  # type: ignore[arg-type]

    async def one_every_10_ms(n: int) -> object:
        await asyncio.sleep(n * 0.01)
        return await reader.get(n)  # type: ignore[arg-type]

    found = await asyncio.gather(*(one_every_10_ms(n) for n in range(12)))
    assert [doc["_id"] for doc in found] == list(range(12))  # type: ignore[index]
    # At most the first three go alone (no stream yet); the rest share the fourth's window.
    assert commands.sent["find"] <= 4


async def test_the_end_of_a_stream_of_writes_waits_only_for_a_pause(
    ns: Namespace, counted: tuple[AsyncMongoClient[dict[str, object]], Commands]
) -> None:
    client, commands = counted
    writer = BatchedWriter(client[ns.database][COLLECTION], window=30.0)  # type: ignore[arg-type]

    async def one_every_10_ms(n: int) -> None:
        await asyncio.sleep(n * 0.01)
        await writer.write(InsertOne({"_id": n}))

    # Without the pause, the stream's last group would wait for the 30 s window.
    await asyncio.wait_for(asyncio.gather(*(one_every_10_ms(n) for n in range(12))), timeout=5)
    assert commands.sent["insert"] <= 4  # the first three alone at most, the rest together


async def test_a_duplicate_insert_fails_its_own_caller_alone(
    ns: Namespace, counted: tuple[AsyncMongoClient[dict[str, object]], Commands]
) -> None:
    client, _ = counted
    await client[ns.database][COLLECTION].insert_one({"_id": "taken"})
    writer = BatchedWriter(client[ns.database][COLLECTION])  # type: ignore[arg-type]
    results = await asyncio.gather(
        writer.write(InsertOne({"_id": "taken"})),
        writer.write(InsertOne({"_id": "free"})),
        return_exceptions=True,
    )
    assert isinstance(results[0], DuplicateKeyError)
    assert results[1] is None


async def test_items_added_together_go_in_one_page_per_group_in_one_command(
    ns: Namespace, counted: tuple[AsyncMongoClient[dict[str, object]], Commands]
) -> None:
    client, commands = counted
    collection = client[ns.database][COLLECTION]
    pages = PageWriter(collection, "group", "items")  # type: ignore[arg-type]
    added = [("a", "x"), ("b", "y"), ("a", "z"), ("a", "x")]
    await asyncio.gather(*(pages.add(group, item) for group, item in added))
    found = sorted([(page["group"], page["items"]) async for page in collection.find()])
    assert found == [("a", ["x", "z"]), ("b", ["y"])]
    assert commands.sent["insert"] == 1


async def test_a_page_that_cannot_be_written_fails_every_caller_in_it(
    ns: Namespace, counted: tuple[AsyncMongoClient[dict[str, object]], Commands]
) -> None:
    client, _ = counted
    collection = client[ns.database][COLLECTION]
    await collection.create_index("items", unique=True)
    await collection.insert_one({"_id": "first", "items": ["x"]})
    pages = PageWriter(collection, "group", "items")  # type: ignore[arg-type]
    results = await asyncio.gather(pages.add("a", "x"), pages.add("a", "y"), return_exceptions=True)
    assert all(isinstance(result, DuplicateKeyError | BulkWriteError) for result in results)
