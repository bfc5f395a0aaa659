"""The runtime's exceptions share one base, so a caller can tell them from everything else."""

from __future__ import annotations


class ImgpipeRuntimeError(Exception):
    """Something the imgpipe runtime refused or could not do."""
