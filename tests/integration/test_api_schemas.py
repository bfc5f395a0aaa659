"""Schemathesis against the ingest and status HTTP APIs, as real processes.

Ingest and status run in a namespace of this module's own (no processor, so any upload that is
accepted just waits in the processor's work queue and is deleted with the namespace). Each
service's OpenAPI spec is loaded from its running /openapi.json, and every operation in it is
fuzzed: no answer may be a 5xx, and every answer must match the spec (a documented status
code, the documented content type and headers, a body that conforms to the documented schema).

Random multipart bodies practically never make a valid CSV, so fuzzing alone only sees the
error answers. The hand-written cases at the end send what fuzzing cannot reach (a valid
upload and its status, uploads at the edges of the limits, bodies that are not multipart at
all) and validate the answers with the same checks.

The `/files` static mount is not in the spec and is not tested here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from imgpipe_dev.infra import free_port
from imgpipe_dev.stack import Stack
from tests.conftest import Namespace, new_namespace

MAX_UPLOAD_BYTES = 200_000

# No 5xx, and nothing the spec does not declare: status code, content type, headers, body.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE

# Every operation of both specs, as (service, method, path). A spec with no operations, or with
# one that is not listed here, fails the module instead of silently testing less.
OPERATIONS = [
    ("ingest", "POST", "/upload/"),
    ("ingest", "GET", "/healthz"),
    ("status", "GET", "/status/{request_id}"),
    ("status", "GET", "/status/{request_id}/events"),
    ("status", "GET", "/status/{request_id}/images"),
    ("status", "GET", "/requests"),
    ("status", "DELETE", "/requests/{request_id}"),
    ("status", "GET", "/healthz"),
]

# Positive cases for every operation; negative ones (data the spec says is invalid) only where
# the spec constrains something: /healthz takes no input and the status path's request_id is any
# string, so nothing there can be made invalid and schemathesis generates no negative case
# (hypothesis reports Unsatisfiable).
CASES = [(*operation, POSITIVE) for operation in OPERATIONS] + [
    ("ingest", "POST", "/upload/", NEGATIVE)
]

# 40 examples per operation and generation mode; the module runs in about 10 s.
FUZZ_SETTINGS = settings(
    max_examples=40,
    deadline=None,  # real HTTP round trips through the broker and database
    # Each example is an HTTP request; negative generation filters out what happens to be valid.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,  # write no .hypothesis directory; every run starts fresh
)

HEADER = "S. No.,Product Name,Input Image Urls\r\n"
VALID_CSV = (
    HEADER
    + '1,SKU1,"https://example.com/a.jpg, https://example.com/b.jpg"\r\n'
    + '2,"Mug, ""large""",https://example.com/c.jpg\r\n'
).encode()


@dataclass(frozen=True)
class Services:
    ingest_url: str
    status_url: str


@pytest.fixture(scope="module")
async def ns(rabbitmq_url: str, mongodb_url: str) -> AsyncIterator[Namespace]:
    """Module-scoped: the namespace both services of this module run in."""
    async with new_namespace(rabbitmq_url, mongodb_url) as namespace:
        yield namespace


@contextlib.asynccontextmanager
async def running_apis(
    ns: Namespace, root: Path, extra_env: dict[str, str] | None = None
) -> AsyncIterator[Services]:
    """Ingest and status as processes in `ns` (no processor: accepted jobs just wait)."""
    ingest_port, status_port = free_port(), free_port()
    status_url = f"http://127.0.0.1:{status_port}"
    env = (
        os.environ
        | ns.env()
        | {
            "INGEST_PORT": str(ingest_port),
            "STATUS_PORT": str(status_port),
            "DATA_DIR": str(root / "files"),
            "PUBLIC_BASE_URL": status_url,
            "MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
            "LOG_LEVEL": "INFO",
        }
        | (extra_env or {})
    )
    env.pop("IMGPIPE_ALLOW_PRIVATE_NETWORKS", None)
    log_dir = root / "logs"
    stack = Stack(env, log_dir=log_dir)
    try:
        stack.start(["ingest", "status"])
        await asyncio.to_thread(stack.wait_healthy, 60)
        yield Services(ingest_url=f"http://127.0.0.1:{ingest_port}", status_url=status_url)
    finally:
        stack.stop()
        _print_logs(log_dir)


@pytest.fixture(scope="module")
async def services(
    ns: Namespace, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Services]:
    async with running_apis(ns, tmp_path_factory.mktemp("api-schemas")) as running:
        yield running


def _print_logs(log_dir: Path) -> None:
    for log in sorted(log_dir.glob("*.log")):
        print(f"----- {log.name} -----\n{log.read_text()[-6000:]}")


def load_schema(
    service: str, base_url: str, operations: list[tuple[str, str, str]] = OPERATIONS
) -> OpenApiSchema:
    """The service's spec as it serves it; it must list exactly the operations fuzzed here."""
    schema = schemathesis.openapi.from_url(
        f"{base_url}/openapi.json", config=SchemathesisConfig(), timeout=10
    )
    schema.config.update(base_url=base_url, request_timeout=10)
    labels: set[str] = set()
    for result in schema.get_all_operations():
        operation = result.ok()  # raises if the spec has an operation schemathesis cannot use
        labels.add(operation.label)
    if not labels:
        pytest.fail(f"the {service} spec at {base_url}/openapi.json has no operations")
    expected = {f"{method} {path}" for name, method, path in operations if name == service}
    if labels != expected:
        pytest.fail(
            f"the {service} spec lists {sorted(labels)}, but this module fuzzes "
            f"{sorted(expected)}; update OPERATIONS so that no operation goes untested"
        )
    return schema


