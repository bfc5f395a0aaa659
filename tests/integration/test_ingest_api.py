"""The ingest HTTP API as a real process on the real broker and database.

Only ingest runs (no processor), so every image job it queues stays in the processor's work
queue and can be counted. One ingest process serves the whole module; before each test the
work queue is purged and the collections are emptied, so every test starts from zero.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import orjson
import pytest
from pymongo import AsyncMongoClient

from imgpipe_contracts import documents
from imgpipe_contracts.events import ImageBatchRequested
from imgpipe_contracts.topology import PROCESSOR_IMAGE_REQUESTED, Topology
from imgpipe_dev.infra import free_port
from imgpipe_dev.stack import Stack
from imgpipe_ingest.service import BATCH_IMAGES
from tests.conftest import Namespace, new_namespace

PUBLIC_BASE_URL = "http://127.0.0.1:9"
MAX_UPLOAD_BYTES = 20_000
MAX_ROWS = 50
HEADER = "S. No.,Product Name,Input Image Urls\r\n"
SEED_CSV = (
    HEADER
    + '1,SKU1,"https://example.com/a.jpg, https://example.com/b.jpg"\r\n'
    + '2,"Mug, ""large""",https://example.com/c.jpg\r\n'
)
WEBHOOK_URL = "https://hooks.example.com/imgpipe"
BOUNDARY = "imgpipe-test-boundary-7d1f"

Mongo = AsyncMongoClient[dict[str, object]]


@pytest.fixture(scope="module")
async def ns(rabbitmq_url: str, mongodb_url: str) -> AsyncIterator[Namespace]:
    """Module-scoped: overrides the per-test namespace, so `channel` and `mongo` see the
    namespace the module's ingest process runs in."""
    async with new_namespace(rabbitmq_url, mongodb_url) as namespace:
        yield namespace


