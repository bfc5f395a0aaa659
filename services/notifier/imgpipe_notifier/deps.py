"""Typed access, for the routes, to what the app built."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from imgpipe_notifier.receiver import ReceivedWebhooks
from imgpipe_runtime.web import from_state

ReceivedDep = Annotated[ReceivedWebhooks, Depends(from_state("received", ReceivedWebhooks))]
