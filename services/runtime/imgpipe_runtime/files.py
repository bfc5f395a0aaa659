"""Where the services keep files (processed images, output CSVs): one small interface.

Keys are relative POSIX paths that the services build themselves (never from user text alone),
e.g. `images/<request>/000001-01-cat.jpg` or `outputs/output_<request>.csv`. Writes are atomic
and idempotent: a redelivered job writes the same key with the same bytes, and a reader never
sees half a file.

Two backends: a local directory (DATA_DIR, served by the status service under `/files`) and an
S3 bucket (`imgpipe_runtime.s3`), chosen by STORAGE_BACKEND.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path, PurePosixPath
from typing import Protocol

from imgpipe_runtime.errors import ImgpipeRuntimeError
from imgpipe_runtime.links import LinkSigner
from imgpipe_runtime.settings import StorageSettings

# The top-level folders of every store; nothing else is ours to serve.
FOLDERS = ("images/", "outputs/")


class StoreError(ImgpipeRuntimeError):
    """Keeping or finding a file went wrong."""


class InvalidKey(StoreError, ValueError):
    """A key that could escape the store (absolute, `..`, empty parts)."""


class StoreUnavailable(StoreError):
    """The store did not answer in time or answered with a transient error: try again later."""


class StoreMisconfigured(StoreError):
    """The store refuses us for good (no such bucket, bad credentials): fix the settings."""


class FileStore(Protocol):
    """What the processor and status need of a place to keep files."""

    async def url_for(self, key: str) -> str:
        """Where users download `key` (async: an S3 store signs the link)."""
        ...

    async def ready(self) -> None:
        """StoreUnavailable if the store failed of late and still does not answer; cheap
        otherwise. Asked before costly work whose result would have nowhere to go."""
        ...

    async def write(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` under `key`, replacing any earlier version atomically."""
        ...

    async def read(self, key: str) -> bytes:
        """The bytes stored under `key` (FileNotFoundError if there are none)."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether a file is stored under `key` (asked before a link to it is handed out
        again, so a file removed behind our back is made again, never a broken link)."""
        ...

    async def delete(self, keys: list[str]) -> None:
        """Remove the files under `keys`; keys with no file are fine."""
        ...


def checked_key(key: str) -> PurePosixPath:
    """`key` as a relative path that stays inside the store, or InvalidKey."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidKey(f"{key!r} is not a relative key inside the store")
    return path


class LocalFileStore:
    """A directory (DATA_DIR), served by the status service under `/files`. With a `signer`
    (AUTH_MODE=required), links carry a token that lets whoever has them download the file."""

    def __init__(self, root: Path, public_base_url: str, signer: LinkSigner | None = None) -> None:
        self.root = root.resolve()
        self._base = public_base_url.rstrip("/")
        self._signer = signer

    def path_for(self, key: str) -> Path:
        return self.root.joinpath(*checked_key(key).parts)

    async def url_for(self, key: str) -> str:
        url = f"{self._base}/files/{checked_key(key)}"
        if self._signer is None:
            return url
        return f"{url}?token={self._signer.token_for(key)}"

    async def ready(self) -> None:
        # A local disk is there or not; a failed write says which.
        return

    async def write(self, key: str, data: bytes, content_type: str) -> None:
        # Off the loop: an image is up to a few MB, and a slow disk must not stall heartbeats.
        await asyncio.to_thread(_write_atomically, self.path_for(key), data)

    async def read(self, key: str) -> bytes:
        return await asyncio.to_thread(self.path_for(key).read_bytes)

    async def exists(self, key: str) -> bool:
        # One stat: cheaper than a hop to a thread.
        return self.path_for(key).is_file()

    async def delete(self, keys: list[str]) -> None:
        paths = [self.path_for(key) for key in keys]
        await asyncio.to_thread(_delete_files, paths, self.root)


def _delete_files(paths: list[Path], root: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
    # A request's own folder goes with its last file; folders still in use stay.
    for folder in {path.parent for path in paths}:
        if folder != root:
            with contextlib.suppress(OSError):
                folder.rmdir()


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


@asynccontextmanager
async def open_file_store(
    settings: StorageSettings, signer: LinkSigner | None = None
) -> AsyncIterator[FileStore]:
    """The file store the settings describe, open while in the block. Local links are signed
    by `signer`, if any; S3 links are presigned (or public) by the store itself.

    Opening an S3 store checks the bucket: StoreMisconfigured if it is missing or the
    credentials are refused; an unreachable store is only logged (its writes will be retried).
    """
    if settings.storage_backend == "local":
        yield LocalFileStore(settings.data_dir, settings.public_base_url, signer)
        return
    # Imported here: the S3 module imports this one, and only S3 users need botocore loaded.
    from imgpipe_runtime.s3 import open_s3_file_store

    async with open_s3_file_store(settings) as store:
        yield store


def exit_unless_store_usable(settings: StorageSettings) -> None:
    """Before a service starts: exit with one line on stderr (no traceback) when the store
    refuses us, so a wrong bucket or key is seen at once and not as retried jobs."""

    async def probe() -> None:
        async with open_file_store(settings):
            pass

    try:
        asyncio.run(probe())
    except StoreMisconfigured as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
