"""Status rules: request states and the output CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from imgpipe_status.domain import (
    final_state,
    output_csv_key,
    render_output_csv,
    visible_state,
)

HEADER_LINE = "S. No.,Product Name,Input Image Urls,Output Image Urls,Errors\r\n"


def product(
    serial: int,
    name: str,
    inputs: list[str],
    outputs: list[str | None] | None = None,
    errors: list[str | None] | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "serial_number": serial,
        "product_name": name,
        "input_image_urls": inputs,
    }
    if outputs is not None:
        doc["output_image_urls"] = outputs
    if errors is not None:
        doc["errors"] = errors
    return doc


def read_back(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


# --- output CSV -------------------------------------------------------------------------------


def test_no_products_gives_only_the_five_column_header() -> None:
    assert render_output_csv([]) == HEADER_LINE


def test_a_fully_processed_product_renders_exactly() -> None:
    text = render_output_csv(
        [
            product(
                1,
                "SKU1",
                ["http://a/x.jpg", "http://a/y.jpg"],
                ["http://o/1.jpg", "http://o/2.jpg"],
            )
        ]
    )

    assert text == (
        HEADER_LINE + '1,SKU1,"http://a/x.jpg,http://a/y.jpg","http://o/1.jpg,http://o/2.jpg",\r\n'
    )


def test_every_line_ends_with_crlf() -> None:
    text = render_output_csv(
        [product(1, "A", ["http://a/1"], ["http://o/1"]), product(2, "B", ["http://a/2"])]
    )

    assert text.endswith("\r\n")
    assert text.count("\r\n") == 3
    assert "\n" not in text.replace("\r\n", "")


def test_output_parses_back_to_the_same_values() -> None:
    products = [
        product(
            1,
            'Shoe, "wide"\nsecond line',
            ["http://a/x.jpg", "http://a/y.jpg"],
            ["http://o/x.jpg", None],
            [None, "http_404: the server answered 404 Not Found"],
        ),
        product(2, "Plain", ["https://a/z.png"], ["http://o/z.jpg"], [None]),
    ]

    rows = read_back(render_output_csv(products))

    assert rows == [
        ["S. No.", "Product Name", "Input Image Urls", "Output Image Urls", "Errors"],
        [
            "1",
            'Shoe, "wide"\nsecond line',
            "http://a/x.jpg,http://a/y.jpg",
            "http://o/x.jpg,",
            "http://a/y.jpg -> http_404: the server answered 404 Not Found",
        ],
        ["2", "Plain", "https://a/z.png", "http://o/z.jpg", ""],
    ]


def test_rows_keep_input_order_not_serial_number_order() -> None:
    products = [product(3, "C", ["http://a/c"]), product(1, "A", ["http://a/a"])]

    rows = read_back(render_output_csv(products))

    assert [row[0] for row in rows[1:]] == ["3", "1"]


def test_a_failed_image_leaves_its_position_empty_and_is_named_in_errors() -> None:
    inputs = ["http://a/1.jpg", "http://a/2.jpg", "http://a/3.jpg"]
    outputs = ["http://o/1.jpg", None, "http://o/3.jpg"]
    errors = [None, "not_an_image: the content is not a supported image", None]

    row = read_back(render_output_csv([product(7, "P", inputs, outputs, errors)]))[1]

    assert row[3] == "http://o/1.jpg,,http://o/3.jpg"
    assert row[3].split(",") == ["http://o/1.jpg", "", "http://o/3.jpg"]
    assert row[4] == "http://a/2.jpg -> not_an_image: the content is not a supported image"


def test_a_failed_first_image_leaves_a_leading_empty_position() -> None:
    row = read_back(
        render_output_csv(
            [product(1, "P", ["http://a/1", "http://a/2"], [None, "http://o/2"], ["dns: x", None])]
        )
    )[1]

    assert row[3] == ",http://o/2"
    assert row[4] == "http://a/1 -> dns: x"


def test_several_failures_are_joined_with_semicolons_in_input_order() -> None:
    inputs = ["http://a/1", "http://a/2", "http://a/3"]
    errors = ["timeout: slow", None, "too_large: big"]

    row = read_back(
        render_output_csv([product(1, "P", inputs, [None, "http://o/2", None], errors)])
    )[1]

    assert row[3] == ",http://o/2,"
    assert row[4] == "http://a/1 -> timeout: slow; http://a/3 -> too_large: big"


def test_a_product_without_outcomes_has_one_empty_output_position_per_input() -> None:
    row = read_back(render_output_csv([product(1, "P", ["http://a/1", "http://a/2"])]))[1]

    assert row == ["1", "P", "http://a/1,http://a/2", ",", ""]


@pytest.mark.parametrize("trigger", ["=", "+", "-", "@", "\t", "\r"])
def test_a_formula_like_product_name_is_prefixed_with_one_quote(trigger: str) -> None:
    name = trigger + 'HYPERLINK("http://evil","x")'

    row = read_back(render_output_csv([product(1, name, ["http://a/1"], ["http://o/1"])]))[1]

    assert row[1] == "'" + name


@pytest.mark.parametrize("name", ["a=b", " =1+1", "'=already quoted", "SKU-1", "100% cotton"])
def test_a_product_name_not_starting_with_a_trigger_is_kept_as_is(name: str) -> None:
    row = read_back(render_output_csv([product(1, name, ["http://a/1"], ["http://o/1"])]))[1]

    assert row[1] == name


def test_urls_and_serial_numbers_are_not_prefixed() -> None:
    row = read_back(render_output_csv([product(12, "P", ["http://a/1"], ["http://o/1"])]))[1]

    assert row[0] == "12"
    assert row[2] == "http://a/1"
    assert row[3] == "http://o/1"


def test_output_csv_key_names_the_request() -> None:
    assert output_csv_key("0123abcd") == "outputs/output_0123abcd.csv"


# --- states -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("processed", "failed", "state"),
    [
        (3, 0, "Completed"),
        (1, 2, "Completed"),
        (0, 2, "Failed"),
        (0, 1, "Failed"),
        (0, 0, "Completed"),
    ],
)
def test_final_state_is_failed_only_when_every_image_failed(
    processed: int, failed: int, state: str
) -> None:
    assert final_state(processed, failed) == state


@pytest.mark.parametrize(
    ("stored", "processed", "failed", "shown"),
    [
        ("Pending", 0, 0, "Pending"),
        ("Pending", 1, 0, "Processing"),
        ("Pending", 0, 1, "Processing"),
        ("Pending", 4, 5, "Processing"),
        ("Completed", 2, 1, "Completed"),
        ("Failed", 0, 3, "Failed"),
        ("Completed", 0, 0, "Completed"),
    ],
)
def test_visible_state_shows_processing_for_pending_requests_with_outcomes(
    stored: str, processed: int, failed: int, shown: str
) -> None:
    assert visible_state(stored, processed, failed) == shown
