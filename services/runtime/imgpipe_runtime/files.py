"""Where the services keep files (processed images, output CSVs): one small interface.

Keys are relative POSIX paths that the services build themselves (never from user text alone),
e.g. `images/<request>/000001-01-cat.jpg` or `outputs/output_<request>.csv`. Writes are atomic
and idempotent: a redelivered job writes the same key with the same bytes, and a reader never
sees half a file.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path, PurePosixPath
from typing import Protocol

from imgpipe_runtime.errors import ImgpipeRuntimeError
from imgpipe_runtime.links import LinkSigner
from imgpipe_runtime.settings import StorageSettings


class InvalidKey(ImgpipeRuntimeError, ValueError):
    """A key that could escape the store (absolute, `..`, empty parts)."""


class FileStore(Protocol):
    """What the processor and status need of a place to keep files."""

    def url_for(self, key: str) -> str:
        """Where users download `key`."""
        ...

    async def write(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` under `key`, replacing any earlier version atomically."""
        ...

    async def read(self, key: str) -> bytes:
        """The bytes stored under `key` (FileNotFoundError if there are none)."""
        ...


def checked_key(key: str) -> PurePosixPath:
    """`key` as a relative path that stays inside the store, or InvalidKey."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidKey(f"{key!r} is not a relative key inside the store")
    return path


class LocalFileStore:
    """A directory (DATA_DIR), served by the status service under `/files`."""

    def __init__(self, root: Path, public_base_url: str, signer: LinkSigner | None = None) -> None:
        self.root = root.resolve()
        self._base = public_base_url.rstrip("/")
        self._signer = signer

    def path_for(self, key: str) -> Path:
        return self.root.joinpath(*checked_key(key).parts)

    def url_for(self, key: str) -> str:
        url = f"{self._base}/files/{checked_key(key)}"
        if self._signer is None:
            return url
        return f"{url}?token={self._signer.token_for(key)}"

    async def write(self, key: str, data: bytes, content_type: str) -> None:
        # Off the loop: an image is up to a few MB, and a slow disk must not stall heartbeats.
        await asyncio.to_thread(_write_atomically, self.path_for(key), data)

    async def read(self, key: str) -> bytes:
        return await asyncio.to_thread(self.path_for(key).read_bytes)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unique per writer: two consumers may write the same key at once (a redelivery, or two
    # status consumers finishing the same request).
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        temporary.write_bytes(data)
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def open_file_store(settings: StorageSettings, signer: LinkSigner | None = None) -> LocalFileStore:
    """The file store the settings describe; its links are signed by `signer`, if any."""
    return LocalFileStore(settings.data_dir, settings.public_base_url, signer)
