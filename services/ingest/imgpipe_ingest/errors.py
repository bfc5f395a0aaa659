"""The ingest service's exceptions share one base, so callers can tell them from the rest."""

from __future__ import annotations


class IngestError(Exception):
    """An upload could not be accepted."""
