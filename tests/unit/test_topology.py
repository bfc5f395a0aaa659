"""Broker names: everything for one work queue derives from its base name."""

from __future__ import annotations

import pytest

from imgpipe_contracts.topology import (
    ALL_QUEUES,
    NOTIFIER_REQUEST_COMPLETED,
    PROCESSOR_IMAGE_REQUESTED,
    PROCESSOR_LANES,
    STATUS_IMAGE_BATCH,
    STATUS_IMAGE_OUTCOME,
    QueueSpec,
    Topology,
    batch_routing_key,
    format_delay,
    queue_declarations,
)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (30, "30s"),
        (30.0, "30s"),
        (1, "1s"),
        (36000.0, "36000s"),
        (1.5, "1500ms"),
        (0.2, "200ms"),
        (0.25, "250ms"),
        (0.001, "1ms"),
        (2.75, "2750ms"),
    ],
)
def test_format_delay_writes_whole_seconds_as_s_and_fractions_as_ms(
    seconds: float, text: str
) -> None:
    assert format_delay(seconds) == text


def test_names_of_one_queue_all_derive_from_its_base() -> None:
    topology = Topology(prefix="run-7.", work_retry_delays=(0.5, 2.0))
    spec = PROCESSOR_IMAGE_REQUESTED

    assert topology.queue(spec) == "run-7.processor.image-requested"
    assert topology.dlq(spec) == "run-7.processor.image-requested.dlq"
    assert [topology.retry_queue(spec, d) for d in topology.retry_delays(spec)] == [
        "run-7.processor.image-requested.retry-500ms",
        "run-7.processor.image-requested.retry-2s",
    ]


def test_a_custom_spec_gets_names_from_its_own_base() -> None:
    spec = QueueSpec("svc.thing-happened", ("thing.happened",))
    topology = Topology()

    assert topology.queue(spec) == "svc.thing-happened"
    assert topology.dlq(spec) == "svc.thing-happened.dlq"
    assert topology.retry_queue(spec, 30) == "svc.thing-happened.retry-30s"


def test_exchange_name_carries_the_prefix() -> None:
    assert Topology().exchange == "imgpipe.events"
    assert Topology(prefix="p.").exchange == "p.imgpipe.events"


def test_webhook_queue_uses_the_webhook_schedule_and_others_the_work_schedule() -> None:
    topology = Topology(work_retry_delays=(1.0,), webhook_retry_delays=(5.0, 60.0))

    assert topology.retry_delays(NOTIFIER_REQUEST_COMPLETED) == (5.0, 60.0)
    assert topology.retry_delays(PROCESSOR_IMAGE_REQUESTED) == (1.0,)
    assert topology.retry_delays(STATUS_IMAGE_OUTCOME) == (1.0,)


def test_max_attempts_is_one_more_than_the_number_of_retries() -> None:
    topology = Topology(work_retry_delays=(1.0, 5.0, 30.0), webhook_retry_delays=(5.0,))

    assert topology.max_attempts(PROCESSOR_IMAGE_REQUESTED) == 4
    assert topology.max_attempts(NOTIFIER_REQUEST_COMPLETED) == 2


def test_every_queue_name_in_the_default_topology_is_distinct_and_starts_with_its_base() -> None:
    topology = Topology(prefix="x.")
    names: list[str] = []
    for spec in ALL_QUEUES:
        own = [topology.queue(spec), topology.dlq(spec)]
        own += [topology.retry_queue(spec, d) for d in topology.retry_delays(spec)]
        assert all(name.startswith("x." + spec.base) for name in own)
        names += own

    assert len(names) == len(set(names))
    # 8 work queues, each with its DLQ; 7 with the 3 work retry queues, one with 6 webhook ones.
    assert len(names) == 8 * 2 + 7 * 3 + 6


def test_a_batch_on_any_lane_reaches_that_lane_alone_and_the_status_service() -> None:
    for lane in PROCESSOR_LANES:
        key = batch_routing_key(lane)
        bound = [spec for spec in ALL_QUEUES if key in spec.routing_keys]
        assert bound == [lane, STATUS_IMAGE_BATCH]


def test_each_dead_letter_queue_is_declared_before_its_work_queue() -> None:
    topology = Topology(prefix="x.")
    order = [d.name for d in queue_declarations(topology)]

    for spec in ALL_QUEUES:
        assert order.index(topology.dlq(spec)) < order.index(topology.queue(spec))


def test_only_work_queues_are_bound_and_each_to_its_own_routing_keys() -> None:
    topology = Topology()
    bound = {d.name: d.routing_keys for d in queue_declarations(topology) if d.routing_keys}

    assert bound == {topology.queue(spec): spec.routing_keys for spec in ALL_QUEUES}


def test_retry_queues_expire_after_their_delay_into_the_work_queue() -> None:
    topology = Topology(work_retry_delays=(0.5, 2.0))
    by_name = {d.name: d for d in queue_declarations(topology)}
    retry = by_name[topology.retry_queue(PROCESSOR_IMAGE_REQUESTED, 0.5)]

    assert retry.arguments["x-message-ttl"] == 500
    assert retry.arguments["x-dead-letter-routing-key"] == topology.queue(PROCESSOR_IMAGE_REQUESTED)
    assert retry.arguments["x-queue-type"] == "quorum"