@pytest.fixture(scope="module")
def schemas(services: Services) -> dict[str, OpenApiSchema]:
    return {
        "ingest": load_schema("ingest", services.ingest_url),
        "status": load_schema("status", services.status_url),
    }


# --- fuzzing every operation -------------------------------------------------------------------


# Not `schemathesis.pytest.from_fixture(...).parametrize()`: with the pinned pytest 9.2 it fails
# before running anything (schemathesis 4.32.5 sets `request.node._nodeid`, which pytest 9.2's
# nodes no longer have: "AttributeError: 'Function' object has no attribute '_nodeid'"). The
# operations are parametrized here instead, each fuzzed through the public `as_strategy` API,
# and `schemas` fails the module if a spec lists any operation that is not in OPERATIONS.
@pytest.mark.parametrize(
    ("service", "method", "path", "mode"),
    CASES,
    ids=[f"{s} {m} {p} {mode.value}" for s, m, p, mode in CASES],
)
def test_operation_matches_its_schema(
    schemas: dict[str, OpenApiSchema],
    service: str,
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    operation = schemas[service][path][method]
    calls = 0

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: schemathesis.Case) -> None:
        nonlocal calls
        calls += 1
        case.call_and_validate(checks=CHECKS)

    fuzz()
    assert calls > 0, f"no {mode.value} case was generated for {operation.label}"


# --- what fuzzing cannot reach -----------------------------------------------------------------


@pytest.mark.parametrize("webhook_url", [None, "https://hooks.example.com/imgpipe"])
def test_accepted_upload_and_its_status_match_their_schemas(
    schemas: dict[str, OpenApiSchema], webhook_url: str | None
) -> None:
    ingest_schema, status_schema = schemas["ingest"], schemas["status"]
    body: dict[str, object] = {"file": VALID_CSV}
    if webhook_url is not None:
        body["webhook_url"] = webhook_url
    upload = ingest_schema["/upload/"]["POST"].Case(body=body, media_type="multipart/form-data")
    accepted = upload.call_and_validate(checks=CHECKS)
    assert accepted.status_code == 202, accepted.text
    request_id = accepted.json()["request_id"]
    assert accepted.json()["status_url"] == f"{status_schema.config.base_url}/status/{request_id}"

    status = status_schema["/status/{request_id}"]["GET"].Case(
        path_parameters={"request_id": request_id}
    )
    answer = status.call_and_validate(checks=CHECKS)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "Pending"
    assert answer.json()["progress"] == {"total": 3, "processed": 0, "failed": 0}

    # No processor runs here: the request stays Pending, and cannot be deleted yet.
    delete = status_schema["/requests/{request_id}"]["DELETE"].Case(
        path_parameters={"request_id": request_id}
    )
    refused = delete.call_and_validate(checks=CHECKS)
    assert refused.status_code == 409, refused.text


def _one_row(serial: str) -> bytes:
    return f"{HEADER}{serial},SKU,https://example.com/a.jpg\r\n".encode()


# Uploads at the edges of the limits; each must get a documented non-5xx answer.
EDGE_UPLOADS = {
    "largest S. No. MongoDB stores (2**63 - 1)": _one_row(str(2**63 - 1)),
    "S. No. 2**63 (one past what MongoDB stores)": _one_row(str(2**63)),
    "S. No. of 5000 digits (past Python's int-parsing limit)": _one_row("1" * 5000),
    "one byte over MAX_UPLOAD_BYTES": b"x" * (MAX_UPLOAD_BYTES + 1),
}


@pytest.mark.parametrize("file", EDGE_UPLOADS.values(), ids=EDGE_UPLOADS.keys())
def test_edge_uploads_get_documented_answers(
    schemas: dict[str, OpenApiSchema], file: bytes
) -> None:
    upload = schemas["ingest"]["/upload/"]["POST"].Case(
        body={"file": file}, media_type="multipart/form-data"
    )
    upload.call_and_validate(checks=CHECKS)


# Bodies that claim to be multipart but are not; the negative fuzzing above sends such bodies
# only now and then, so these make the verdict on them deterministic.
MALFORMED_MULTIPART = {
    "no parts": ("multipart/form-data; boundary=b", b"--b\r\nNone--b--\r\n"),
    "no boundary": ("multipart/form-data", b"garbage"),
}


@pytest.mark.parametrize(
    ("content_type", "body"), MALFORMED_MULTIPART.values(), ids=MALFORMED_MULTIPART.keys()
)
def test_malformed_multipart_gets_a_documented_answer(
    schemas: dict[str, OpenApiSchema], content_type: str, body: bytes
) -> None:
    schema = schemas["ingest"]
    operation = schema["/upload/"]["POST"]
    response = requests.post(
        f"{schema.config.base_url}/upload/",
        data=body,
        headers={"Content-Type": content_type},
        timeout=10,
    )
    operation.Case(media_type="multipart/form-data").validate_response(response, checks=CHECKS)
