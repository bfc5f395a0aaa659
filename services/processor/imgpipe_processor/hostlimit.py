"""How many downloads one host gets at once: a pure controller, fed what its downloads did.

The shape is TCP's congestion control (RFC 5681), with downloads in flight for the window:

- it starts at the floor and grows by one per answered download (doubling every round trip:
  "slow start") until the first sign of trouble or the ceiling;
- after that it grows by one per round trip's worth of answers (additive increase);
- a refusal (429, 503, 504) cuts it by a factor (multiplicative decrease), and it then holds
  just below the level that was refused for `probe_interval` before it tries one more (a host
  that refuses beyond 8 at once is asked for a 9th every so often, not every round trip: each
  try costs a refusal and its pause);
- answers well slower than the host's recent best (by `slow_ratio` and by `slow_margin`) cut
  it by a smaller factor, without a hold;
- a timeout or a connection error (the host stopped answering) drops it to the floor, from
  where it slow-starts again up to half the level it had (TCP after a retransmission timeout);
- a `Retry-After` (RFC 9110 §10.2.3) pauses new downloads from the host for that long.

Only answers to downloads sent after the last cut can cut again: a burst of refusals caused by
one level is one cut, not one per refusal. It grows only while the limit is in use (half of it
or more in flight), so a host that is sent little never gets a large limit it has not earned
(RFC 7661's idea). Everything takes the time as an argument: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import Enum


class Signal(Enum):
    """What a finished download says about its host's load."""

    ANSWERED = "answered"  # the body came back: its latency counts
    REFUSED = "refused"  # 429, 503 or 504: the host asks for less
    FAILED = "failed"  # a timeout or a connection error: the host is not answering
    OTHER = "other"  # anything else (404, not an image, ...): nothing about load


@dataclass(frozen=True)
class Tuning:
    """The controller's constants; `floor` and `ceiling` come from the settings."""

    floor: int = 2
    ceiling: int = 64
    backoff: float = 0.7  # the limit is multiplied by this on a refusal
    slow_backoff: float = 0.85  # ...and by this on slow answers (weaker evidence)
    slow_ratio: float = 3.0  # answers this many times slower than the best are slow...
    # ...if also this many seconds slower: a busy processor's own event loop adds tens, even
    # a hundred or more, milliseconds to every download, and that is not the host's load.
    slow_margin: float = 0.25
    best_window: float = 60.0  # seconds the host's best latency is remembered
    smoothing: float = 0.2  # weight of each new answer in the smoothed latency
    min_samples: int = 5  # answers since the last cut before latency can cut
    probe_interval: float = 10.0  # seconds held below a refused level before trying past it
    max_pause: float = 60.0  # the longest Retry-After honoured as a pause

    def __post_init__(self) -> None:
        if not 1 <= self.floor <= self.ceiling:
            raise ValueError(f"need 1 <= floor <= ceiling, not {self.floor} and {self.ceiling}")
        if not (0 < self.backoff < 1 and 0 < self.slow_backoff < 1):
            raise ValueError(f"backoffs must be between 0 and 1, not {self.backoff}")


@dataclass(frozen=True)
class Observation:
    """One finished download: what it says, when it was sent, and `level`, the downloads
    from the host in flight when it was sent (itself included)."""

    signal: Signal
    sent_at: float
    level: int
    reason: str = ""  # e.g. "http_429", "timeout": names the cause of a cut
    retry_after: float | None = None


@dataclass(frozen=True)
class Cut:
    """The limit went down from `before` to `after` (or a pause began), and why."""

    before: int
    after: int
    cause: str
    pause: float = 0.0  # seconds new downloads wait (a Retry-After), 0 if none


