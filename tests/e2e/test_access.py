"""Access control with AUTH_MODE=required, on the four services as processes: API keys of
tenants, requests visible only to their owner, capability links, and per-tenant limits."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect
from pymongo import AsyncMongoClient

from imgpipe_runtime.auth import KeyStore
from tests.conftest import Namespace, new_namespace
from tests.e2e.conftest import (
    Origin,
    RunningStack,
    WebhookReceiver,
    eventually,
    stack_running,
    webhook_payload,
)
from tests.e2e.test_cli import cli_env, in_pipe, write_csv
from tests.e2e.test_dashboard import browser

__all__ = ["browser"]  # the Chromium fixture of the dashboard tests

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
        # Every image is work here (the fairness test's big upload names one photo 1,500
        # times); reuse across tenants is tested in test_reuse and test_deletion.
        "REUSE": "off",
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

    payload = await webhook_payload(webhook_receiver, request_id)
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
    flipped = "A" if token[-5] != "A" else "B"  # inside the signature, not its padding bits
    tampered = urlunsplit(parts._replace(query=f"token={token[:-5]}{flipped}{token[-4:]}"))
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


async def test_the_cli_creates_lists_and_revokes_keys_and_submits_with_one(
    stack: AuthStack, origin: Origin, tmp_path: Path
) -> None:
    ns = stack.namespace
    env = cli_env(stack.running) | {"MONGODB_URL": ns.mongodb_url, "MONGODB_DB": ns.database}
    created = await asyncio.to_thread(in_pipe, ["keys", "create", "epsilon"], env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("imgpipe_")
    csv_file = write_csv(tmp_path / "p.csv", origin, ["cat.jpg"])

    no_key = await asyncio.to_thread(in_pipe, ["submit", str(csv_file)], env)
    submitted = await asyncio.to_thread(
        in_pipe, ["submit", str(csv_file), "--wait", "--json"], env | {"IMGPIPE_API_KEY": key}
    )

    assert no_key.returncode == 1
    assert "401" in no_key.stderr and "Authorization: Bearer" in no_key.stderr
    assert submitted.returncode == 0, submitted.stderr
    request_id = json.loads(submitted.stdout)["request_id"]
    listed = await asyncio.to_thread(in_pipe, ["keys", "list", "--json"], env)
    mine = [k for k in json.loads(listed.stdout) if k["tenant"] == "epsilon"]
    assert len(mine) == 1 and mine[0]["revoked_at"] is None
    secret = key.split("_", 2)[2]  # token_urlsafe may itself contain "_"
    assert secret not in listed.stdout  # the secret is never shown again
    downloaded = await asyncio.to_thread(
        in_pipe, ["download", request_id, "-o", str(tmp_path / "out.csv"), "--api-key", key], env
    )
    assert downloaded.returncode == 0, downloaded.stderr

    revoked = await asyncio.to_thread(in_pipe, ["keys", "revoke", mine[0]["key_id"]], env)
    assert revoked.returncode == 0, revoked.stderr

    async def refused() -> bool:
        status = await asyncio.to_thread(in_pipe, ["status", request_id, "--api-key", key], env)
        return status.returncode == 1 and "401" in status.stderr

    await eventually(refused, within=KEY_CACHE_SECONDS + 5)
    unknown = await asyncio.to_thread(in_pipe, ["keys", "revoke", "0123456789abcdef"], env)
    assert unknown.returncode == 1 and "no API key has the id" in unknown.stderr


async def sign_in(page: Page, stack: AuthStack, key: str) -> None:
    await page.goto(f"{stack.running.status_url}/dashboard/")
    await page.fill("#api-key", key)
    await page.click("#login-button")
    await expect(page.locator("#upload-form")).to_be_visible()


async def test_the_dashboard_signs_in_with_a_key_and_shows_only_the_tenants_own_requests(
    stack: AuthStack, origin: Origin, browser: Browser, tmp_path: Path
) -> None:
    csv_file = tmp_path / "products.csv"
    csv_file.write_bytes(csv_of(origin, ["cat.jpg", "coffee.jpg"]))
    owner = await browser.new_context()
    other = await browser.new_context()
    try:
        page = await owner.new_page()
        await page.goto(f"{stack.running.status_url}/dashboard/")
        await page.fill("#api-key", "imgpipe_0123456789abcdef_wrong")
        await page.click("#login-button")
        await expect(page.locator("#login-error")).to_contain_text("refused")

        await sign_in(page, stack, stack.beta_key)
        await page.set_input_files("#file-input", str(csv_file))
        await page.click("#upload-button")
        await page.wait_for_url(re.compile(r"#/requests/[0-9a-f]{32}$"))
        await expect(page.locator("#status")).to_have_text("Completed", timeout=60_000)
        request_id = page.url.rsplit("/", 1)[1]
        await expect(page.locator("#samples figure")).to_have_count(4)
        await page.goto(f"{stack.running.status_url}/dashboard/#/")
        await expect(page.locator("#recent")).to_contain_text(request_id)

        intruder = await other.new_page()
        await sign_in(intruder, stack, ALPHA_KEY)
        await expect(intruder.locator("#recent")).not_to_contain_text(request_id)
        await intruder.goto(f"{stack.running.status_url}/dashboard/#/requests/{request_id}")
        await expect(intruder.locator("#request-error")).to_contain_text("not yours")
        await expect(intruder.locator("#status")).to_have_count(0)
    finally:
        await owner.close()
        await other.close()


async def test_a_small_upload_finishes_while_another_tenants_big_upload_is_still_running(
    stack: AuthStack, origin: Origin, http: aiohttp.ClientSession
) -> None:
    # Last in this module: the big request keeps the shared processor busy until the stack
    # stops (its queues go with the test namespace).
    big = csv_of(origin, ["hubble.jpg"] * 1500)
    status, body, _ = await post_upload(http, stack, big, ALPHA_KEY)
    assert status == 202, body
    big_id = body["request_id"]

    async def started() -> bool:
        async with http.get(
            f"{stack.running.status_url}/status/{big_id}", headers=stack.headers(ALPHA_KEY)
        ) as response:
            return (await response.json())["progress"]["processed"] > 0

    await eventually(started)
    small_id = await uploaded(http, stack, origin, stack.beta_key)
    small = await final_status(http, stack, small_id, stack.beta_key)

    async with http.get(
        f"{stack.running.status_url}/status/{big_id}", headers=stack.headers(ALPHA_KEY)
    ) as response:
        big_now = await response.json()
    assert small["status"] == "Completed"
    assert big_now["status"] == "Processing"
    done = big_now["progress"]["processed"] + big_now["progress"]["failed"]
    assert done < big_now["progress"]["total"] / 2, big_now["progress"]
