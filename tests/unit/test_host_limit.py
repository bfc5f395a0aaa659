"""The per-host download limit, as a pure controller: observations in, a limit out, the time
passed in (no sleeping)."""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field

import pytest
from pydantic import ValidationError

from imgpipe_processor.config import Settings
from imgpipe_processor.hostlimit import Cut, HostController, Observation, Signal, Tuning

TUNING = Tuning(floor=2, ceiling=64, probe_interval=10.0, max_pause=60.0)


def answered(sent_at: float, level: int) -> Observation:
    return Observation(Signal.ANSWERED, sent_at, level)


def refused(
    sent_at: float, level: int, reason: str = "http_429", retry_after: float | None = None
) -> Observation:
    return Observation(Signal.REFUSED, sent_at, level, reason, retry_after)


def failed(sent_at: float, level: int, reason: str = "timeout") -> Observation:
    return Observation(Signal.FAILED, sent_at, level, reason)


def run_rounds(
    controller: HostController, start: float, rounds: int, latency: float = 0.1
) -> float:
    """`rounds` round trips, each with the whole limit in flight and answered after `latency`;
    the time after them."""
    now = start
    for _ in range(rounds):
        now += 0.001  # sent just after whatever came before
        sent, level = now, controller.limit
        now += latency
        for _ in range(level):
            assert controller.observe(answered(sent, level), now) is None
    return now


def test_a_new_host_starts_at_the_floor() -> None:
    controller = HostController(TUNING)

    assert controller.limit == 2
    assert controller.room(1, 0.0)
    assert not controller.room(2, 0.0)


def test_a_host_that_answers_doubles_its_limit_every_round_trip_up_to_the_ceiling() -> None:
    controller = HostController(TUNING)
    limits = []
    now = 0.0
    for _ in range(7):
        now = run_rounds(controller, now, 1)
        limits.append(controller.limit)

    assert limits == [4, 8, 16, 32, 64, 64, 64]


def test_answers_while_the_limit_is_not_in_use_do_not_raise_it() -> None:
    controller = HostController(TUNING)
    now = run_rounds(controller, 0.0, 3)  # 16
    for _ in range(100):
        controller.observe(answered(now, 3), now + 0.1)
        now += 0.2

    assert controller.limit == 16


def test_a_refusal_cuts_the_limit_and_it_holds_below_the_refused_level_then_probes() -> None:
    controller = HostController(TUNING)
    now = run_rounds(controller, 0.0, 3)  # 16 (slow start)
    cut = controller.observe(refused(now, 9), now + 0.01)
    now += 0.01

    assert cut == Cut(16, 8, "http_429")  # min(16 x 0.7, 9 - 1)
    now = run_rounds(controller, now, 50)  # 5 s of round trips
    assert controller.limit == 8  # held just below the refused level

    run_rounds(controller, now + 10, 2)  # the probe interval is over
    assert controller.limit == 9  # about one more per round trip's worth of answers: probing


def test_after_a_refusal_the_limit_grows_by_one_per_round_trip_not_per_answer() -> None:
    controller = HostController(TUNING)
    now = run_rounds(controller, 0.0, 5)  # 64
    controller.observe(refused(now, 64, "http_503"), now + 0.01)
    assert controller.limit == 44  # 64 x 0.7
    now = run_rounds(controller, now + 0.01, 10)

    assert 53 <= controller.limit <= 54  # about one per round trip


def test_a_burst_of_refusals_from_one_level_is_one_cut() -> None:
    controller = HostController(TUNING)
    now = run_rounds(controller, 0.0, 5)  # 64
    sent = now
    cuts = [controller.observe(refused(sent, 60 + n), now + 0.01 * n) for n in range(5)]

    assert [c for c in cuts if c is not None] == [Cut(64, 44, "http_429")]
    assert controller.limit == 44


def test_a_refusal_at_a_lower_level_in_the_same_burst_lowers_what_is_held() -> None:
    controller = HostController(TUNING)
    now = run_rounds(controller, 0.0, 4)  # 32
    controller.observe(refused(now, 30), now + 0.01)
    cut = controller.observe(refused(now, 9), now + 0.02)

    assert cut == Cut(22, 8, "http_429")


def test_a_retry_after_pauses_new_downloads_for_that_long() -> None:
    controller = HostController(TUNING)
    cut = controller.observe(refused(0.0, 2, retry_after=5), 0.5)

    assert cut == Cut(2, 2, "http_429", pause=5.0)
    assert not controller.room(0, 5.4)
    assert controller.room(0, 5.5)


def test_refusals_of_the_same_burst_extend_the_pause_without_another_cut() -> None:
    controller = HostController(TUNING)
    now = run_rounds(controller, 0.0, 3)  # 16
    first = controller.observe(refused(now, 10, retry_after=1), now + 0.01)
    second = controller.observe(refused(now, 11, retry_after=1), now + 0.02)

    assert first == Cut(16, 9, "http_429", pause=1.0)
    assert second is None
    assert not controller.room(0, now + 1.015)
    assert controller.room(0, now + 1.02)


def test_a_retry_after_longer_than_the_longest_pause_pauses_for_the_longest() -> None:
    controller = HostController(TUNING)
    controller.observe(refused(0.0, 1, retry_after=86_400), 0.0)

    assert not controller.room(0, 59.9)
    assert controller.room(0, 60.0)


def test_a_refusal_without_retry_after_does_not_pause() -> None:
    controller = HostController(TUNING)
    run_rounds(controller, 0.0, 2)
    controller.observe(refused(0.2, 8), 0.3)

    assert controller.room(0, 0.3)


