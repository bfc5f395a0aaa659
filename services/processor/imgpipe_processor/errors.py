"""The processor's exceptions share one base, so callers can tell them from everything else."""

from __future__ import annotations


class ProcessorError(Exception):
    """Something about one image job went wrong in the processor."""
