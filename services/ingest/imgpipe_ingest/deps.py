"""Request-scoped access to what the lifespan built."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from imgpipe_contracts.messaging import Broker
from imgpipe_ingest.config import Settings
from imgpipe_ingest.repository import RequestRepository


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _repository(request: Request) -> RequestRepository:
    repository: RequestRepository = request.app.state.repository
    return repository


def _broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


SettingsDep = Annotated[Settings, Depends(_settings)]
RepositoryDep = Annotated[RequestRepository, Depends(_repository)]
BrokerDep = Annotated[Broker, Depends(_broker)]