class HostController:
    """The download limit of one host; `observe` each finished download, read `limit`."""

    def __init__(self, tuning: Tuning) -> None:
        self._t = tuning
        self._limit = float(tuning.floor)
        self._slow_start_until = float(tuning.ceiling)
        self._hold = math.inf  # a level not to grow past before `_hold_until`
        self._hold_until = -math.inf
        self._last_cut = -math.inf
        self._best: deque[tuple[float, float]] = deque()  # (when, latency), latencies rising
        self._smoothed: float | None = None
        self._samples = 0
        self.paused_until = -math.inf

    @property
    def limit(self) -> int:
        return int(self._limit)

    @property
    def best_latency(self) -> float | None:
        return self._best[0][1] if self._best else None

    def room(self, in_flight: int, now: float) -> bool:
        """Whether one more download may start now, with `in_flight` already running."""
        return now >= self.paused_until and in_flight < self.limit

    def observe(self, seen: Observation, now: float) -> Cut | None:
        """Learn from one finished download; a Cut when the limit went down or a pause began."""
        if seen.signal is Signal.ANSWERED:
            return self._answered(seen, now)
        if seen.signal is Signal.REFUSED:
            return self._refused(seen, now)
        if seen.signal is Signal.FAILED:
            return self._failed(seen, now)
        return None

    def _answered(self, seen: Observation, now: float) -> Cut | None:
        latency = max(0.0, now - seen.sent_at)
        best = self._remember(latency, now)
        if seen.sent_at <= self._last_cut:
            return None  # sent under the old limit: no verdict on the new one
        if self._smoothed is None:
            self._smoothed = latency
        else:
            self._smoothed += self._t.smoothing * (latency - self._smoothed)
        self._samples += 1
        slow = max(best * self._t.slow_ratio, best + self._t.slow_margin)
        if self._samples >= self._t.min_samples and self._smoothed > slow:
            cause = f"slow: {self._smoothed * 1000:.0f} ms, best {best * 1000:.0f} ms"
            return self._cut(now, self._t.slow_backoff, None, cause, 0.0)
        self._grow(seen, now)
        return None

    def _refused(self, seen: Observation, now: float) -> Cut | None:
        pause = min(max(seen.retry_after or 0.0, 0.0), self._t.max_pause)
        # A pause that begins is news; one that a refusal of the same burst extends is not.
        news = pause if pause and now >= self.paused_until else 0.0
        if pause:
            self.paused_until = max(self.paused_until, now + pause)
        if seen.sent_at > self._last_cut:
            return self._cut(now, self._t.backoff, seen.level - 1, seen.reason, news)
        # Part of the burst already cut for; a refusal at a lower level lowers the hold.
        before = self.limit
        hold = max(self._t.floor, seen.level - 1)
        if hold < self._hold:
            self._hold = hold
            self._limit = min(self._limit, hold)
        if self.limit < before or news:
            return Cut(before, self.limit, seen.reason, news)
        return None

    def _failed(self, seen: Observation, now: float) -> Cut | None:
        if seen.sent_at <= self._last_cut or self._limit <= self._t.floor:
            return None
        before = self.limit
        self._slow_start_until = max(float(self._t.floor), seen.level / 2)
        self._limit = float(self._t.floor)
        self._hold, self._hold_until = math.inf, -math.inf
        self._forget_latency(now)
        return Cut(before, self.limit, seen.reason)

    def _cut(
        self, now: float, factor: float, refused_level: int | None, cause: str, pause: float
    ) -> Cut | None:
        """Multiply the limit by `factor`; after a refusal, hold below the refused level."""
        before = self.limit
        if refused_level is not None:
            self._hold = max(self._t.floor, refused_level)
            self._hold_until = now + self._t.probe_interval
        self._limit = max(float(self._t.floor), self._limit * factor)
        if now < self._hold_until:
            self._limit = min(self._limit, self._hold)
        self._slow_start_until = self._limit
        self._forget_latency(now)
        if self.limit < before or pause:
            return Cut(before, self.limit, cause, pause)
        return None

    def _forget_latency(self, now: float) -> None:
        self._last_cut = now
        self._smoothed = None
        self._samples = 0

    def _grow(self, seen: Observation, now: float) -> None:
        if 2 * seen.level < self._limit:
            return  # the limit is not in use: an answer says nothing about more
        step = 1.0 if self._limit < self._slow_start_until else 1.0 / self._limit
        top = float(self._t.ceiling)
        if now < self._hold_until:
            top = min(top, self._hold)
        self._limit = max(self._limit, min(self._limit + step, top))

    def _remember(self, latency: float, now: float) -> float:
        """The best latency of the last `best_window` seconds, this one included."""
        while self._best and self._best[-1][1] >= latency:
            self._best.pop()
        self._best.append((now, latency))
        while self._best[0][0] < now - self._t.best_window:
            self._best.popleft()
        return self._best[0][1]
