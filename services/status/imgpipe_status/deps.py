"""Typed access, for the routes, to the settings, what the bootstrap built, and the request
named in the path when the caller may see it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException

from imgpipe_runtime.files import FileStore
from imgpipe_runtime.mongo import Document
from imgpipe_runtime.web import Tenant, adapter, from_state
from imgpipe_status.config import Settings
from imgpipe_status.repository import StatusRepository
from imgpipe_status.schemas import not_found_message

SettingsDep = Annotated[Settings, Depends(from_state("settings", Settings))]
RepositoryDep = Annotated[StatusRepository, Depends(adapter("repository"))]
FilesDep = Annotated[FileStore, Depends(adapter("files"))]


async def _owned_request(request_id: str, repository: RepositoryDep, tenant: Tenant) -> Document:
    """The `requests` document of the path's id; 404 if there is none or it is another
    tenant's (which must look the same: its existence is not revealed)."""
    doc = await repository.get_request(request_id, tenant)
    if doc is None:
        raise HTTPException(404, not_found_message(request_id))
    return doc


OwnedRequestDep = Annotated[Document, Depends(_owned_request)]

__all__ = ["FilesDep", "OwnedRequestDep", "RepositoryDep", "SettingsDep", "Tenant"]
