"""The pure parts of access control: settings, key format, bearer headers, signed links."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from imgpipe_runtime.auth import bearer_token, split_key
from imgpipe_runtime.links import LinkSigner
from imgpipe_runtime.settings import (
    DEVELOPMENT_LINK_SECRET,
    AuthSettings,
    LinkSettings,
    load_settings,
)

SECRET = "a-link-secret-of-some-length"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AUTH_MODE", "ENVIRONMENT", "API_KEYS", "LINK_SECRET"):
        monkeypatch.delenv(name, raising=False)


def test_auth_is_off_in_development_and_required_in_production_unless_set() -> None:
    assert not AuthSettings().auth_required
    assert AuthSettings(environment="production", link_secret=SECRET).auth_required
    assert not AuthSettings(
        environment="production", link_secret=SECRET, auth_mode="off"
    ).auth_required
    assert AuthSettings(auth_mode="required").auth_required


def test_production_refuses_the_development_link_secret() -> None:
    with pytest.raises(ValidationError, match="set LINK_SECRET"):
        LinkSettings(environment="production", link_secret=DEVELOPMENT_LINK_SECRET)


def test_an_empty_auth_mode_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_MODE", "")
    monkeypatch.setenv("ENVIRONMENT", "production")

    assert AuthSettings().auth_required


def test_api_keys_are_read_as_tenant_key_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", "acme:0123456789abcdef0, other : fedcba9876543210f ,")

    assert AuthSettings().api_keys == (
        ("acme", "0123456789abcdef0"),
        ("other", "fedcba9876543210f"),
    )


@pytest.mark.parametrize("value", ["acme", "acme:short", ":0123456789abcdef0"])
def test_api_keys_without_a_tenant_or_with_a_short_key_are_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("API_KEYS", value)
    with pytest.raises(ValidationError, match="tenant:key"):
        AuthSettings()


def test_a_well_formed_key_splits_into_its_id_and_secret() -> None:
    assert split_key("imgpipe_0123456789abcdef_s3cr_et-") == ("0123456789abcdef", "s3cr_et-")


@pytest.mark.parametrize(
    "key",
    [
        "",
        "imgpipe_0123456789abcdef_",
        "imgpipe_0123456789abcde_secret",
        "imgpipe_0123456789ABCDEF_secret",
        "other_0123456789abcdef_secret",
        "imgpipe0123456789abcdefsecret",
    ],
)
def test_a_malformed_key_does_not_split(key: str) -> None:
    assert split_key(key) is None


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer a b", None),
        ("", None),
        (None, None),
    ],
)
def test_only_a_bearer_header_with_one_token_gives_a_token(
    header: str | None, token: str | None
) -> None:
    assert bearer_token(header) == token


def test_a_signed_link_opens_its_own_key_only() -> None:
    signer = LinkSigner(SECRET, expiry=60)
    token = signer.token_for("images/r/000001-01-cat.jpg")

    assert signer.is_valid("images/r/000001-01-cat.jpg", token)
    assert not signer.is_valid("images/r/000001-02-cat.jpg", token)
    # A character well inside the signature: the last base64 character carries padding bits,
    # so changing it may decode to the same signature.
    flipped = "A" if token[-5] != "A" else "B"
    assert not signer.is_valid("images/r/000001-01-cat.jpg", token[:-5] + flipped + token[-4:])
    assert not LinkSigner("another-secret-entirely", 60).is_valid(
        "images/r/000001-01-cat.jpg", token
    )


def test_a_signed_link_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = LinkSigner(SECRET, expiry=60)
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: 1_000_000.0)
    token = signer.token_for("outputs/output_r.csv")

    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: 1_000_059.0)
    assert signer.is_valid("outputs/output_r.csv", token)
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: 1_000_061.0)
    assert not signer.is_valid("outputs/output_r.csv", token)


def test_a_bad_setting_stops_with_one_line_per_problem_and_status_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("API_KEYS", "acme")
    monkeypatch.setenv("KEY_CACHE_SECONDS", "soon")

    with pytest.raises(SystemExit) as stopped:
        load_settings(AuthSettings)

    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: API_KEYS: give 'tenant:key' pairs, comma-separated, keys of 16+ characters",
        "error: KEY_CACHE_SECONDS: Input should be a valid number, unable to parse string as a "
        "number",
    ]
