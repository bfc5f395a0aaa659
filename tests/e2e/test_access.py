"""Access control with AUTH_MODE=required, on the four services as processes: API keys of
tenants, requests visible only to their owner, capability links, and per-tenant limits."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest
from pymongo import AsyncMongoClient

from imgpipe_runtime.auth import KeyStore
from tests.conftest import Namespace, new_namespace
from tests.e2e.conftest import Origin, RunningStack, WebhookReceiver, eventually, stack_running

ALPHA_KEY = "alpha-static-key-0123456789abcdef"
LIMITED_KEY = "limited-static-key-0123456789abcd"
CROWDED_KEY = "crowded-static-key-0123456789abcd"
KEY_CACHE_SECONDS = 1


@dataclass
class AuthStack:
    running: RunningStack
    namespace: Namespace
    beta_key: str

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
async def namespace_for_auth(rabbitmq_url: str, mongodb_url: str) -> AsyncIterator[Namespace]:
    async with new_namespace(rabbitmq_url, mongodb_url) as ns:
        yield ns


@pytest.fixture(scope="module")
async def key_store(namespace_for_auth: Namespace) -> AsyncIterator[KeyStore]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        namespace_for_auth.mongodb_url, tz_aware=True
    )
    yield KeyStore(client[namespace_for_auth.database])
    await client.close()


@pytest.fixture(scope="module")
def auth_stack(
    namespace_for_auth: Namespace, key_store: KeyStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuthStack]:
    limits = {"limited": {"uploads_per_minute": 2}, "crowded": {"images_in_flight": 3}}
    env = {
        "IMGPIPE_ALLOW_PRIVATE_NETWORKS": "true",
        "AUTH_MODE": "required",
        "API_KEYS": f"alpha:{ALPHA_KEY},limited:{LIMITED_KEY},crowded:{CROWDED_KEY}",
        "KEY_CACHE_SECONDS": str(KEY_CACHE_SECONDS),
        "LINK_SECRET": "a-test-link-secret-0123456789",
        "TENANT_LIMITS": json.dumps(limits),
    }
    root = tmp_path_factory.mktemp("auth-stack")
    with stack_running(namespace_for_auth, root, env) as running:
        yield AuthStack(running, namespace_for_auth, beta_key="")


@pytest.fixture(scope="module")
async def stack(auth_stack: AuthStack, key_store: KeyStore) -> AuthStack:
    if not auth_stack.beta_key:
        auth_stack.beta_key = (await key_store.create("beta")).key
    return auth_stack


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def csv_of(origin: Origin, names: list[str]) -> bytes:
    rows = [f"{i},SKU{i},{origin.base_url}/{name}" for i, name in enumerate(names, start=1)]
    return ("S. No.,Product Name,Input Image Urls\n" + "\n".join(rows) + "\n").encode()


async def post_upload(
    http: aiohttp.ClientSession,
    stack: AuthStack,
    body: bytes,
    key: str | None,
    webhook_url: str | None = None,
) -> tuple[int, dict[str, Any], aiohttp.typedefs.LooseHeaders]:
    form = aiohttp.FormData()
    form.add_field("file", body, filename="products.csv", content_type="text/csv")
    if webhook_url:
        form.add_field("webhook_url", webhook_url)
    headers = stack.headers(key) if key else {}
    async with http.post(
        f"{stack.running.ingest_url}/upload/", data=form, headers=headers
    ) as response:
        return response.status, await response.json(), response.headers


async def uploaded(
    http: aiohttp.ClientSession, stack: AuthStack, origin: Origin, key: str, **kwargs: Any
) -> str:
    status, body, _ = await post_upload(http, stack, csv_of(origin, ["cat.jpg"]), key, **kwargs)
    assert status == 202, body
    request_id: str = body["request_id"]
    return request_id


async def final_status(
    http: aiohttp.ClientSession, stack: AuthStack, request_id: str, key: str
) -> dict[str, Any]:
    url = f"{stack.running.status_url}/status/{request_id}"

    async def final() -> dict[str, Any] | None:
        async with http.get(url, headers=stack.headers(key)) as response:
            assert response.status == 200
            body: dict[str, Any] = await response.json()
        return body if body["status"] in ("Completed", "Failed") else None

    result: dict[str, Any] = await eventually(final)  # type: ignore[assignment]
    return result


async def test_an_upload_without_a_key_is_refused_with_401_and_www_authenticate(
    stack: AuthStack, origin: Origin, http: aiohttp.ClientSession
) -> None:
    status, body, headers = await post_upload(http, stack, csv_of(origin, ["cat.jpg"]), None)

    assert status == 401
    assert headers["WWW-Authenticate"] == "Bearer"
    assert "Authorization: Bearer" in body["detail"]


@pytest.mark.parametrize("header", ["Basic YWxwaGE6eA==", "Bearer", "Bearer a b", ALPHA_KEY])
async def test_a_malformed_authorization_header_is_refused_with_401(
    stack: AuthStack, origin: Origin, http: aiohttp.ClientSession, header: str
) -> None:
    form = aiohttp.FormData()
    form.add_field("file", csv_of(origin, ["cat.jpg"]), filename="p.csv")
    async with http.post(
        f"{stack.running.ingest_url}/upload/", data=form, headers={"Authorization": header}
    ) as response:
        assert response.status == 401
    async with http.get(
        f"{stack.running.status_url}/requests", headers={"Authorization": header}
    ) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "key", ["imgpipe_0123456789abcdef_made-up-secret", "not-a-key-at-all-but-long-enough"]
)
async def test_an_unknown_key_is_refused_with_401(
    stack: AuthStack, origin: Origin, http: aiohttp.ClientSession, key: str
) -> None:
    status, body, _ = await post_upload(http, stack, csv_of(origin, ["cat.jpg"]), key)

    assert status == 401
    assert "unknown or revoked" in body["detail"]


async def test_a_valid_key_gets_202_and_a_revoked_one_401_within_the_cache_time(
    stack: AuthStack, key_store: KeyStore, origin: Origin, http: aiohttp.ClientSession
) -> None:
    created = await key_store.create("delta")
    await uploaded(http, stack, origin, created.key)

    await key_store.revoke(created.key_id)

    async def refused() -> bool:
        status, _, _ = await post_upload(http, stack, csv_of(origin, ["cat.jpg"]), created.key)
        return status == 401

    await eventually(refused, within=KEY_CACHE_SECONDS + 5)


async def test_a_key_created_in_the_database_uploads_and_reads_its_own_request(
    stack: AuthStack, origin: Origin, http: aiohttp.ClientSession
) -> None:
    request_id = await uploaded(http, stack, origin, stack.beta_key)

    done = await final_status(http, stack, request_id, stack.beta_key)

    assert done["status"] == "Completed"
    async with http.get(
        f"{stack.running.status_url}/requests", headers=stack.headers(stack.beta_key)
    ) as response:
        assert request_id in [r["request_id"] for r in await response.json()]


async def test_another_tenant_can_neither_list_read_stream_nor_download_a_request(
    stack: AuthStack, origin: Origin, http: aiohttp.ClientSession
) -> None:
    request_id = await uploaded(http, stack, origin, stack.beta_key)
    done = await final_status(http, stack, request_id, stack.beta_key)
    base, alpha = stack.running.status_url, stack.headers(ALPHA_KEY)

    for path in (
        f"/status/{request_id}",
        f"/status/{request_id}/events",
        f"/status/{request_id}/images",
        f"/files/{done['output_csv_path']}",
    ):
        async with http.get(base + path, headers=alpha) as response:
            assert response.status == 404, path
            assert "check the id" in (await response.text()) or "no such file" in (
                await response.text()
            )
    async with http.get(f"{base}/requests?limit=100", headers=alpha) as response:
        assert request_id not in [r["request_id"] for r in await response.json()]
    async with http.get(
        f"{base}/files/{done['output_csv_path']}", headers=stack.headers(stack.beta_key)
    ) as response:
        assert response.status == 200


async def test_without_a_key_the_status_api_answers_401_but_health_and_metrics_answer(
    stack: AuthStack, http: aiohttp.ClientSession
) -> None:
    base = stack.running.status_url
    request_id = "0" * 32
    for path in (
        "/requests",
        f"/status/{request_id}",
        f"/status/{request_id}/events",
        f"/status/{request_id}/images",
        f"/files/outputs/output_{request_id}.csv",
    ):
        async with http.get(base + path) as response:
            assert response.status == 401, path
            assert response.headers["WWW-Authenticate"] == "Bearer"
    for url in (f"{base}/healthz", f"{base}/metrics", f"{stack.running.ingest_url}/healthz"):
        async with http.get(url) as response:
            assert response.status == 200, url


async def test_links_from_the_webhook_and_the_csv_download_without_a_key(
    stack: AuthStack,
    origin: Origin,
    webhook_receiver: WebhookReceiver,
    http: aiohttp.ClientSession,
) -> None:
    request_id = await uploaded(
        http, stack, origin, stack.beta_key, webhook_url=webhook_receiver.url
    )

    async def delivered() -> dict[str, Any] | None:
        for call in webhook_receiver.calls:
            payload: dict[str, Any] = json.loads(call.body)
            if payload["request_id"] == request_id:
                return payload
        return None

    payload: dict[str, Any] = await eventually(delivered)  # type: ignore[assignment]
    async with http.get(payload["output_csv_url"]) as response:
        assert response.status == 200
        rows = list(csv.reader(io.StringIO(await response.text())))
    image_url = rows[1][3]
    async with http.get(image_url) as response:
        assert response.status == 200
        assert (await response.read())[:2] == b"\xff\xd8"

    parts = urlsplit(image_url)
    async with http.get(urlunsplit(parts._replace(query=""))) as response:
        assert response.status == 401
    token = parts.query.removeprefix("token=")
    tampered = urlunsplit(parts._replace(query=f"token={token[:-2]}xx"))
    async with http.get(tampered) as response:
        assert response.status == 401
    other_key = urlunsplit(parts._replace(path=f"/files/outputs/output_{request_id}.csv"))
    async with http.get(other_key) as response:
        assert response.status == 401  # a token opens only the file it was made for


async def test_uploads_over_the_per_minute_limit_get_429_with_retry_after(
    stack: AuthStack, origin: Origin, http: aiohttp.ClientSession
) -> None:
    # Two uploads a minute are allowed; the third in the same minute is refused. A minute
    # boundary between them resets the count, so allow one more round before the 429.
    accepted = 0
    for _ in range(5):
        status, body, headers = await post_upload(
            http, stack, csv_of(origin, ["cat.jpg"]), LIMITED_KEY
        )
        if status != 202:
            break
        accepted += 1

    assert status == 429
    assert 2 <= accepted <= 3
    assert "2 uploads per minute" in body["detail"]
    assert 1 <= int(headers["Retry-After"]) <= 60


async def test_an_upload_over_the_images_in_flight_gets_429_with_retry_after(
    stack: AuthStack, origin: Origin, http: aiohttp.ClientSession
) -> None:
    four_images = csv_of(origin, ["cat.jpg", "coffee.jpg", "astronaut.jpg", "hubble.jpg"])

    status, body, headers = await post_upload(http, stack, four_images, CROWDED_KEY)

    assert status == 429
    assert "3 images in flight" in body["detail"]
    assert int(headers["Retry-After"]) > 0
    status, _, _ = await post_upload(http, stack, csv_of(origin, ["cat.jpg"]), CROWDED_KEY)
    assert status == 202
