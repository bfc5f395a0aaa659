"""The upload format and its validation. Pure: reads a file object, touches nothing else.

Accepts what spreadsheets export: UTF-8 with or without a BOM, CRLF or LF, quoted or bare
cells, quoted cells with commas, doubled quotes and line breaks, blank lines. Every problem is
reported with the physical line it starts on, so the user can fix the file in one go.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import IO
from urllib.parse import urlsplit

from imgpipe_ingest.errors import IngestError

HEADER = ("S. No.", "Product Name", "Input Image Urls")
MAX_SERIAL_DIGITS = 18


@dataclass(frozen=True)
class CsvLimits:
    max_rows: int = 200_000
    max_urls_per_row: int = 50
    max_images: int = 500_000
    max_cell_chars: int = 10_000
    max_url_length: int = 2_048
    max_problems: int = 50


@dataclass(frozen=True)
class ProductRow:
    line: int
    serial_number: int
    product_name: str
    urls: tuple[str, ...]


@dataclass(frozen=True)
class Problem:
    line: int | None
    message: str


@dataclass
class CsvRejected(IngestError):
    """The file cannot be accepted; `status` is the HTTP status that says why."""

    problems: list[Problem]
    status: int = 422
    truncated: bool = False

    def __str__(self) -> str:
        return "; ".join(f"line {p.line}: {p.message}" for p in self.problems)


@dataclass
class _Collector:
    limit: int
    problems: list[Problem] = field(default_factory=list)
    truncated: bool = False

    def add(self, line: int | None, message: str) -> None:
        if len(self.problems) < self.limit:
            self.problems.append(Problem(line, message))
        else:
            self.truncated = True


def check_url(url: str, max_length: int) -> str | None:
    """Why `url` is not an absolute http(s) URL we can fetch, or None if it is fine."""
    if len(url) > max_length:
        return f"URL is longer than {max_length} characters"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return f"URL {_clip(url)!r} contains whitespace or control characters"
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError as exc:
        return f"URL {_clip(url)!r} is malformed ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return f"URL {_clip(url)!r} must start with http:// or https://"
    if not parts.hostname:
        return f"URL {_clip(url)!r} has no host name"
    if not port_ok:
        return f"URL {_clip(url)!r} has an invalid port"
    return None


def _clip(text: str, size: int = 80) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def _binary(line: int) -> CsvRejected:
    message = "the file contains binary data (NUL bytes); upload a CSV text file"
    return CsvRejected([Problem(line, message)], status=415)


def parse_products(data: IO[bytes], limits: CsvLimits) -> list[ProductRow]:
    """Parse and validate an upload; raise CsvRejected listing every problem found."""
    csv.field_size_limit(max(limits.max_cell_chars * 4, 131_072))
    text = io.TextIOWrapper(data, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, strict=True)
    problems = _Collector(limits.max_problems)
    rows: list[ProductRow] = []
    seen_serials: dict[int, int] = {}
    images = data_rows = 0
    header_seen = False
    line = 1  # the physical line the current record starts on
    try:
        for record in reader:
            if any("\x00" in cell for cell in record):
                raise _binary(line)
            if not any(cell.strip() for cell in record):
                line = reader.line_num + 1
                continue
            if not header_seen:
                header_seen = True
                _check_header(line, record)
            else:
                data_rows += 1
                if data_rows > limits.max_rows:
                    msg = f"more than {limits.max_rows} product rows; split the file"
                    raise CsvRejected([Problem(line, msg)])
                row = _parse_row(line, record, limits, problems, seen_serials)
                if row is not None:
                    rows.append(row)
                    images += len(row.urls)
                    if images > limits.max_images:
                        msg = f"more than {limits.max_images} image URLs in one file; split it"
                        raise CsvRejected([Problem(line, msg)])
            line = reader.line_num + 1
    except UnicodeDecodeError as exc:
        msg = f"the file is not UTF-8 text (byte {exc.start} of a chunk cannot be decoded)"
        raise CsvRejected([Problem(None, msg + "; save it as CSV UTF-8")], status=415) from None
    except csv.Error as exc:
        problem = Problem(line, f"not a readable CSV file: {exc}")
        raise CsvRejected([problem], status=415) from None
    finally:
        text.detach()
    if not header_seen:
        raise CsvRejected([Problem(None, "the file is empty; expected a header and rows")])
    if not rows and not problems.problems:
        problems.add(None, "the file has a header but no product rows")
    if problems.problems:
        raise CsvRejected(problems.problems, truncated=problems.truncated)
    return rows


def _check_header(line: int, record: list[str]) -> None:
    cells = [cell.strip() for cell in record]
    while cells and not cells[-1]:
        cells.pop()
    if [c.lower() for c in cells] != [h.lower() for h in HEADER]:
        found = ",".join(record)
        msg = f"the header must be {','.join(HEADER)!r}; found {_clip(found)!r}"
        raise CsvRejected([Problem(line, msg)])


def _parse_row(
    line: int,
    record: list[str],
    limits: CsvLimits,
    problems: _Collector,
    seen_serials: dict[int, int],
) -> ProductRow | None:
    while len(record) > len(HEADER) and not record[-1].strip():
        record = record[:-1]
    if len(record) != len(HEADER):
        problems.add(
            line,
            f"expected 3 cells (S. No., Product Name, Input Image Urls), "
            f"found {len(record)}; quote cells that contain commas",
        )
        return None
    if any(len(cell) > limits.max_cell_chars for cell in record):
        problems.add(line, f"a cell is longer than {limits.max_cell_chars} characters")
        return None
    serial_text, name, url_cell = record
    ok = True
    serial = 0
    digits = serial_text.strip()
    if not digits.isdigit() or not digits.isascii():
        problems.add(line, f"S. No. must be a whole number, found {_clip(serial_text)!r}")
        ok = False
    elif len(digits.lstrip("0")) > MAX_SERIAL_DIGITS:
        # MongoDB stores 64-bit integers; Python would also refuse >4300-digit conversions.
        problems.add(line, f"S. No. must have at most {MAX_SERIAL_DIGITS} digits")
        ok = False
    else:
        serial = int(digits.lstrip("0") or "0")
        if serial in seen_serials:
            problems.add(
                line, f"S. No. {serial} is used again (first on line {seen_serials[serial]})"
            )
            ok = False
        else:
            seen_serials[serial] = line
    if not name.strip():
        problems.add(line, "Product Name is empty")
        ok = False
    urls = [part.strip() for part in url_cell.split(",")]
    urls = [u for u in urls if u]
    if not urls:
        problems.add(line, "Input Image Urls is empty; give one or more http(s) URLs")
        return None
    if len(urls) > limits.max_urls_per_row:
        problems.add(line, f"{len(urls)} URLs in one row; the limit is {limits.max_urls_per_row}")
        return None
    for url in urls:
        error = check_url(url, limits.max_url_length)
        if error is not None:
            problems.add(line, error)
            ok = False
    return ProductRow(line, serial, name, tuple(urls)) if ok else None
