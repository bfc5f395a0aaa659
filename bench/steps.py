"""What every run of the bench shares: a timestamped line of progress, and a measurement that
records its failure instead of stopping the others."""

from __future__ import annotations

import traceback
from collections.abc import Awaitable
from datetime import datetime
from typing import Any, TypeVar

T = TypeVar("T")


def say(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


async def attempt(results: dict[str, Any], key: str, work: Awaitable[T]) -> T | None:
    """Run one measurement; a failure is recorded and the others still run."""
    try:
        value = await work
    except Exception as exc:
        traceback.print_exc()
        results.setdefault("errors", {})[key] = repr(exc)
        return None
    results[key] = value
    return value
