"""Notifier settings: the webhook signing secret."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from imgpipe_notifier.config import DEVELOPMENT_SECRET, Settings


def secret(size: int) -> str:
    return "whsec_" + base64.b64encode(bytes(range(size))).decode()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WEBHOOK_SECRET", "ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)


def test_development_uses_the_development_secret_by_default() -> None:
    assert Settings().webhook_secret == DEVELOPMENT_SECRET


@pytest.mark.parametrize("size", [24, 32, 64])
def test_a_whsec_base64_secret_of_24_to_64_bytes_is_accepted(size: int) -> None:
    assert Settings(webhook_secret=secret(size)).webhook_secret == secret(size)


def test_a_secret_without_the_whsec_prefix_is_refused() -> None:
    bare = base64.b64encode(bytes(range(32))).decode()

    with pytest.raises(ValidationError, match=r"must look like 'whsec_<base64>'"):
        Settings(webhook_secret=bare)


@pytest.mark.parametrize(
    "value", ["whsec_not base64!", "whsec_abc$def", "whsec_" + "A" * 33, "whsec_-_-_-_-_-_"]
)
def test_a_secret_that_is_not_base64_after_the_prefix_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="the part after 'whsec_' is not base64"):
        Settings(webhook_secret=value)


@pytest.mark.parametrize("size", [0, 16, 23, 65])
def test_a_secret_of_the_wrong_length_is_refused(size: int) -> None:
    with pytest.raises(ValidationError, match="between 24 and 64 random bytes"):
        Settings(webhook_secret=secret(size))


def test_an_invalid_secret_from_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", "hunter2")

    with pytest.raises(ValidationError, match="WEBHOOK_SECRET must look like"):
        Settings()


def test_production_refuses_the_development_secret() -> None:
    with pytest.raises(ValidationError, match="the development secret is public"):
        Settings(environment="production", webhook_secret=DEVELOPMENT_SECRET)


def test_production_refuses_the_default_secret_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")

    with pytest.raises(ValidationError, match="set WEBHOOK_SECRET"):
        Settings()


def test_production_accepts_its_own_secret() -> None:
    settings = Settings(environment="production", webhook_secret=secret(32))

    assert (settings.environment, settings.webhook_secret) == ("production", secret(32))


def test_the_development_secret_is_itself_a_valid_standard_webhooks_secret() -> None:
    raw = base64.b64decode(DEVELOPMENT_SECRET.removeprefix("whsec_"), validate=True)

    assert DEVELOPMENT_SECRET.startswith("whsec_")
    assert 24 <= len(raw) <= 64
