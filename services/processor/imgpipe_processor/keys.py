"""The stored names of processed images (keys in the file store).

Keys never come from user text alone: they are built from the request id (ours, checked to be
hex), the row and the position, which makes them unique; a cleaned-up stem of the source file
name is appended only so that people recognise the file.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from imgpipe_processor.errors import ProcessorError

_REQUEST_ID = re.compile(r"[0-9a-f]{32}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class InvalidRequestId(ProcessorError, ValueError):
    """A job names a request id that is not one we could have issued."""


def readable_stem(url: str, limit: int = 40) -> str:
    stem = PurePosixPath(unquote(urlsplit(url).path)).stem
    cleaned = _UNSAFE.sub("-", stem).strip("-_")[:limit].strip("-_")
    return cleaned or "image"


def image_key(request_id: str, row_index: int, position: int, url: str) -> str:
    """The stored name of one job's image: unique per job, the same on every redelivery."""
    if not _REQUEST_ID.fullmatch(request_id):
        raise InvalidRequestId(f"request id {request_id!r} is not 32 hex digits")
    return f"images/{request_id}/{row_index + 1:06d}-{position + 1:02d}-{readable_stem(url)}.jpg"
