"""AUTH_MODE=required on the s3 backend: the presigned links handed out in webhooks and CSVs are
the capabilities (no key needed), and `/files/<key>` redirects into the bucket only for the
request's owner."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from imgpipe_dev.s3local import LocalS3, s3_env
from tests.conftest import Namespace, new_namespace
from tests.e2e.conftest import (
    Origin,
    RunningStack,
    WebhookReceiver,
    stack_running,
    webhook_payload,
)
from tests.s3 import new_bucket

OWNER_KEY = "owner-static-key-0123456789abcdef"
OTHER_KEY = "other-static-key-0123456789abcdef"


@pytest.fixture(scope="module")
async def auth_s3_namespace(rabbitmq_url: str, mongodb_url: str) -> AsyncIterator[Namespace]:
    async with new_namespace(rabbitmq_url, mongodb_url) as ns:
        yield ns


@pytest.fixture(scope="module")
async def bucket(local_s3: LocalS3) -> str:
    return await new_bucket(local_s3.url)


@pytest.fixture(scope="module")
def stack(
    auth_s3_namespace: Namespace,
    local_s3: LocalS3,
    bucket: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningStack]:
    root = tmp_path_factory.mktemp("auth-s3-stack")
    env = s3_env(local_s3.url, bucket) | {
        "IMGPIPE_ALLOW_PRIVATE_NETWORKS": "true",
        "AUTH_MODE": "required",
        "API_KEYS": f"owner:{OWNER_KEY},other:{OTHER_KEY}",
        "LINK_SECRET": "auth-s3-test-link-secret-0123",
    }
    with stack_running(auth_s3_namespace, root, env) as running:
        yield running


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_presigned_links_work_without_a_key_and_files_redirects_only_for_the_owner(
    stack: RunningStack,
    local_s3: LocalS3,
    bucket: str,
    origin: Origin,
    webhook_receiver: WebhookReceiver,
) -> None:
    form = aiohttp.FormData()
    form.add_field(
        "file",
        f"S. No.,Product Name,Input Image Urls\n1,SKU1,{origin.base_url}/cat.jpg\n".encode(),
        filename="p.csv",
    )
    form.add_field("webhook_url", webhook_receiver.url)
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{stack.ingest_url}/upload/", data=form, headers=bearer(OWNER_KEY)
        ) as response:
            assert response.status == 202, await response.text()
            request_id = (await response.json())["request_id"]

        payload = await webhook_payload(webhook_receiver, request_id)
        in_bucket = f"{local_s3.url}/{bucket}/"
        assert payload["output_csv_url"].startswith(in_bucket)
        async with http.get(payload["output_csv_url"]) as response:
            assert response.status == 200
            rows = list(csv.reader(io.StringIO(await response.text())))
        assert rows[1][3].startswith(in_bucket)
        async with http.get(rows[1][3]) as response:
            assert response.status == 200
            assert (await response.read())[:2] == b"\xff\xd8"

        link = f"{stack.status_url}/files/{payload['output_csv_path']}"
        async with http.get(link, allow_redirects=False) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"] == "Bearer"
        async with http.get(link, allow_redirects=False, headers=bearer(OTHER_KEY)) as response:
            assert response.status == 404
        async with http.get(link, allow_redirects=False, headers=bearer(OWNER_KEY)) as response:
            assert response.status == 307
            assert response.headers["Location"].startswith(in_bucket)
