"""The storage settings: which backend, and what the S3 backend needs to start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from imgpipe_runtime.settings import MAX_URL_EXPIRY, StorageSettings


def settings(**env: str) -> StorageSettings:
    return StorageSettings(**env)  # type: ignore[arg-type]


def test_the_default_backend_is_the_local_directory() -> None:
    assert settings().storage_backend == "local"


def test_the_s3_backend_without_a_bucket_is_refused_with_the_variable_to_set() -> None:
    with pytest.raises(ValidationError, match="S3_BUCKET"):
        settings(storage_backend="s3")


def test_the_s3_backend_with_a_bucket_defaults_to_aws_and_seven_day_links() -> None:
    s3 = settings(storage_backend="s3", s3_bucket="imgpipe")

    assert (s3.s3_endpoint_url, s3.s3_public_base_url, s3.s3_prefix) == (None, None, "")
    assert s3.s3_url_expiry == MAX_URL_EXPIRY == 604800


def test_empty_variables_count_as_unset() -> None:
    s3 = settings(storage_backend="s3", s3_bucket="b", s3_endpoint_url="", s3_region=" ")

    assert (s3.s3_endpoint_url, s3.s3_region) == (None, None)
    with pytest.raises(ValidationError, match="S3_BUCKET"):
        settings(storage_backend="s3", s3_bucket="")


@pytest.mark.parametrize(
    ("given", "prefix"),
    [("", ""), ("/", ""), ("imgpipe", "imgpipe/"), ("/a/b/", "a/b/"), ("prod/", "prod/")],
)
def test_the_key_prefix_is_a_folder_with_one_trailing_slash(given: str, prefix: str) -> None:
    assert settings(s3_prefix=given).s3_prefix == prefix


@pytest.mark.parametrize("expiry", ["0", "604801", "-5"])
def test_a_link_lifetime_outside_one_second_to_seven_days_is_refused(expiry: str) -> None:
    with pytest.raises(ValidationError, match="s3_url_expiry"):
        settings(s3_url_expiry=expiry)


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValidationError, match="storage_backend"):
        settings(storage_backend="ftp")
