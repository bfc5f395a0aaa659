"""Typed access, for the routes, to what the app and its bootstrap built."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from imgpipe_notifier.bootstrap import Notifier
from imgpipe_notifier.receiver import ReceivedWebhooks
from imgpipe_runtime.web import from_state

adapters = from_state("adapters", Notifier)

ReceivedDep = Annotated[ReceivedWebhooks, Depends(from_state("received", ReceivedWebhooks))]
