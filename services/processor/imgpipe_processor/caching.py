"""The rules of reuse, with no I/O: which earlier work may stand for a source, how to ask the
origin whether it changed (RFC 9110 §13), for how long its answer may be reused without asking
(RFC 9111 §4.2), and the names that make reuse exact.

An output is a function of the source's bytes and of the settings that shape it, so its
identity is a hash of both (plus the scope): a change of quality, of the transform or of the
codec library gives other names, and nothing made before is reused, with no purge step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal

import PIL

# Raise when the transform changes what it makes of the same bytes (orientation, flattening,
# profiles, metadata): every output made before is then made again.
TRANSFORM_VERSION = 1
# The scope of every job when reuse is global, or when there are no tenants (AUTH_MODE=off).
SHARED_SCOPE = "*"

ReuseScope = Literal["tenant", "global"]


def output_fingerprint(quality: int) -> str:
    """Everything besides the source bytes that shapes an output."""
    return f"jpeg-q{quality}/transform-{TRANSFORM_VERSION}/pillow-{PIL.__version__}"


def scope_of(tenant: str | None, reuse_scope: ReuseScope) -> str:
    """Whose earlier work a job may reuse: its tenant's only, unless reuse is global.
    (A cache shared across tenants would tell one tenant which images another processes.)"""
    if reuse_scope == "global" or tenant is None:
        return SHARED_SCOPE
    return f"tenant:{tenant}"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def source_id(scope: str, url: str) -> str:
    """The record of one URL as one scope fetched it."""
    return _digest("source", scope, url)


def output_id(scope: str, content_sha256: str, fingerprint: str) -> str:
    """The output made, in a scope, from bytes with this hash under these settings."""
    return _digest("output", scope, content_sha256, fingerprint)


def shared_key(output: str) -> str:
    """Where an output that requests may share is stored: named by its id, never by user text."""
    return f"images/shared/{output[:2]}/{output}.jpg"


def conditional_headers(etag: str | None, last_modified: str | None) -> dict[str, str]:
    """The validators of the last answer, for a conditional GET. With both, an origin must
    evaluate If-None-Match and ignore If-Modified-Since (RFC 9110 §13.2.2); sending both still
    helps origins that only know the date."""
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


@dataclass(frozen=True)
class Freshness:
    """What an origin's answer allows: whether it may be reused at all (`storable`), and until
    when without asking again (`fresh_until`; None: ask every time)."""

    storable: bool
    fresh_until: datetime | None


def directives(cache_control: str | None) -> dict[str, str | None]:
    """Cache-Control as {directive: argument}; names lower-cased, quotes taken off."""
    found: dict[str, str | None] = {}
    for part in (cache_control or "").split(","):
        name, sep, value = part.strip().partition("=")
        name = name.strip().lower()
        if name:
            found.setdefault(name, value.strip().strip('"') if sep else None)
    return found


def _seconds(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo is not None else None


def freshness(headers: Mapping[str, str], now: datetime) -> Freshness:
    """How long an answer with these headers (names lower-case) may stand for the source.

    `no-store` and `private` answers are never reused. `no-cache` or no lifetime means asking
    every time (with the validators). A lifetime comes from `max-age` (less the answer's `Age`),
    else from `Expires` against the origin's `Date` (RFC 9111 §4.2.1); heuristic lifetimes are
    not used, so a changed image is never served stale on a guess.
    """
    found = directives(headers.get("cache-control"))
    if "no-store" in found or "private" in found:
        return Freshness(storable=False, fresh_until=None)
    if "no-cache" in found:
        return Freshness(storable=True, fresh_until=None)
    age = _seconds(headers.get("age")) or 0
    max_age = _seconds(found.get("max-age"))
    if "max-age" in found:
        if max_age is None or max_age <= age:
            return Freshness(storable=True, fresh_until=None)
        return Freshness(storable=True, fresh_until=now + timedelta(seconds=max_age - age))
    expires, date = _http_date(headers.get("expires")), _http_date(headers.get("date"))
    if expires is not None:
        lifetime = (expires - (date or now)).total_seconds() - age
        if lifetime > 0:
            return Freshness(storable=True, fresh_until=now + timedelta(seconds=lifetime))
    return Freshness(storable=True, fresh_until=None)


def may_skip_asking(
    fresh_until: datetime | None, validated_for: str | None, request_id: str, now: datetime
) -> bool:
    """Whether a known source's output may be reused without a request to its origin: within
    the lifetime its origin gave, or for the request that just checked it (the same URL again
    in one request is one image)."""
    return validated_for == request_id or (fresh_until is not None and now < fresh_until)


# Headers every answer carries anew: a 304 that changes only these teaches nothing new.
_PER_ANSWER = frozenset({"date", "age"})


def answer_changed(stored: Mapping[str, str], received: Mapping[str, str]) -> bool:
    """Whether an answer's headers (names lower-case) differ from the stored ones in more than
    their `Date` and `Age`."""

    def lasting(headers: Mapping[str, str]) -> dict[str, str]:
        return {name: value for name, value in headers.items() if name not in _PER_ANSWER}

    return lasting(stored) != lasting(received)
