"""Schemathesis against ingest and status with AUTH_MODE=required: no 5xx, answers as the spec
says, and nothing but health checks answers 2xx without an API key.

The same operations as in test_api_schemas, plus `/files/{key}` (a route only when access is
controlled). Each is fuzzed twice: without a key (every answer must be 401, or a 4xx the spec
documents for input rejected before the key is looked at) and with a valid key."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import schemathesis
from hypothesis import given
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.conftest import Namespace, new_namespace
from tests.integration.test_api_schemas import (
    CHECKS,
    FUZZ_SETTINGS,
    OPERATIONS,
    POSITIVE,
    Services,
    load_schema,
    running_apis,
)

KEY = "schema-tenant-key-0123456789abcdef"
AUTH_OPERATIONS = [
    *OPERATIONS,
    ("status", "GET", "/files/{key}"),
    ("status", "HEAD", "/files/{key}"),
]
OPEN = {"/healthz"}  # answer without a key (metrics are not in the spec)


@pytest.fixture(scope="module")
async def auth_ns(rabbitmq_url: str, mongodb_url: str) -> AsyncIterator[Namespace]:
    async with new_namespace(rabbitmq_url, mongodb_url) as namespace:
        yield namespace


@pytest.fixture(scope="module")
async def auth_services(
    auth_ns: Namespace, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Services]:
    env = {
        "AUTH_MODE": "required",
        "API_KEYS": f"schema:{KEY}",
        "LINK_SECRET": "schema-test-link-secret-0123",
    }
    async with running_apis(auth_ns, tmp_path_factory.mktemp("api-auth"), env) as running:
        yield running


@pytest.fixture(scope="module")
def auth_schemas(auth_services: Services) -> dict[str, OpenApiSchema]:
    return {
        "ingest": load_schema("ingest", auth_services.ingest_url, AUTH_OPERATIONS),
        "status": load_schema("status", auth_services.status_url, AUTH_OPERATIONS),
    }


@pytest.mark.parametrize(
    ("service", "method", "path"),
    AUTH_OPERATIONS,
    ids=[f"{s} {m} {p}" for s, m, p in AUTH_OPERATIONS],
)
@pytest.mark.parametrize("with_key", [False, True], ids=["without a key", "with a key"])
def test_operation_matches_its_schema_and_needs_a_key(
    auth_schemas: dict[str, OpenApiSchema], service: str, method: str, path: str, with_key: bool
) -> None:
    operation = auth_schemas[service][path][method]
    headers = {"Authorization": f"Bearer {KEY}"} if with_key else {}
    statuses: set[int] = set()

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=POSITIVE))
    def fuzz(case: schemathesis.Case) -> None:
        response = case.call_and_validate(checks=CHECKS, headers=headers)
        statuses.add(response.status_code)
        if not with_key and path not in OPEN:
            assert not 200 <= response.status_code < 300, (case.path, response.status_code)

    fuzz()
    assert statuses, f"no case was generated for {operation.label}"
    if not with_key and path not in OPEN:
        assert 401 in statuses, statuses
