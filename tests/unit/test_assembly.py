"""The status service's assembly of products while requests run: a row's product once its row
and all its facts are in, every fact for the completion only when all are here, and memory
held within its capacity."""

from __future__ import annotations

import uuid
from typing import Any

from imgpipe_status.assembly import Assembly

Document = dict[str, Any]


def row(index: int, images: int = 1) -> Document:
    return {
        "row_index": index,
        "serial_number": index + 1,
        "product_name": f"SKU{index + 1}",
        "urls": [f"https://shop.test/{index}-{p}.jpg" for p in range(images)],
    }


def fact(index: int, position: int = 0, outcome: str = "processed") -> Document:
    if outcome == "failed":
        return {
            "row_index": index,
            "position": position,
            "outcome": "failed",
            "reason": "http_404",
            "detail": "gone",
        }
    return {
        "row_index": index,
        "position": position,
        "outcome": "processed",
        "output_url": f"https://files.test/{index}-{position}.jpg",
        "bytes_in": 10,
        "bytes_out": 5,
    }


def rows_of(products: list[Document]) -> list[int]:
    return [p["row_index"] for p in products]


def test_a_row_is_ready_when_its_last_fact_comes() -> None:
    assembly, rid = Assembly(100), uuid.uuid4().hex
    assert assembly.add_rows(rid, 3, [row(0, images=2), row(1)]) == []

    assert rows_of(assembly.add_facts(rid, 3, [fact(0, 1), fact(1)])) == [1]
    [product] = assembly.add_facts(rid, 3, [fact(0, 0, "failed")])

    assert product["output_image_urls"] == [None, "https://files.test/0-1.jpg"]
    assert product["errors"] == ["http_404: gone", None]


def test_a_row_recorded_after_its_facts_is_ready_at_once() -> None:
    assembly, rid = Assembly(100), uuid.uuid4().hex
    assert assembly.add_facts(rid, 2, [fact(1)]) == []

    assert rows_of(assembly.add_rows(rid, 2, [row(0), row(1)])) == [1]


def test_a_row_is_ready_once() -> None:
    assembly, rid = Assembly(100), uuid.uuid4().hex
    assembly.add_rows(rid, 1, [row(0)])
    assert rows_of(assembly.add_facts(rid, 1, [fact(0)])) == [0]

    assert assembly.add_facts(rid, 1, [fact(0)]) == []


def test_every_fact_is_given_only_when_all_are_here() -> None:
    assembly, rid = Assembly(100), uuid.uuid4().hex
    assembly.add_facts(rid, 2, [fact(0)])
    assert assembly.facts(rid, 2) is None

    assembly.add_facts(rid, 2, [fact(1)])

    facts = assembly.facts(rid, 2)
    assert facts is not None and sorted(f["row_index"] for f in facts) == [0, 1]


def test_rows_marked_inserted_are_remembered_until_forgotten() -> None:
    assembly, rid = Assembly(100), uuid.uuid4().hex
    assembly.add_rows(rid, 2, [row(0), row(1)])
    assembly.mark_inserted(rid, assembly.add_facts(rid, 2, [fact(1)]))
    assert assembly.inserted(rid) == {1}

    assembly.forget(rid)

    assert assembly.inserted(rid) == set()
    assert assembly.facts(rid, 1) is None


def test_a_request_larger_than_the_capacity_is_not_kept() -> None:
    assembly, rid = Assembly(2), uuid.uuid4().hex
    assembly.add_rows(rid, 3, [row(0)])

    assert assembly.add_facts(rid, 3, [fact(0)]) == []
    assert assembly.facts(rid, 1) is None


def test_room_is_made_by_letting_go_of_the_request_seen_longest_ago_for_good() -> None:
    assembly = Assembly(3)
    first, second, third = (uuid.uuid4().hex for _ in range(3))
    assembly.add_rows(first, 2, [row(0)])
    assembly.add_rows(second, 1, [row(0)])

    assembly.add_rows(third, 2, [row(0)])

    # The first request was let go of: nothing of it is kept, now or later.
    assert assembly.add_facts(first, 2, [fact(0)]) == []
    assert rows_of(assembly.add_facts(second, 1, [fact(0)])) == [0]
    assert rows_of(assembly.add_facts(third, 2, [fact(0)])) == [0]


def test_a_capacity_of_zero_keeps_nothing() -> None:
    assembly, rid = Assembly(0), uuid.uuid4().hex
    assembly.add_rows(rid, 1, [row(0)])

    assert assembly.add_facts(rid, 1, [fact(0)]) == []
    assert assembly.facts(rid, 1) is None
