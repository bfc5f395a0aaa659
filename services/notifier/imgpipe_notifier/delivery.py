"""Sending one signed webhook (Standard Webhooks: webhook-id, -timestamp, -signature)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from standardwebhooks.webhooks import Webhook

from imgpipe_runtime import tracing
from imgpipe_runtime.netguard import BlockedAddressError


@dataclass(frozen=True)
class Attempt:
    """What one POST achieved. `final` means retrying cannot help."""

    delivered: bool
    status_code: int | None
    reason: str
    final: bool = False


def signed_headers(signer: Webhook, webhook_id: str, body: str) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signer.sign(webhook_id, now, body),
    }


async def post_webhook(
    session: aiohttp.ClientSession, signer: Webhook, url: str, webhook_id: str, body: str
) -> Attempt:
    """POST once, redirects not followed; only 2xx is success and 410 Gone stops retries."""
    # `traceparent` (tracing on), so the receiver's own tracing can join the request's trace;
    # sampled, the aiohttp instrumentation replaces it with its own span's.
    headers = signed_headers(signer, webhook_id, body) | tracing.headers()
    try:
        async with session.post(
            url, data=body.encode(), headers=headers, allow_redirects=False
        ) as response:
            await response.read()
            status = response.status
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, BlockedAddressError):
            return Attempt(False, None, f"blocked_address: {exc.os_error}", final=True)
        return Attempt(False, None, f"connection: {exc.os_error}")
    except TimeoutError:
        return Attempt(False, None, "timeout: the receiver did not answer in time")
    except aiohttp.ClientError as exc:
        return Attempt(False, None, f"connection: {exc}")
    if 200 <= status < 300:
        return Attempt(True, status, "delivered")
    if status == 410:
        return Attempt(False, status, "http_410: the receiver asked us to stop", final=True)
    return Attempt(False, status, f"http_{status}")
