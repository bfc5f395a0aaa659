"""Where a message goes after its handler raised: a pure decision, carried out by the consumer.

Retry policy as data (the dramatiq habit): the attempt number travels in a header, the delays
are a fixed list of steps, and a few errors are never retried.
"""

from __future__ import annotations

from dataclasses import dataclass

from imgpipe_runtime.errors import ImgpipeRuntimeError

ATTEMPT_HEADER = "x-imgpipe-attempt"
ERROR_HEADER = "x-imgpipe-error"


class HandlingError(ImgpipeRuntimeError):
    """A handler's verdict on a message that it could not handle now."""


class Reject(HandlingError):
    """The message can never succeed: dead-letter it now."""


class Unavailable(HandlingError):
    """A dependency is down: try again later without using up an attempt."""


class RetryLater(HandlingError):
    """A transient failure with a hint (e.g. Retry-After) of how long to wait at least."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


@dataclass(frozen=True)
class ToRetryQueue:
    """Send the message to the retry queue of `delay` seconds as attempt `next_attempt`."""

    delay: float
    next_attempt: int


@dataclass(frozen=True)
class ToDeadLetterQueue:
    """Send the message to the dead-letter queue."""


Settlement = ToRetryQueue | ToDeadLetterQueue


def settle(error: Exception, attempt: int, delays: tuple[float, ...]) -> Settlement:
    """Where a message that failed its `attempt`-th try with `error` goes next.

    - `Unavailable`: the first retry step, same attempt (an outage uses up no attempts);
    - `Reject`, or any error on the last attempt (`len(delays) + 1`): the dead-letter queue;
    - anything else: the retry step for this attempt, or, for a `RetryLater` hint, the shortest
      configured step that waits at least as long (else the longest step).
    """
    if not delays:
        raise ValueError("a retry schedule needs at least one delay")
    if isinstance(error, Unavailable):
        return ToRetryQueue(delays[0], attempt)
    if isinstance(error, Reject) or attempt >= len(delays) + 1:
        return ToDeadLetterQueue()
    delay = delays[max(attempt, 1) - 1]
    if isinstance(error, RetryLater) and error.delay:
        hint = max(delay, error.delay)
        delay = min((d for d in delays if d >= hint), default=max(delays))
    return ToRetryQueue(delay, attempt + 1)
