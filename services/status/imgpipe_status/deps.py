"""Typed access, for the routes, to the settings, what the bootstrap built, and the request
named in the path (its document, or its status as rendered for pollers) when the caller may
see it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException

from imgpipe_runtime.files import FileStore
from imgpipe_runtime.mongo import Document
from imgpipe_runtime.web import Tenant, adapter, from_state
from imgpipe_status.config import Settings
from imgpipe_status.progress import ProgressCache, Snapshot
from imgpipe_status.repository import StatusRepository
from imgpipe_status.retention import RetentionRepository
from imgpipe_status.schemas import not_found_message

SettingsDep = Annotated[Settings, Depends(from_state("settings", Settings))]
RepositoryDep = Annotated[StatusRepository, Depends(adapter("repository"))]
RetentionDep = Annotated[RetentionRepository, Depends(adapter("retention"))]
FilesDep = Annotated[FileStore, Depends(adapter("files"))]
ProgressCacheDep = Annotated[ProgressCache, Depends(adapter("progress_cache"))]


async def _owned_request(request_id: str, repository: RepositoryDep, tenant: Tenant) -> Document:
    """The `requests` document of the path's id; 404 if there is none or it is another
    tenant's (which must look the same: its existence is not revealed)."""
    doc = await repository.get_request(request_id, tenant)
    if doc is None:
        raise HTTPException(404, not_found_message(request_id))
    return doc


OwnedRequestDep = Annotated[Document, Depends(_owned_request)]


async def _owned_status(
    request_id: str, progress_cache: ProgressCacheDep, tenant: Tenant
) -> Snapshot:
    """The path's request as rendered for its pollers; the same 404 as `_owned_request`,
    whether the answer came from the cache or not."""
    snapshot = await progress_cache.snapshot(request_id, tenant)
    if snapshot is None:
        raise HTTPException(404, not_found_message(request_id))
    return snapshot


OwnedStatusDep = Annotated[Snapshot, Depends(_owned_status)]

__all__ = [
    "FilesDep",
    "OwnedRequestDep",
    "OwnedStatusDep",
    "ProgressCacheDep",
    "RepositoryDep",
    "RetentionDep",
    "SettingsDep",
    "Tenant",
]
