"""Keys of processed images: unique per job, the same on redelivery, free of path tricks."""

from __future__ import annotations

import re

import pytest

from imgpipe_processor.keys import InvalidRequestId, image_key, readable_stem

REQUEST = "0123456789abcdef0123456789abcdef"
KEY_SHAPE = re.compile(r"^images/[0-9a-f]{32}/[0-9]{6}-[0-9]{2}-[A-Za-z0-9_-]{1,40}\.jpg$")


def test_key_is_built_from_request_row_position_and_file_stem() -> None:
    key = image_key(REQUEST, 0, 0, "http://a/shoes/red-shoe.jpg")

    assert key == f"images/{REQUEST}/000001-01-red-shoe.jpg"


def test_row_and_position_are_one_based_and_zero_padded() -> None:
    key = image_key(REQUEST, 41, 9, "http://a/x.png")

    assert key == f"images/{REQUEST}/000042-10-x.jpg"


def test_two_urls_ending_in_the_same_file_name_get_different_keys() -> None:
    first = image_key(REQUEST, 0, 0, "http://a.example/img/photo.jpg")
    second = image_key(REQUEST, 0, 1, "http://b.example/other/photo.jpg")

    assert first != second
    assert first.endswith("-photo.jpg")
    assert second.endswith("-photo.jpg")


def test_the_same_file_name_in_two_rows_gets_different_keys() -> None:
    keys = {image_key(REQUEST, row, 0, "http://a/photo.jpg") for row in range(3)}

    assert len(keys) == 3


def test_the_same_job_always_gets_the_same_key() -> None:
    url = "http://a/photo.jpg"

    assert image_key(REQUEST, 3, 2, url) == image_key(REQUEST, 3, 2, url)


HOSTILE_URLS = [
    "http://h/../../etc/passwd",
    "http://h/a/../../../../etc/shadow.jpg",
    "http://h/..%2F..%2Fetc%2Fpasswd",
    "http://h/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "http://h/a%5C..%5C..%5Cwindows%5Csystem32.jpg",
    "http://h/%2e%2e",
    "http://h/..",
    "http://h/",
    "http://h",
    "http://h/ünïcødé-名前.jpg",
    "http://h/%F0%9F%98%80.png",
    "http://h/" + "a" * 5000 + ".jpg",
    "http://h/" + "%2F" * 200 + "x.jpg",
    "http://h/x%00.jpg/..%00",
    "http://h/.hidden",
    "http://h/photo.jpg?name=../../etc/passwd#../..",
]


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_a_hostile_url_gives_a_key_with_no_path_tricks(url: str) -> None:
    key = image_key(REQUEST, 0, 0, url)

    assert KEY_SHAPE.match(key), key
    assert ".." not in key
    assert "\\" not in key
    assert key.count("/") == 2


@pytest.mark.parametrize(
    ("url", "stem"),
    [
        ("http://h/../../etc/passwd", "passwd"),
        ("http://h/..%2F..%2Fetc%2Fpasswd", "passwd"),
        ("http://h/..", "image"),
        ("http://h/", "image"),
        ("http://h/ünïcødé.jpg", "n-c-d"),
        ("http://h/a.b.c.jpg?x=1#f", "a-b-c"),
        ("http://h/" + "b" * 100 + ".jpg", "b" * 40),
        ("http://h/__--name--__.jpg", "name"),
    ],
)
def test_readable_stem_is_a_cleaned_up_file_name(url: str, stem: str) -> None:
    assert readable_stem(url) == stem


@pytest.mark.parametrize(
    "request_id",
    [
        "",
        "0123",
        "0123456789ABCDEF0123456789ABCDEF",
        "0123456789abcdef0123456789abcdeg",
        "0123456789abcdef0123456789abcdef0",
        "../../../../../../../../etc/pass",
        "0123456789abcdef/123456789abcdef",
        "0123456789abcdef-0123-4567-89ab-cdef",
    ],
)
def test_a_request_id_that_is_not_32_lower_case_hex_digits_raises_invalid_request_id(
    request_id: str,
) -> None:
    with pytest.raises(InvalidRequestId, match="is not 32 hex digits"):
        image_key(request_id, 0, 0, "http://a/x.jpg")


def test_a_request_id_with_a_trailing_newline_raises_invalid_request_id() -> None:
    with pytest.raises(InvalidRequestId):
        image_key(REQUEST + "\n", 0, 0, "http://a/x.jpg")


def test_an_invalid_request_id_is_a_value_error() -> None:
    assert issubclass(InvalidRequestId, ValueError)
