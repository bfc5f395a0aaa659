"""Typed access, for the routes, to the settings and what the bootstrap built."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from imgpipe_ingest.bootstrap import Ingest
from imgpipe_ingest.config import Settings
from imgpipe_ingest.repository import RequestRepository
from imgpipe_runtime.broker import Broker
from imgpipe_runtime.web import BearerKey, from_state

_adapters = from_state("adapters", Ingest)


def _repository(request: Request) -> RequestRepository:
    return _adapters(request).repository


def _broker(request: Request) -> Broker:
    return _adapters(request).broker


SettingsDep = Annotated[Settings, Depends(from_state("settings", Settings))]
RepositoryDep = Annotated[RequestRepository, Depends(_repository)]
BrokerDep = Annotated[Broker, Depends(_broker)]

__all__ = ["BearerKey", "BrokerDep", "RepositoryDep", "SettingsDep"]
