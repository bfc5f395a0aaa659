"""The upload format: what parse_products accepts, and every rejection with its physical line."""

from __future__ import annotations

import io

import pytest

from imgpipe_ingest.csv_format import CsvLimits, CsvRejected, Problem, ProductRow, parse_products

HEADER = b"S. No.,Product Name,Input Image Urls\n"


def parse(data: bytes, **limits: int) -> list[ProductRow]:
    return parse_products(io.BytesIO(data), CsvLimits(**limits))


def rejection(data: bytes, **limits: int) -> CsvRejected:
    with pytest.raises(CsvRejected) as caught:
        parse(data, **limits)
    return caught.value


def single_problem(data: bytes, **limits: int) -> Problem:
    rejected = rejection(data, **limits)
    assert len(rejected.problems) == 1, rejected.problems
    return rejected.problems[0]


# --- accepted files ---------------------------------------------------------------------------


def test_seed_example_gives_one_product_with_two_urls() -> None:
    data = b'S. No.,Product Name,Input Image Urls\n1,SKU1,"http://a/x.jpg,http://a/y.jpg"\n'

    assert parse(data) == [ProductRow(2, 1, "SKU1", ("http://a/x.jpg", "http://a/y.jpg"))]


def test_utf8_bom_before_the_header_is_ignored() -> None:
    data = b"\xef\xbb\xbf" + HEADER + b"1,SKU1,http://a/x.jpg\n"

    assert parse(data) == [ProductRow(2, 1, "SKU1", ("http://a/x.jpg",))]


def test_crlf_and_lf_line_ends_give_the_same_rows() -> None:
    lf = HEADER + b"1,SKU1,http://a/x.jpg\n2,SKU2,http://a/y.jpg\n"
    crlf = lf.replace(b"\n", b"\r\n")

    expected = [
        ProductRow(2, 1, "SKU1", ("http://a/x.jpg",)),
        ProductRow(3, 2, "SKU2", ("http://a/y.jpg",)),
    ]
    assert parse(lf) == expected
    assert parse(crlf) == expected


def test_quoted_product_name_keeps_commas_and_doubled_quotes() -> None:
    data = HEADER + b'1,"Shoe, size 9 ""wide""",http://a/x.jpg\n'

    assert parse(data)[0].product_name == 'Shoe, size 9 "wide"'


def test_product_name_keeps_surrounding_spaces() -> None:
    data = HEADER + b'1,  padded name ,http://a/x.jpg\n2," quoted ",http://a/y.jpg\n'

    assert [row.product_name for row in parse(data)] == ["  padded name ", " quoted "]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_product_name_keeps_an_embedded_line_break_exactly(newline: bytes) -> None:
    data = HEADER + b'1,"first' + newline + b'second",http://a/x.jpg\n'

    assert parse(data)[0].product_name == "first" + newline.decode() + "second"


def test_a_quoted_cell_spanning_two_lines_shifts_the_line_of_later_rows() -> None:
    data = HEADER + b'1,"two\nlines",http://a/x.jpg\n2,SKU2,http://a/y.jpg\n'

    assert [row.line for row in parse(data)] == [2, 4]


@pytest.mark.parametrize(
    "cell",
    [
        b'"http://a/x.jpg,http://a/y.jpg"',
        b'"http://a/x.jpg, http://a/y.jpg"',
        b'"  http://a/x.jpg ,   http://a/y.jpg  "',
        b'"http://a/x.jpg,,http://a/y.jpg,"',
    ],
    ids=["comma", "comma-space", "padded", "empty-parts"],
)
def test_urls_are_split_on_commas_and_trimmed(cell: bytes) -> None:
    data = HEADER + b"1,SKU1," + cell + b"\n"

    assert parse(data)[0].urls == ("http://a/x.jpg", "http://a/y.jpg")


def test_https_urls_and_upper_case_schemes_are_accepted() -> None:
    data = HEADER + b'1,SKU1,"https://a/x.jpg,HTTP://A/Y.JPG"\n'

    assert parse(data)[0].urls == ("https://a/x.jpg", "HTTP://A/Y.JPG")


def test_trailing_blank_lines_are_ignored() -> None:
    data = HEADER + b"1,SKU1,http://a/x.jpg\n\n\r\n\n"

    assert parse(data) == [ProductRow(2, 1, "SKU1", ("http://a/x.jpg",))]


def test_blank_lines_between_rows_are_skipped_but_still_counted_as_lines() -> None:
    data = b"\n" + HEADER + b"\n1,SKU1,http://a/x.jpg\n,,\n2,SKU2,http://a/y.jpg\n"

    assert [(row.line, row.serial_number) for row in parse(data)] == [(4, 1), (6, 2)]


