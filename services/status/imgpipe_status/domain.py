"""Pure rules of the status service: request states and the output CSV."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from typing import Any

from imgpipe_contracts import documents
from imgpipe_contracts.events import RequestState

OUTPUT_HEADER = ("S. No.", "Product Name", "Input Image Urls", "Output Image Urls", "Errors")
# OWASP CSV injection: a spreadsheet runs cells starting with these as formulas.
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def final_state(processed: int, failed: int) -> RequestState:
    """Completed if anything could be processed; Failed when every image failed."""
    return "Completed" if processed > 0 or failed == 0 else "Failed"


def visible_state(stored: str, processed: int, failed: int) -> RequestState:
    """Processing is shown, not stored: a request with outcomes but no final state."""
    if stored == "Pending" and processed + failed > 0:
        return "Processing"
    return stored  # type: ignore[return-value]


def output_csv_key(request_id: str) -> str:
    return f"outputs/output_{request_id}.csv"


_FILE_KEY = re.compile(
    r"images/(?P<image>[0-9a-f]{32})/[0-9]{6}-[0-9]{2}-[A-Za-z0-9_-]{1,40}\.jpg"
    r"|outputs/output_(?P<csv>[0-9a-f]{32})\.csv"
)
_SHARED_KEY = re.compile(r"images/shared/[0-9a-f]{2}/(?P<output>[0-9a-f]{64})\.jpg")


def request_id_of(key: str) -> str | None:
    """The request a stored file belongs to, or None for a key we never write (or a shared
    output's, which belongs to the requests that refer to it: `output_id_of`)."""
    match = _FILE_KEY.fullmatch(key)
    if match is None:
        return None
    return match["image"] or match["csv"]


def output_id_of(key: str) -> str | None:
    """The output a shared image's key names, or None for any other key."""
    match = _SHARED_KEY.fullmatch(key)
    return match["output"] if match else None


def neutralise(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA_TRIGGERS) else cell


def output_row(product: Mapping[str, Any]) -> list[str]:
    inputs: list[str] = product["input_image_urls"]
    outputs: list[str | None] = product.get("output_image_urls") or [None] * len(inputs)
    errors: list[str | None] = product.get("errors") or [None] * len(inputs)
    problems = [f"{url} -> {err}" for url, err in zip(inputs, errors, strict=False) if err]
    cells = [
        str(product["serial_number"]),
        product["product_name"],
        ",".join(inputs),
        ",".join(url or "" for url in outputs),
        "; ".join(problems),
    ]
    return [neutralise(cell) for cell in cells]


def finished_products(
    request_id: str, rows: Iterable[Mapping[str, Any]], outcomes: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The request's product documents, each image's output URL or error in place."""
    by_image = {(o["row_index"], o["position"]): o for o in outcomes}
    return [product_of(request_id, row, by_image) for row in rows]


def product_of(
    request_id: str,
    row: Mapping[str, Any],
    by_image: Mapping[tuple[int, int], Mapping[str, Any]],
) -> dict[str, Any]:
    """A row's product document, from the outcome facts by (row, position)."""
    cells = [
        _output_and_error(by_image.get((row["row_index"], position)))
        for position in range(len(row["urls"]))
    ]
    return documents.product_document(
        request_id,
        row["row_index"],
        row["serial_number"],
        row["product_name"],
        list(row["urls"]),
        [url for url, _ in cells],
        [error for _, error in cells],
    )


def _output_and_error(outcome: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    if outcome is None:
        return None, None
    if outcome["outcome"] == "processed":
        return outcome["output_url"], None
    return None, f"{outcome['reason']}: {outcome['detail']}"


def render_output_csv(products: Iterable[Mapping[str, Any]]) -> str:
    """The output CSV (RFC 4180: CRLF line ends, quotes where needed), rows in input order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(OUTPUT_HEADER)
    for product in products:
        writer.writerow(output_row(product))
    return buffer.getvalue()
