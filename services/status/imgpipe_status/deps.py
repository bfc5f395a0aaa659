"""Request-scoped access to what the lifespan built."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from imgpipe_contracts.messaging import Broker
from imgpipe_status.repository import StatusRepository


def _repository(request: Request) -> StatusRepository:
    repository: StatusRepository = request.app.state.repository
    return repository


def _broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


RepositoryDep = Annotated[StatusRepository, Depends(_repository)]
BrokerDep = Annotated[Broker, Depends(_broker)]