def test_a_timeout_drops_the_limit_to_the_floor_then_it_slow_starts_to_half_its_level() -> None:
    controller = HostController(TUNING)
    now = run_rounds(controller, 0.0, 5)  # 64
    cut = controller.observe(failed(now, 64), now + 30)
    now += 30

    assert cut == Cut(64, 2, "timeout")
    now = run_rounds(controller, now, 4)
    assert controller.limit == 32  # doubling again, up to half of 64
    now = run_rounds(controller, now, 4)
    assert 35 <= controller.limit <= 36  # then about one per round trip


def test_the_other_downloads_that_timed_out_with_the_first_do_not_cut_again() -> None:
    controller = HostController(TUNING)
    now = run_rounds(controller, 0.0, 5)
    sent = now
    controller.observe(failed(sent, 64, "connection"), now + 1)
    now = run_rounds(controller, now + 1, 2)  # the host answers again: 2 -> 8
    later = controller.observe(failed(sent, 63, "connection"), now)

    assert later is None
    assert controller.limit == 8


def test_answers_well_slower_than_the_best_cut_the_limit() -> None:
    controller = HostController(TUNING)
    now = run_rounds(controller, 0.0, 5, latency=0.1)  # 64, best 100 ms
    cut = None
    while cut is None and now < 10:
        sent = now
        now += 0.5
        cut = controller.observe(answered(sent, 64), now)

    assert cut is not None
    assert (cut.before, cut.after) == (64, 54)  # x 0.85
    assert cut.cause.startswith("slow: ")
    run_rounds(controller, now, 3, latency=0.1)  # fast again: it grows back at once
    assert 56 <= controller.limit <= 57


def test_a_fast_host_a_little_slower_is_not_slow() -> None:
    controller = HostController(TUNING)
    now = run_rounds(controller, 0.0, 5, latency=0.002)  # best 2 ms
    for _ in range(50):
        sent = now
        now += 0.2  # 100 times slower, but only 0.2 s more: the processor's own load
        assert controller.observe(answered(sent, 64), now) is None

    assert controller.limit == 64


def test_the_best_latency_is_forgotten_after_its_window() -> None:
    controller = HostController(TUNING)
    controller.observe(answered(0.0, 1), 0.01)
    controller.observe(answered(30.0, 1), 30.5)

    assert controller.best_latency == pytest.approx(0.01)
    controller.observe(answered(70.0, 1), 70.5)
    assert controller.best_latency == pytest.approx(0.5)


def test_other_outcomes_say_nothing_about_load() -> None:
    controller = HostController(TUNING)
    now = run_rounds(controller, 0.0, 3)
    for n in range(50):
        assert controller.observe(Observation(Signal.OTHER, now, 16, "http_404"), now + n) is None

    assert controller.limit == 16


@pytest.mark.parametrize(
    ("floor", "ceiling", "backoff"), [(0, 4, 0.5), (5, 4, 0.5), (2, 4, 1.0), (2, 4, 0.0)]
)
def test_impossible_tunings_are_refused(floor: int, ceiling: int, backoff: float) -> None:
    with pytest.raises(ValueError, match=r"must be|need"):
        Tuning(floor=floor, ceiling=ceiling, backoff=backoff)


@dataclass
class CappedHost:
    """A simulated host that serves `cap` downloads at once in `service` seconds each and
    answers 429 with Retry-After at once beyond that, driven by the controller with an
    endless queue of downloads."""

    cap: int
    service: float
    retry_after: float
    controller: HostController = field(default_factory=lambda: HostController(TUNING))
    in_flight: int = 0
    answered: int = 0
    refused: int = 0
    peak: int = 0

    def run(self, seconds: float) -> None:
        jitter = random.Random(1)
        order = itertools.count()
        events: list[tuple[float, int, float, int, bool]] = []  # done at, -, sent at, level, ok
        now = 0.0
        while now < seconds:
            while self.controller.room(self.in_flight, now):
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
                ok = self.in_flight <= self.cap
                done = now + (self.service * jitter.uniform(0.5, 1.5) if ok else 0.001)
                heapq.heappush(events, (done, next(order), now, self.in_flight, ok))
            wake = self.controller.paused_until if not events else events[0][0]
            now, _, sent, level, ok = heapq.heappop(events) if events else (wake, 0, 0, 0, True)
            if not level:
                continue
            self.in_flight -= 1
            if ok:
                self.answered += 1
                self.controller.observe(answered(sent, level), now)
            else:
                self.refused += 1
                self.controller.observe(refused(sent, level, retry_after=self.retry_after), now)


def test_against_a_host_capped_at_8_few_downloads_are_refused_and_most_of_the_cap_is_used() -> None:
    host = CappedHost(cap=8, service=0.05, retry_after=1.0)
    host.run(120.0)

    total = host.answered + host.refused
    assert host.refused / total < 0.01
    assert host.peak <= 9
    # 8 at once for 50 ms is 160 a second at best; pauses and probes cost a little of it.
    assert host.answered / 120.0 > 0.8 * 160


def test_a_fast_host_at_100_ms_reaches_the_ceiling_within_a_second() -> None:
    controller = HostController(TUNING)
    run_rounds(controller, 0.0, 6, latency=0.1)

    assert controller.limit == TUNING.ceiling


def test_the_settings_refuse_a_floor_above_the_ceiling_naming_both() -> None:
    with pytest.raises(ValidationError, match=r"DOWNLOADS_PER_HOST_MIN \(8\) must not exceed"):
        Settings(downloads_per_host=4, downloads_per_host_min=8)


def test_the_settings_give_the_controller_its_floor_ceiling_and_pauses() -> None:
    tuning = Settings(
        downloads_per_host=32, downloads_per_host_min=4, host_probe_interval=5, host_max_pause=9
    ).host_tuning()

    assert (tuning.floor, tuning.ceiling, tuning.probe_interval, tuning.max_pause) == (4, 32, 5, 9)
