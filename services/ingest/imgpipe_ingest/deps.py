"""Typed access, for the routes, to the settings and what the bootstrap built."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from imgpipe_ingest.config import Settings
from imgpipe_ingest.repository import RequestRepository
from imgpipe_runtime.broker import Broker
from imgpipe_runtime.web import BearerKey, adapter, from_state

SettingsDep = Annotated[Settings, Depends(from_state("settings", Settings))]
RepositoryDep = Annotated[RequestRepository, Depends(adapter("repository"))]
BrokerDep = Annotated[Broker, Depends(adapter("broker"))]

__all__ = ["BearerKey", "BrokerDep", "RepositoryDep", "SettingsDep"]