def test_trailing_empty_extra_columns_are_accepted_in_header_and_rows() -> None:
    data = b"S. No.,Product Name,Input Image Urls,,\n1,SKU1,http://a/x.jpg,,\n2,SKU2,http://a/y,\n"

    assert parse(data) == [
        ProductRow(2, 1, "SKU1", ("http://a/x.jpg",)),
        ProductRow(3, 2, "SKU2", ("http://a/y",)),
    ]


def test_header_is_matched_without_case_or_surrounding_spaces() -> None:
    data = b" s. no. , PRODUCT NAME ,input image urls\n1,SKU1,http://a/x.jpg\n"

    assert parse(data) == [ProductRow(2, 1, "SKU1", ("http://a/x.jpg",))]


def test_serial_number_with_surrounding_spaces_is_read_as_a_number() -> None:
    data = HEADER + b" 7 ,SKU1,http://a/x.jpg\n"

    assert parse(data)[0].serial_number == 7


def test_rows_keep_file_order_not_serial_number_order() -> None:
    data = HEADER + b"3,C,http://a/c\n1,A,http://a/a\n2,B,http://a/b\n"

    assert [row.serial_number for row in parse(data)] == [3, 1, 2]


def test_url_of_exactly_the_maximum_length_is_accepted() -> None:
    url = "http://a/" + "x" * (2048 - len("http://a/"))
    data = HEADER + b"1,SKU1," + url.encode() + b"\n"

    assert parse(data)[0].urls == (url,)


def test_files_exactly_at_every_limit_are_accepted() -> None:
    data = HEADER + b'1,A,"http://a/1,http://a/2"\n2,B,"http://a/3,http://a/4"\n'

    rows = parse(data, max_rows=2, max_urls_per_row=2, max_images=4)

    assert [len(row.urls) for row in rows] == [2, 2]


# --- header problems --------------------------------------------------------------------------


def test_wrong_header_is_rejected_on_its_line() -> None:
    problem = single_problem(b"Id,Name,Urls\n1,SKU1,http://a/x.jpg\n")

    assert problem.line == 1
    assert "the header must be 'S. No.,Product Name,Input Image Urls'" in problem.message
    assert "found 'Id,Name,Urls'" in problem.message


def test_header_after_leading_blank_lines_is_reported_on_its_physical_line() -> None:
    problem = single_problem(b"\n\r\nId,Name,Urls\n")

    assert problem.line == 3


def test_header_with_a_missing_column_is_rejected() -> None:
    problem = single_problem(b"S. No.,Product Name\n1,SKU1\n")

    assert problem.line == 1
    assert problem.message.startswith("the header must be")
    assert "found 'S. No.,Product Name'" in problem.message


def test_header_with_an_extra_non_empty_column_is_rejected() -> None:
    problem = single_problem(b"S. No.,Product Name,Input Image Urls,Notes\n")

    assert problem.line == 1
    assert "the header must be" in problem.message


@pytest.mark.parametrize("data", [b"", b"\n\n", b"\xef\xbb\xbf", b" , ,\r\n"])
def test_a_file_without_a_header_is_rejected_as_empty(data: bytes) -> None:
    rejected = rejection(data)

    assert rejected.status == 422
    assert rejected.problems == [Problem(None, "the file is empty; expected a header and rows")]


def test_a_header_without_rows_is_rejected() -> None:
    rejected = rejection(HEADER + b"\n\n")

    assert rejected.status == 422
    assert rejected.problems == [Problem(None, "the file has a header but no product rows")]


# --- row problems -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "found"),
    [(b"1,SKU1", 2), (b"1,SKU1,http://a/x.jpg,extra", 4), (b"1", 1)],
)
def test_a_row_with_the_wrong_number_of_cells_is_rejected(row: bytes, found: int) -> None:
    problem = single_problem(HEADER + row + b"\n")

    assert problem.line == 2
    assert f"expected 3 cells (S. No., Product Name, Input Image Urls), found {found}" in (
        problem.message
    )


def test_unquoted_urls_separated_by_commas_are_reported_as_too_many_cells() -> None:
    problem = single_problem(HEADER + b"1,SKU1,http://a/x.jpg,http://a/y.jpg\n")

    assert problem.line == 2
    assert "found 4; quote cells that contain commas" in problem.message


@pytest.mark.parametrize(
    "serial",
    [b"", b"  ", b"abc", b"1.5", b"-1", b"+1", b"1e3", "\uff11".encode(), "\u00b2".encode()],
    ids=[
        "empty",
        "spaces",
        "letters",
        "decimal",
        "negative",
        "plus",
        "exponent",
        "fullwidth",
        "sup",
    ],
)
def test_a_serial_number_that_is_not_a_whole_number_is_rejected(serial: bytes) -> None:
    problem = single_problem(HEADER + serial + b",SKU1,http://a/x.jpg\n")

    assert problem.line == 2
    assert problem.message.startswith("S. No. must be a whole number, found ")
    assert repr(serial.decode()) in problem.message