@pytest.fixture(scope="module")
async def ingest_url(ns: Namespace, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    port = free_port()
    env = (
        os.environ
        | ns.env()
        | {
            "INGEST_PORT": str(port),
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
            "MAX_ROWS": str(MAX_ROWS),
            "LOG_LEVEL": "INFO",
        }
    )
    env.pop("IMGPIPE_ALLOW_PRIVATE_NETWORKS", None)
    log_dir = tmp_path_factory.mktemp("ingest-logs")
    stack = Stack(env, log_dir=log_dir)
    try:
        stack.start(["ingest"])
        await asyncio.to_thread(stack.wait_healthy, 60)
        yield f"http://127.0.0.1:{port}"
    finally:
        stack.stop()
        _print_logs(log_dir)


def _print_logs(log_dir: Path) -> None:
    for log in sorted(log_dir.glob("*.log")):
        print(f"----- {log.name} -----\n{log.read_text()[-6000:]}")


@pytest.fixture
def work_queue(ns: Namespace) -> str:
    """The processor's work queue, where ingest's image jobs wait (no processor runs)."""
    name: str = Topology(prefix=ns.prefix).queue(PROCESSOR_IMAGE_REQUESTED)
    return name


@pytest.fixture(autouse=True)
async def clean_slate(
    ingest_url: str,
    channel: aio_pika.abc.AbstractChannel,
    mongo: Mongo,
    ns: Namespace,
    work_queue: str,
) -> None:
    queue = await channel.declare_queue(work_queue, passive=True)
    await queue.purge()
    db = mongo[ns.database]
    await db[documents.REQUESTS].delete_many({})
    await db[documents.PRODUCTS].delete_many({})


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


# --- helpers ----------------------------------------------------------------------------------


async def depth(channel: aio_pika.abc.AbstractChannel, queue: str) -> int:
    declared = await channel.declare_queue(queue, passive=True)
    return declared.declaration_result.message_count or 0


async def wait_for_depth(
    channel: aio_pika.abc.AbstractChannel, queue: str, expected: int, within: float = 5
) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while (found := await depth(channel, queue)) != expected:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{queue}: {found} messages, expected {expected}")
        await asyncio.sleep(0.05)


def csv_form(data: bytes, webhook_url: str | None = None) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", data, filename="products.csv", content_type="text/csv")
    if webhook_url is not None:
        form.add_field("webhook_url", webhook_url)
    return form


def multipart_body(data: bytes) -> bytes:
    """A multipart/form-data body with one `file` part, built by hand so its size is exact."""
    return (
        (
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="file"; filename="products.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


MULTIPART_HEADERS = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def big_csv(size: int) -> bytes:
    """A valid CSV (within MAX_ROWS) of at least `size` bytes: long product names."""
    name = "x" * 2000
    rows = [f"{i},{name},https://example.com/{i}.jpg\r\n" for i in range(1, 13)]
    data = (HEADER + "".join(rows)).encode()
    assert len(data) >= size
    return data


def multipart_of_size(size: int) -> bytes:
    """A valid upload (one image per row) whose multipart body is exactly `size` bytes."""

    def body(names: list[str]) -> bytes:
        rows = "".join(f"{i},{n},https://example.com/{i}.jpg\r\n" for i, n in enumerate(names, 1))
        return multipart_body((HEADER + rows).encode())

    names = ["n" * 5000] * (size // 5100)
    names.append("n" * (size - len(body([*names, ""]))))
    payload = body(names)
    assert len(payload) == size
    return payload


async def in_chunks(payload: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for start in range(0, len(payload), size):
        yield payload[start : start + size]


async def post(http: aiohttp.ClientSession, url: str, data: Any, **kwargs: Any) -> tuple[int, Any]:
    async with http.post(url, data=data, **kwargs) as response:
        raw = await response.read()
        if response.content_type == "application/json":
            return response.status, orjson.loads(raw)
        return response.status, raw.decode(errors="replace")


@pytest.fixture
def assert_nothing_recorded(
    channel: aio_pika.abc.AbstractChannel, work_queue: str, mongo: Mongo, ns: Namespace
) -> Callable[[], Awaitable[None]]:
    """Checks that nothing was queued and no request or product was stored."""

    async def check() -> None:
        assert await depth(channel, work_queue) == 0
        db = mongo[ns.database]
        assert await db[documents.REQUESTS].count_documents({}) == 0
        assert await db[documents.PRODUCTS].count_documents({}) == 0

    return check


# --- accepted uploads -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/upload/", "/upload"])
async def test_a_seed_csv_is_recorded_and_queued_with_one_batch_of_its_rows(
    http: aiohttp.ClientSession,
    ingest_url: str,
    channel: aio_pika.abc.AbstractChannel,
    work_queue: str,
    mongo: Mongo,
    ns: Namespace,
    path: str,
) -> None:
    status, body = await post(http, ingest_url + path, csv_form(SEED_CSV.encode(), WEBHOOK_URL))

    assert status == 202, body
    assert set(body) == {"request_id", "status_url"}
    request_id = body["request_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert body["status_url"] == f"{PUBLIC_BASE_URL}/status/{request_id}"

    await wait_for_depth(channel, work_queue, 1)
    queue = await channel.declare_queue(work_queue, passive=True)
    message = await queue.get(no_ack=True)
    assert message.type == "image.requested.batch"
    jobs = list(ImageBatchRequested.model_validate_json(message.body).jobs())
    assert sorted(
        (j.request_id, j.row_index, j.position, j.serial_number, j.product_name, j.url)
        for j in jobs
    ) == [
        (request_id, 0, 0, 1, "SKU1", "https://example.com/a.jpg"),
        (request_id, 0, 1, 1, "SKU1", "https://example.com/b.jpg"),
        (request_id, 1, 0, 2, 'Mug, "large"', "https://example.com/c.jpg"),
    ]

    db = mongo[ns.database]
    request = await db[documents.REQUESTS].find_one({"_id": request_id})
    assert request is not None
    assert request["status"] == "Pending"
    assert (request["rows"], request["rows_recorded"], request["total"]) == (2, 0, 3)
    assert (request["processed"], request["failed"]) == (0, 0)
    assert request["webhook_url"] == WEBHOOK_URL
    assert await db[documents.REQUESTS].count_documents({}) == 1
    # The rows travel with the jobs; the status service records them as products.
    assert await db[documents.PRODUCTS].count_documents({}) == 0


async def test_without_a_webhook_url_the_request_records_none(
    http: aiohttp.ClientSession,
    ingest_url: str,
    channel: aio_pika.abc.AbstractChannel,
    work_queue: str,
    mongo: Mongo,
    ns: Namespace,
) -> None:
    status, body = await post(http, f"{ingest_url}/upload/", csv_form(SEED_CSV.encode(), "  "))

    assert status == 202, body
    await wait_for_depth(channel, work_queue, 1)
    request = await mongo[ns.database][documents.REQUESTS].find_one({"_id": body["request_id"]})
    assert request is not None
    assert request["webhook_url"] is None


async def test_a_chunked_upload_under_the_cap_is_accepted(
    http: aiohttp.ClientSession,
    ingest_url: str,
    channel: aio_pika.abc.AbstractChannel,
    work_queue: str,
) -> None:
    payload = multipart_body(SEED_CSV.encode())

    status, body = await post(
        http, f"{ingest_url}/upload/", in_chunks(payload, 64), headers=MULTIPART_HEADERS
    )

    assert status == 202, body
    await wait_for_depth(channel, work_queue, 1)


# --- rejected CSV files -----------------------------------------------------------------------


async def test_a_wrong_header_is_rejected_naming_line_1(
    http: aiohttp.ClientSession,
    ingest_url: str,
    assert_nothing_recorded: Callable[[], Awaitable[None]],
) -> None:
    data = b"Serial,Name,Urls\r\n1,SKU1,https://example.com/a.jpg\r\n"

    status, body = await post(http, f"{ingest_url}/upload/", csv_form(data))

    assert status == 422
    assert body == {
        "detail": "the upload was rejected (1 problem); fix it and upload again",
        "problems": [
            {
                "line": 1,
                "message": "the header must be 'S. No.,Product Name,Input Image Urls'; "
                "found 'Serial,Name,Urls'",
            }
        ],
        "truncated": False,
    }
    await assert_nothing_recorded()


async def test_every_bad_row_is_reported_with_its_line(
    http: aiohttp.ClientSession,
    ingest_url: str,
    assert_nothing_recorded: Callable[[], Awaitable[None]],
) -> None:
    data = (
        HEADER
        + "1,SKU1,https://example.com/a.jpg\r\n"
        + "2,SKU2,ftp://example.com/b.jpg\r\n"
        + "1,SKU3,https://example.com/c.jpg\r\n"
    ).encode()

    status, body = await post(http, f"{ingest_url}/upload/", csv_form(data))

    assert status == 422
    assert body == {
        "detail": "the upload was rejected (2 problems); fix it and upload again",
        "problems": [
            {
                "line": 3,
                "message": "URL 'ftp://example.com/b.jpg' must start with http:// or https://",
            },
            {"line": 4, "message": "S. No. 1 is used again (first on line 2)"},
        ],
        "truncated": False,
    }
    await assert_nothing_recorded()


async def test_at_most_50_problems_are_listed_and_the_rest_is_flagged(
    http: aiohttp.ClientSession,
    ingest_url: str,
    assert_nothing_recorded: Callable[[], Awaitable[None]],
) -> None:
    # 30 rows with two problems each: 60 problems, of which the first 50 are listed.
    rows = "".join(f"x{i},SKU{i},ftp://example.com/{i}.jpg\n" for i in range(1, 31))

    status, body = await post(http, f"{ingest_url}/upload/", csv_form((HEADER + rows).encode()))

    assert status == 422
    assert body["detail"] == "the upload was rejected (50 problems shown); fix it and upload again"
    assert body["truncated"] is True
    assert len(body["problems"]) == 50
    assert [p["line"] for p in body["problems"][:4]] == [2, 2, 3, 3]
    assert body["problems"][-1]["line"] == 26
    await assert_nothing_recorded()


async def test_more_rows_than_max_rows_are_rejected(
    http: aiohttp.ClientSession,
    ingest_url: str,
    assert_nothing_recorded: Callable[[], Awaitable[None]],
) -> None:
    rows = "".join(f"{i},SKU{i},https://example.com/{i}.jpg\n" for i in range(1, MAX_ROWS + 2))
    data = (HEADER + rows).encode()

    status, body = await post(http, f"{ingest_url}/upload/", csv_form(data))

    assert status == 422
    assert body["problems"] == [
        {"line": MAX_ROWS + 2, "message": f"more than {MAX_ROWS} product rows; split the file"}
    ]
    await assert_nothing_recorded()


async def test_non_utf8_bytes_are_415(
    http: aiohttp.ClientSession,
    ingest_url: str,
    assert_nothing_recorded: Callable[[], Awaitable[None]],
) -> None:
    data = HEADER.encode() + "1,Café,https://example.com/a.jpg\r\n".encode("latin-1")

    status, body = await post(http, f"{ingest_url}/upload/", csv_form(data))

    assert status == 415
    [problem] = body["problems"]
    assert problem["line"] is None
    assert "not UTF-8" in problem["message"]
    assert body["detail"] == "the upload was rejected (1 problem); fix it and upload again"
    await assert_nothing_recorded()


async def test_binary_data_is_415(
    http: aiohttp.ClientSession,
    ingest_url: str,
    assert_nothing_recorded: Callable[[], Awaitable[None]],
) -> None:
    data = HEADER.encode() + b"1,SKU\x001,https://example.com/a.jpg\r\n"

    status, body = await post(http, f"{ingest_url}/upload/", csv_form(data))

    assert status == 415
    assert body["problems"] == [
        {
            "line": 2,
            "message": "the file contains binary data (NUL bytes); upload a CSV text file",
        }
    ]
    await assert_nothing_recorded()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty; expected a header and rows"),
        (b"\r\n\r\n", "the file is empty; expected a header and rows"),
        (HEADER.encode(), "the file has a header but no product rows"),
    ],
    ids=["empty", "blank-lines", "header-only"],
)
async def test_a_file_without_rows_is_422(
    http: aiohttp.ClientSession,
    ingest_url: str,
    data: bytes,
    message: str,
    assert_nothing_recorded: Callable[[], Awaitable[None]],
) -> None:
    status, body = await post(http, f"{ingest_url}/upload/", csv_form(data))

    assert status == 422
    assert body == {
        "detail": "the upload was rejected (1 problem); fix it and upload again",
        "problems": [{"line": None, "message": message}],
        "truncated": False,
    }
    await assert_nothing_recorded()


# --- the size cap -----------------------------------------------------------------------------

TOO_LARGE = {"detail": f"the upload is larger than {MAX_UPLOAD_BYTES} bytes; split the file"}


async def test_a_declared_content_length_over_the_cap_is_413(
    http: aiohttp.ClientSession,
    ingest_url: str,
    assert_nothing_recorded: Callable[[], Awaitable[None]],
) -> None:
    payload = multipart_body(big_csv(MAX_UPLOAD_BYTES + 1000))

    async with http.post(
        f"{ingest_url}/upload/", data=payload, headers=MULTIPART_HEADERS
    ) as response:
        assert response.request_info.headers["Content-Length"] == str(len(payload))
        assert response.status == 413
        assert await response.json() == TOO_LARGE
    await assert_nothing_recorded()


async def test_a_chunked_body_over_the_cap_is_413(
    http: aiohttp.ClientSession,
    ingest_url: str,
    assert_nothing_recorded: Callable[[], Awaitable[None]],
) -> None:
    payload = multipart_body(big_csv(MAX_UPLOAD_BYTES + 1000))

    async with http.post(
        f"{ingest_url}/upload/", data=in_chunks(payload), headers=MULTIPART_HEADERS
    ) as response:
        assert "Content-Length" not in response.request_info.headers
        assert response.request_info.headers["Transfer-Encoding"] == "chunked"
        assert response.status == 413
        assert await response.json() == TOO_LARGE
    await assert_nothing_recorded()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    ("size", "expected"),
    [(MAX_UPLOAD_BYTES, 202), (MAX_UPLOAD_BYTES + 1, 413)],
    ids=["at-the-cap", "one-byte-over"],
)
async def test_the_cap_counts_every_byte_of_the_body(
    http: aiohttp.ClientSession,
    ingest_url: str,
    channel: aio_pika.abc.AbstractChannel,
    work_queue: str,
    size: int,
    expected: int,
    chunked: bool,
) -> None:
    payload = multipart_of_size(size)
    data = in_chunks(payload) if chunked else payload

    status, body = await post(http, f"{ingest_url}/upload/", data, headers=MULTIPART_HEADERS)

    assert status == expected, body
    if expected == 413:
        assert body == TOO_LARGE
        assert await depth(channel, work_queue) == 0
    else:
        rows = size // 5100 + 1
        await wait_for_depth(channel, work_queue, -(-rows // BATCH_IMAGES))


# --- form fields ------------------------------------------------------------------------------


async def test_a_missing_file_field_is_a_validation_error(
    http: aiohttp.ClientSession,
    ingest_url: str,
    assert_nothing_recorded: Callable[[], Awaitable[None]],
) -> None:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("webhook_url", WEBHOOK_URL)

    status, body = await post(http, f"{ingest_url}/upload/", form)

    assert status == 422
    assert body["problems"] == [{"line": None, "message": "file: Field required"}]
    assert "multipart field 'file'" in body["detail"]
    await assert_nothing_recorded()


@pytest.mark.parametrize(
    ("webhook_url", "message"),
    [
        ("ftp://x", "webhook_url: URL 'ftp://x' must start with http:// or https://"),
        (
            "http://127.0.0.1:8080/hook",
            "webhook_url: webhook_url points at the non-public address 127.0.0.1; "
            "use a public address",
        ),
        (
            "http://localhost/hook",
            "webhook_url: webhook_url points at this machine (localhost); use a public address",
        ),
    ],
    ids=["ftp", "loopback-ip", "localhost"],
)
async def test_an_unusable_webhook_url_is_422(
    http: aiohttp.ClientSession,
    ingest_url: str,
    webhook_url: str,
    message: str,
    assert_nothing_recorded: Callable[[], Awaitable[None]],
) -> None:
    status, body = await post(
        http, f"{ingest_url}/upload/", csv_form(SEED_CSV.encode(), webhook_url)
    )

    assert status == 422
    assert body == {
        "detail": "the upload was rejected (1 problem); fix it and upload again",
        "problems": [{"line": None, "message": message}],
        "truncated": False,
    }
    await assert_nothing_recorded()


# --- health and the API description -----------------------------------------------------------


async def test_healthz_reports_broker_and_database(
    http: aiohttp.ClientSession, ingest_url: str
) -> None:
    async with http.get(f"{ingest_url}/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok", "broker": True, "database": True}


async def test_openapi_documents_every_upload_response(
    http: aiohttp.ClientSession, ingest_url: str
) -> None:
    async with http.get(f"{ingest_url}/openapi.json") as response:
        assert response.status == 200
        schema = await response.json()

    upload = schema["paths"]["/upload/"]["post"]
    assert set(upload["responses"]) == {"202", "400", "401", "413", "415", "422", "429", "503"}
    assert upload["security"] == [{"HTTPBearer": []}]
    assert "/upload" not in schema["paths"]
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["$ref"].startswith("#/components/schemas/")
    fields = schema["components"]["schemas"][form["$ref"].rsplit("/", 1)[1]]
    assert set(fields["properties"]) == {"file", "webhook_url"}
    assert fields["required"] == ["file"]
