"""Where a failed message goes next: the pure decision the consumer carries out."""

from __future__ import annotations

import pytest

from imgpipe_runtime.retry import (
    Reject,
    RetryLater,
    ToDeadLetterQueue,
    ToRetryQueue,
    Unavailable,
    settle,
)

DELAYS = (1.0, 5.0, 30.0)


@pytest.mark.parametrize(("attempt", "delay"), [(1, 1.0), (2, 5.0), (3, 30.0)])
def test_a_failure_goes_to_the_retry_step_of_its_attempt_as_the_next_attempt(
    attempt: int, delay: float
) -> None:
    assert settle(RuntimeError("boom"), attempt, DELAYS) == ToRetryQueue(delay, attempt + 1)


def test_a_failure_on_the_last_attempt_is_dead_lettered() -> None:
    assert settle(RuntimeError("boom"), len(DELAYS) + 1, DELAYS) == ToDeadLetterQueue()


def test_a_failure_past_the_last_attempt_is_dead_lettered() -> None:
    assert settle(RuntimeError("boom"), 9, DELAYS) == ToDeadLetterQueue()


@pytest.mark.parametrize("attempt", [1, 2, 4])
def test_a_rejected_message_is_dead_lettered_at_any_attempt(attempt: int) -> None:
    assert settle(Reject("malformed"), attempt, DELAYS) == ToDeadLetterQueue()


@pytest.mark.parametrize("attempt", [1, 3, 4, 20])
def test_an_unavailable_dependency_retries_at_the_first_step_without_using_an_attempt(
    attempt: int,
) -> None:
    assert settle(Unavailable("db down"), attempt, DELAYS) == ToRetryQueue(1.0, attempt)


def test_a_retry_after_hint_picks_the_shortest_step_that_waits_at_least_as_long() -> None:
    assert settle(RetryLater("429", delay=3.0), 1, DELAYS) == ToRetryQueue(5.0, 2)


def test_a_retry_after_hint_shorter_than_the_step_keeps_the_step() -> None:
    assert settle(RetryLater("429", delay=0.5), 2, DELAYS) == ToRetryQueue(5.0, 3)


def test_a_retry_after_hint_longer_than_every_step_takes_the_longest() -> None:
    assert settle(RetryLater("429", delay=3600.0), 1, DELAYS) == ToRetryQueue(30.0, 2)


def test_a_retry_later_without_a_hint_is_an_ordinary_retry() -> None:
    assert settle(RetryLater("503"), 2, DELAYS) == ToRetryQueue(5.0, 3)


def test_a_retry_later_on_the_last_attempt_is_dead_lettered() -> None:
    assert settle(RetryLater("503", delay=1.0), 4, DELAYS) == ToDeadLetterQueue()


def test_an_empty_schedule_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one delay"):
        settle(RuntimeError("boom"), 1, ())
