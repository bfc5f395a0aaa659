"""The S3 file store against a real S3-compatible HTTP server (moto's server mode, started by
the tests): objects, content types, multipart uploads, links, and how failures surface."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from imgpipe_dev.infra import free_port
from imgpipe_dev.s3local import CREDENTIALS, LocalS3, s3_env
from imgpipe_runtime.files import InvalidKey, StoreMisconfigured, StoreUnavailable
from imgpipe_runtime.s3 import MULTIPART_THRESHOLD, PART_SIZE, S3FileStore, open_s3_file_store
from imgpipe_runtime.settings import StorageSettings
from tests.s3 import FaultyS3, keys_in, new_bucket, s3_client

JPEG = b"\xff\xd8\xff\xe0 not really a jpeg \xff\xd9"
IMAGE = "images/0123456789abcdef0123456789abcdef/000001-01-cat.jpg"
CSV = "outputs/output_0123456789abcdef0123456789abcdef.csv"


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def settings(endpoint_url: str, bucket: str, **more: object) -> StorageSettings:
    env = {k.lower(): v for k, v in s3_env(endpoint_url, bucket).items() if k.startswith("S")}
    return StorageSettings(**(env | more))  # type: ignore[arg-type]


@pytest.fixture
async def bucket(local_s3: LocalS3) -> str:
    return await new_bucket(local_s3.url)


@pytest.fixture
async def store(local_s3: LocalS3, bucket: str) -> AsyncIterator[S3FileStore]:
    async with open_s3_file_store(settings(local_s3.url, bucket)) as opened:
        yield opened


@pytest.fixture
async def faulty(local_s3: LocalS3) -> AsyncIterator[FaultyS3]:
    proxy = FaultyS3(local_s3.url, free_port())
    await proxy.up()
    yield proxy
    await proxy.close()


async def test_an_image_and_a_csv_read_back_with_their_bytes_and_content_types(
    store: S3FileStore, local_s3: LocalS3, bucket: str
) -> None:
    await store.write(IMAGE, JPEG, "image/jpeg")
    await store.write(CSV, b"a,b\r\n", "text/csv; charset=utf-8")

    assert await store.read(IMAGE) == JPEG
    async with s3_client(local_s3.url) as client:
        image = await client.head_object(Bucket=bucket, Key=IMAGE)
        csv = await client.head_object(Bucket=bucket, Key=CSV)
    assert (image["ContentType"], image["ContentLength"]) == ("image/jpeg", len(JPEG))
    assert csv["ContentType"] == "text/csv; charset=utf-8"


async def test_writing_a_key_again_replaces_the_one_object(
    store: S3FileStore, local_s3: LocalS3, bucket: str
) -> None:
    await store.write(IMAGE, b"first", "image/jpeg")
    await store.write(IMAGE, JPEG, "image/jpeg")
    await store.write(IMAGE, JPEG, "image/jpeg")

    assert await store.read(IMAGE) == JPEG
    assert await keys_in(local_s3.url, bucket) == [IMAGE]


async def test_a_body_above_the_threshold_goes_up_in_parts_and_reads_back_whole(
    store: S3FileStore, local_s3: LocalS3, bucket: str
) -> None:
    body = os.urandom(2 * PART_SIZE + 12345)
    assert len(body) > MULTIPART_THRESHOLD

    await store.write(CSV, body, "text/csv; charset=utf-8")

    assert await store.read(CSV) == body
    async with s3_client(local_s3.url) as client:
        head = await client.head_object(Bucket=bucket, Key=CSV)
        pending = await client.list_multipart_uploads(Bucket=bucket)
    assert head["ETag"].strip('"').endswith("-3"), "a multipart ETag names its part count"
    assert head["ContentType"] == "text/csv; charset=utf-8"
    assert pending.get("Uploads", []) == []


async def test_a_multipart_upload_that_fails_midway_is_aborted_and_leaves_nothing(
    local_s3: LocalS3, bucket: str, faulty: FaultyS3
) -> None:
    faulty.failing = lambda request: request.query.get("partNumber") == "2"

    async with open_s3_file_store(settings(faulty.url, bucket)) as store:
        with pytest.raises(StoreUnavailable, match="503"):
            await store.write(CSV, os.urandom(2 * PART_SIZE), "text/csv; charset=utf-8")

    async with s3_client(local_s3.url) as client:
        pending = await client.list_multipart_uploads(Bucket=bucket)
    assert pending.get("Uploads", []) == []
    assert await keys_in(local_s3.url, bucket) == []


async def test_a_presigned_link_downloads_the_object_over_plain_http_for_the_expiry(
    local_s3: LocalS3, bucket: str
) -> None:
    async with open_s3_file_store(settings(local_s3.url, bucket, s3_url_expiry=3600)) as store:
        await store.write(IMAGE, JPEG, "image/jpeg")
        url = await store.url_for(IMAGE)

    assert url.startswith(f"{local_s3.url}/{bucket}/{IMAGE}?")
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["3600"]
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/jpeg"
        assert await response.read() == JPEG


async def test_with_a_public_base_url_links_are_plain_urls_of_the_object(
    local_s3: LocalS3, bucket: str
) -> None:
    public = settings(
        local_s3.url, bucket, s3_public_base_url="https://cdn.example/img/", s3_prefix="shop"
    )
    async with open_s3_file_store(public) as store:
        assert await store.url_for(IMAGE) == f"https://cdn.example/img/shop/{IMAGE}"


async def test_a_prefix_puts_every_object_under_it(local_s3: LocalS3, bucket: str) -> None:
    async with open_s3_file_store(settings(local_s3.url, bucket, s3_prefix="/tenant-a/")) as store:
        await store.write(IMAGE, JPEG, "image/jpeg")
        assert await store.read(IMAGE) == JPEG
        url = await store.url_for(IMAGE)

    assert await keys_in(local_s3.url, bucket) == [f"tenant-a/{IMAGE}"]
    assert urlsplit(url).path == f"/{bucket}/tenant-a/{IMAGE}"


async def test_reading_a_missing_key_raises_file_not_found(store: S3FileStore) -> None:
    with pytest.raises(FileNotFoundError):
        await store.read("images/none.jpg")


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../x", "images/../../x", "a//b"])
async def test_a_key_that_could_leave_the_store_is_refused(store: S3FileStore, key: str) -> None:
    with pytest.raises(InvalidKey):
        await store.write(key, b"x", "image/jpeg")
    with pytest.raises(InvalidKey):
        await store.url_for(key)


async def test_a_missing_bucket_is_refused_at_open_in_one_line_naming_the_variable(
    local_s3: LocalS3,
) -> None:
    with pytest.raises(StoreMisconfigured) as refused:
        async with open_s3_file_store(settings(local_s3.url, "no-such-bucket-here")):
            pass

    message = str(refused.value)
    assert "'no-such-bucket-here' does not exist" in message and "S3_BUCKET" in message
    assert "\n" not in message


async def test_credentials_the_server_does_not_know_are_refused_at_open(
    tmp_path: object,
) -> None:
    # moto checks credentials only when told to; then ours belong to no user it knows.
    strict = LocalS3(free_port(), "", env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    await asyncio.to_thread(strict.start)
    try:
        with pytest.raises(StoreMisconfigured, match="refused the credentials"):
            async with open_s3_file_store(settings(strict.url, "any-bucket")):
                pass
    finally:
        await asyncio.to_thread(strict.stop)


async def test_a_stopped_server_makes_writes_unavailable_within_the_timeout(
    bucket: str,
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    async with open_s3_file_store(settings(nobody, bucket, s3_connect_timeout=1)) as store:
        started = asyncio.get_running_loop().time()
        with pytest.raises(StoreUnavailable, match="did not answer"):
            await store.write(IMAGE, JPEG, "image/jpeg")
    assert asyncio.get_running_loop().time() - started < 15


async def test_a_server_answering_503_makes_writes_unavailable(
    bucket: str, faulty: FaultyS3
) -> None:
    async with open_s3_file_store(settings(faulty.url, bucket)) as store:
        faulty.failing = lambda request: True
        with pytest.raises(StoreUnavailable, match="503 SlowDown"):
            await store.write(IMAGE, JPEG, "image/jpeg")
    assert faulty.refused == 3, "botocore's own attempts, then it gives up to our retries"


async def test_after_a_transient_failure_ready_asks_the_store_until_it_answers_again(
    bucket: str, faulty: FaultyS3
) -> None:
    async with open_s3_file_store(settings(faulty.url, bucket)) as store:
        await store.ready()
        faulty.failing = lambda request: True
        with pytest.raises(StoreUnavailable):
            await store.write(IMAGE, JPEG, "image/jpeg")
        with pytest.raises(StoreUnavailable):
            await store.ready()
        faulty.failing = lambda request: False
        await store.ready()
        asked = faulty.forwarded
        await store.ready()
        await store.ready()

    assert faulty.forwarded == asked, "once the store answers, ready costs no request"


async def test_a_server_slower_than_the_read_timeout_makes_writes_unavailable(
    bucket: str, faulty: FaultyS3
) -> None:
    async with open_s3_file_store(settings(faulty.url, bucket, s3_read_timeout=0.5)) as store:
        faulty.delay = 2.0
        with pytest.raises(StoreUnavailable, match="timeout"):
            await store.write(IMAGE, JPEG, "image/jpeg")
