"""The status service's cache of rendered statuses, with a fake loader and a fake clock: one
load per TTL however many poll, concurrent misses share one load, `forget` shows a write at
once, and neither a failure nor a missing request is kept."""

from __future__ import annotations

import asyncio

import pytest

from imgpipe_status.progress import ProgressCache, Snapshot

TTL = 0.5
RID = "9c6c54e4a3f14dfb8bc8ba834d08b170"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeLoader:
    """Answers from `requests`, noting its calls; sets `started` when a load begins, holds it
    at `gate` while that is closed, and raises `error` when one is set."""

    def __init__(self) -> None:
        self.requests: dict[str, Snapshot] = {}
        self.calls: list[str] = []
        self.started = asyncio.Event()
        self.gate = asyncio.Event()
        self.gate.set()
        self.error: Exception | None = None

    async def __call__(self, request_id: str) -> Snapshot | None:
        self.calls.append(request_id)
        self.started.set()
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.requests.get(request_id)


def snapshot(body: str = "{}", tenant: str | None = "acme") -> Snapshot:
    return Snapshot(tenant, "Processing", body)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def loader() -> FakeLoader:
    loader = FakeLoader()
    loader.requests[RID] = snapshot()
    return loader


@pytest.fixture
def cache(loader: FakeLoader, clock: Clock) -> ProgressCache:
    return ProgressCache(loader, TTL, timer=clock)


async def test_a_second_poll_within_the_ttl_makes_no_second_load(
    cache: ProgressCache, loader: FakeLoader, clock: Clock
) -> None:
    first = await cache.snapshot(RID, "acme")
    clock.now += TTL * 0.9

    second = await cache.snapshot(RID, "acme")

    assert first == second == snapshot()
    assert loader.calls == [RID]


async def test_a_poll_after_the_ttl_answers_at_once_and_refreshes_behind_the_answer(
    cache: ProgressCache, loader: FakeLoader, clock: Clock
) -> None:
    await cache.snapshot(RID, "acme")
    loader.requests[RID] = snapshot('{"later": true}')
    clock.now += TTL * 1.1
    loader.started.clear()
    loader.gate.clear()

    assert await cache.snapshot(RID, "acme") == snapshot()
    await loader.started.wait()
    loader.gate.set()
    answers = [await cache.snapshot(RID, "acme")]
    for _ in range(10):  # a few turns of the loop for the refresh to land
        if answers[-1] != snapshot():
            break
        await asyncio.sleep(0)
        answers.append(await cache.snapshot(RID, "acme"))
    assert answers[-1] == snapshot('{"later": true}')
    assert loader.calls == [RID, RID]


async def test_a_poll_after_twice_the_ttl_waits_for_a_fresh_load(
    cache: ProgressCache, loader: FakeLoader, clock: Clock
) -> None:
    await cache.snapshot(RID, "acme")
    loader.requests[RID] = snapshot('{"later": true}')
    clock.now += TTL * 2.1

    assert await cache.snapshot(RID, "acme") == snapshot('{"later": true}')
    assert loader.calls == [RID, RID]


async def test_concurrent_polls_of_one_request_share_a_single_load(
    cache: ProgressCache, loader: FakeLoader
) -> None:
    loader.gate.clear()
    polls = [asyncio.create_task(cache.snapshot(RID, "acme")) for _ in range(8)]
    await loader.started.wait()

    loader.gate.set()
    answers = await asyncio.gather(*polls)

    assert answers == [snapshot()] * 8
    assert loader.calls == [RID]


async def test_forget_makes_the_next_poll_load_the_change(
    cache: ProgressCache, loader: FakeLoader
) -> None:
    await cache.snapshot(RID, "acme")
    loader.requests[RID] = snapshot('{"written": true}')

    cache.forget(RID)

    assert await cache.snapshot(RID, "acme") == snapshot('{"written": true}')
    assert loader.calls == [RID, RID]


async def test_a_load_under_way_when_its_request_is_forgotten_is_not_kept(
    cache: ProgressCache, loader: FakeLoader
) -> None:
    loader.gate.clear()
    before_the_write = asyncio.create_task(cache.snapshot(RID, "acme"))
    await loader.started.wait()
    cache.forget(RID)
    loader.requests[RID] = snapshot('{"written": true}')
    loader.gate.set()
    await before_the_write

    assert await cache.snapshot(RID, "acme") == snapshot('{"written": true}')
    assert loader.calls == [RID, RID]


async def test_a_failed_load_reaches_every_waiter_and_is_not_kept(
    cache: ProgressCache, loader: FakeLoader
) -> None:
    loader.gate.clear()
    loader.error = ConnectionError("database gone")
    polls = [asyncio.create_task(cache.snapshot(RID, "acme")) for _ in range(3)]
    await loader.started.wait()
    loader.gate.set()

    answers = await asyncio.gather(*polls, return_exceptions=True)

    assert [type(a) for a in answers] == [ConnectionError] * 3
    loader.error = None
    assert await cache.snapshot(RID, "acme") == snapshot()
    assert loader.calls == [RID, RID]


async def test_a_missing_request_is_not_kept_so_it_shows_once_recorded(
    cache: ProgressCache, loader: FakeLoader
) -> None:
    new = "0" * 32

    assert await cache.snapshot(new, "acme") is None
    loader.requests[new] = snapshot()

    assert await cache.snapshot(new, "acme") == snapshot()
    assert loader.calls == [new, new]


async def test_another_tenants_request_is_not_found_whether_cached_or_not(
    cache: ProgressCache, loader: FakeLoader
) -> None:
    assert await cache.snapshot(RID, "other") is None
    assert await cache.snapshot(RID, "acme") == snapshot()
    assert await cache.snapshot(RID, "other") is None
    assert loader.calls == [RID]


async def test_a_request_uploaded_without_a_tenant_is_hidden_from_every_tenant(
    cache: ProgressCache, loader: FakeLoader
) -> None:
    loader.requests[RID] = snapshot(tenant=None)

    assert await cache.snapshot(RID, "acme") is None


async def test_without_access_control_every_request_is_visible(
    cache: ProgressCache, loader: FakeLoader
) -> None:
    assert await cache.snapshot(RID, None) == snapshot()


async def test_a_ttl_of_zero_loads_on_every_poll(loader: FakeLoader, clock: Clock) -> None:
    cache = ProgressCache(loader, 0, timer=clock)

    await cache.snapshot(RID, "acme")
    await cache.snapshot(RID, "acme")

    assert loader.calls == [RID, RID]


async def test_a_poller_who_hangs_up_leaves_the_shared_load_to_the_others(
    cache: ProgressCache, loader: FakeLoader
) -> None:
    loader.gate.clear()
    leaving = asyncio.create_task(cache.snapshot(RID, "acme"))
    staying = asyncio.create_task(cache.snapshot(RID, "acme"))
    await loader.started.wait()

    leaving.cancel()
    loader.gate.set()

    assert await staying == snapshot()
    assert leaving.cancelled()
    assert loader.calls == [RID]


def test_a_snapshot_is_final_in_completed_and_failed_only() -> None:
    assert Snapshot(None, "Completed", "{}").final
    assert Snapshot(None, "Failed", "{}").final
    assert not Snapshot(None, "Processing", "{}").final
    assert not Snapshot(None, "Pending", "{}").final