def test_duplicate_serial_number_is_reported_with_both_lines() -> None:
    data = HEADER + b"1,A,http://a/a\n2,B,http://a/b\n1,C,http://a/c\n"

    problem = single_problem(data)

    assert problem == Problem(4, "S. No. 1 is used again (first on line 2)")


def test_duplicate_serial_number_is_detected_across_leading_zeros() -> None:
    problem = single_problem(HEADER + b"1,A,http://a/a\n001,B,http://a/b\n")

    assert problem == Problem(3, "S. No. 1 is used again (first on line 2)")


def test_duplicate_serial_number_lines_are_physical_lines_after_a_multiline_cell() -> None:
    data = HEADER + b'5,"multi\nline\nname",http://a/a\n6,B,http://a/b\n5,C,http://a/c\n'

    problem = single_problem(data)

    assert problem == Problem(6, "S. No. 5 is used again (first on line 2)")


def test_an_empty_product_name_is_rejected() -> None:
    problem = single_problem(HEADER + b"1,   ,http://a/x.jpg\n")

    assert problem == Problem(2, "Product Name is empty")


@pytest.mark.parametrize("cell", [b"", b"   ", b'" , ,"'])
def test_an_empty_url_cell_is_rejected(cell: bytes) -> None:
    problem = single_problem(HEADER + b"1,SKU1," + cell + b"\n")

    assert problem == Problem(2, "Input Image Urls is empty; give one or more http(s) URLs")


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://a/x.jpg",
        "javascript:alert(1)",
        "data:image/gif;base64",
        "images/x.jpg",
        "/images/x.jpg",
        "//cdn.example/x.jpg",
        "gopher://a/x",
    ],
)
def test_a_url_that_is_not_http_or_https_is_rejected(url: str) -> None:
    problem = single_problem(HEADER + b"1,SKU1," + url.encode() + b"\n")

    assert problem == Problem(2, f"URL {url!r} must start with http:// or https://")


def test_a_data_url_is_rejected_in_every_comma_separated_part() -> None:
    rejected = rejection(HEADER + b'1,SKU1,"data:image/gif;base64,R0lGODlhAQABAAAAACw="\n')

    assert [p.line for p in rejected.problems] == [2, 2]
    assert "'data:image/gif;base64' must start with http:// or https://" in (
        rejected.problems[0].message
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http:///x.jpg", "has no host name"),
        ("http://a:0/x.jpg", "has an invalid port"),
        ("http://a:99999/x.jpg", "is malformed"),
        ("http://[::1/x.jpg", "is malformed"),
        ("http://a/x\x7f.jpg", "contains whitespace or control characters"),
        ("http://a/x\u00a0y.jpg", "contains whitespace or control characters"),
    ],
)
def test_a_url_without_a_usable_host_or_with_bad_characters_is_rejected(
    url: str, reason: str
) -> None:
    problem = single_problem(HEADER + b"1,SKU1," + url.encode() + b"\n")

    assert problem.line == 2
    assert reason in problem.message


def test_a_url_with_an_inner_space_is_rejected() -> None:
    problem = single_problem(HEADER + b"1,SKU1,http://a/my photo.jpg\n")

    assert problem == Problem(
        2, "URL 'http://a/my photo.jpg' contains whitespace or control characters"
    )


def test_a_url_longer_than_the_limit_is_rejected() -> None:
    url = "http://a/" + "x" * 2048
    problem = single_problem(HEADER + b"1,SKU1," + url.encode() + b"\n")

    assert problem == Problem(2, "URL is longer than 2048 characters")


def test_a_smaller_url_length_limit_applies() -> None:
    problem = single_problem(HEADER + b"1,SKU1,http://a/abcdefgh\n", max_url_length=15)

    assert problem == Problem(2, "URL is longer than 15 characters")


def test_a_cell_longer_than_the_cell_limit_is_rejected() -> None:
    problem = single_problem(HEADER + b"1," + b"n" * 21 + b",http://a/x\n", max_cell_chars=20)

    assert problem == Problem(2, "a cell is longer than 20 characters")


def test_every_problem_of_one_row_is_listed() -> None:
    rejected = rejection(HEADER + b'x, ,"ftp://a/1,http://a/2"\n')

    assert rejected.problems == [
        Problem(2, "S. No. must be a whole number, found 'x'"),
        Problem(2, "Product Name is empty"),
        Problem(2, "URL 'ftp://a/1' must start with http:// or https://"),
    ]


def test_problems_of_several_rows_are_listed_in_file_order_with_physical_lines() -> None:
    data = HEADER + b'1,"a\r\nb",http://a/x\r\n2,,http://a/y\r\n3,C,\r\n4,D,http://a/z\r\n'

    rejected = rejection(data)

    assert rejected.status == 422
    assert rejected.truncated is False
    assert [(p.line, p.message) for p in rejected.problems] == [
        (4, "Product Name is empty"),
        (5, "Input Image Urls is empty; give one or more http(s) URLs"),
    ]


