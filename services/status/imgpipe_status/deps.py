"""Typed access, for the routes, to the settings and what the bootstrap built."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from imgpipe_runtime.files import FileStore
from imgpipe_runtime.web import from_state
from imgpipe_status.bootstrap import Status
from imgpipe_status.config import Settings
from imgpipe_status.repository import StatusRepository

_adapters = from_state("adapters", Status)


def _repository(request: Request) -> StatusRepository:
    return _adapters(request).repository


def _files(request: Request) -> FileStore:
    return _adapters(request).files


SettingsDep = Annotated[Settings, Depends(from_state("settings", Settings))]
RepositoryDep = Annotated[StatusRepository, Depends(_repository)]
FilesDep = Annotated[FileStore, Depends(_files)]