def test_rejection_text_names_each_line() -> None:
    rejected = rejection(HEADER + b"1,,http://a/x\n")

    assert str(rejected) == "line 2: Product Name is empty"


# --- encoding and binary content --------------------------------------------------------------


def test_latin1_bytes_are_rejected_as_not_utf8_with_status_415() -> None:
    rejected = rejection(HEADER + "1,Café,http://a/x.jpg\n".encode("latin-1"))

    assert rejected.status == 415
    assert len(rejected.problems) == 1
    assert rejected.problems[0].line is None
    assert "the file is not UTF-8 text" in rejected.problems[0].message
    assert "save it as CSV UTF-8" in rejected.problems[0].message


def test_utf16_export_is_rejected_with_status_415() -> None:
    data = "S. No.,Product Name,Input Image Urls\r\n1,A,http://a/x\r\n".encode("utf-16")

    rejected = rejection(data)

    assert rejected.status == 415
    assert "the file is not UTF-8 text" in rejected.problems[0].message


def test_binary_garbage_is_rejected_with_status_415() -> None:
    data = bytes([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0xFF, 0xFE, 0x00, 0x80])

    rejected = rejection(data)

    assert rejected.status == 415
    assert rejected.problems[0].line is None


def test_a_broken_quote_is_rejected_with_status_415() -> None:
    rejected = rejection(HEADER + b'1,"SKU"1,http://a/x.jpg\n')

    assert rejected.status == 415
    assert rejected.problems[0].message.startswith("not a readable CSV file")


def test_an_unterminated_quote_is_rejected_with_status_415() -> None:
    rejected = rejection(HEADER + b'1,"SKU1,http://a/x.jpg\n')

    assert rejected.status == 415
    assert rejected.problems[0].message.startswith("not a readable CSV file")


def test_nul_bytes_inside_an_otherwise_valid_file_are_rejected_with_status_415() -> None:
    rejected = rejection(HEADER + b"1,SK\x00U1,http://a/x.jpg\n")

    assert rejected.status == 415


def test_a_file_of_nul_bytes_is_rejected_with_status_415() -> None:
    rejected = rejection(b"\x00" * 64)

    assert rejected.status == 415


# --- limits -----------------------------------------------------------------------------------


def test_more_rows_than_the_row_limit_are_rejected_on_the_first_extra_row() -> None:
    data = HEADER + b"1,A,http://a/1\n2,B,http://a/2\n3,C,http://a/3\n"

    rejected = rejection(data, max_rows=2)

    assert rejected.status == 422
    assert rejected.problems == [Problem(4, "more than 2 product rows; split the file")]


def test_more_urls_in_a_row_than_the_per_row_limit_are_rejected() -> None:
    data = HEADER + b'1,A,"http://a/1,http://a/2,http://a/3"\n'

    problem = single_problem(data, max_urls_per_row=2)

    assert problem == Problem(2, "3 URLs in one row; the limit is 2")


def test_more_images_than_the_file_limit_are_rejected_on_the_row_that_crosses_it() -> None:
    data = HEADER + b'1,A,"http://a/1,http://a/2"\n2,B,"http://a/3,http://a/4"\n3,C,http://a/5\n'

    rejected = rejection(data, max_images=3)

    assert rejected.problems == [Problem(3, "more than 3 image URLs in one file; split it")]


def test_problems_beyond_max_problems_are_dropped_and_flagged_as_truncated() -> None:
    data = HEADER + b"".join(b"%d,,http://a/x\n" % n for n in range(1, 6))

    rejected = rejection(data, max_problems=3)

    assert rejected.truncated is True
    assert rejected.problems == [Problem(line, "Product Name is empty") for line in (2, 3, 4)]


def test_exactly_max_problems_is_not_flagged_as_truncated() -> None:
    data = HEADER + b"".join(b"%d,,http://a/x\n" % n for n in range(1, 4))

    rejected = rejection(data, max_problems=3)

    assert rejected.truncated is False
    assert len(rejected.problems) == 3


@pytest.mark.parametrize("serial", [str(2**63), "1" * 5000, "1" * 19])
def test_a_serial_number_too_long_to_store_is_rejected(serial: str) -> None:
    rejected = rejection(HEADER + f"{serial},SKU1,http://a/x.jpg\n".encode())

    assert rejected.status == 422
    assert rejected.problems == [Problem(2, "S. No. must have at most 18 digits")]


def test_leading_zeros_do_not_count_towards_the_serial_number_limit() -> None:
    [row] = parse(HEADER + b"0000000000000000000000042,SKU1,http://a/x.jpg\n")

    assert row.serial_number == 42
