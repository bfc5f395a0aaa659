"""How ingest cuts an upload's rows into image batches: whole rows, in file order, each
batch within its image and URL-text limits."""

from __future__ import annotations

from imgpipe_ingest.csv_format import ProductRow
from imgpipe_ingest.service import BATCH_URL_CHARS, image_batches


def rows(*images_per_row: int, url_chars: int = 30) -> list[ProductRow]:
    return [
        ProductRow(
            line=i + 2,
            serial_number=i + 1,
            product_name=f"SKU{i + 1}",
            urls=tuple(f"https://s.test/{i}-{p}-".ljust(url_chars, "x") for p in range(n)),
        )
        for i, n in enumerate(images_per_row)
    ]


def test_batches_hold_whole_rows_in_file_order_up_to_the_image_limit() -> None:
    batches = list(image_batches("r1", rows(2, 2, 2, 2, 2), max_images=5))

    assert [[row.row_index for row in b.rows] for b in batches] == [[0, 1], [2, 3], [4]]
    assert all(b.request_id == "r1" for b in batches)
    assert [b.images for b in batches] == [4, 4, 2]


def test_a_row_with_more_images_than_the_limit_is_a_batch_of_its_own() -> None:
    batches = list(image_batches("r1", rows(1, 7, 1), max_images=5))

    assert [[row.row_index for row in b.rows] for b in batches] == [[0], [1], [2]]


def test_a_batch_stays_within_the_url_text_limit() -> None:
    long_rows = rows(*([10] * 20), url_chars=2_000)  # 20,000 characters of URLs per row

    batches = list(image_batches("r1", long_rows, max_images=1_000))

    assert sum(len(b.rows) for b in batches) == 20
    for b in batches:
        assert sum(len(url) for row in b.rows for url in row.urls) <= BATCH_URL_CHARS


def test_the_jobs_of_a_batch_name_each_image_by_row_and_position() -> None:
    [only] = list(image_batches("r1", rows(2, 1)))

    jobs = list(only.jobs())

    assert [(j.row_index, j.position, j.serial_number) for j in jobs] == [
        (0, 0, 1),
        (0, 1, 1),
        (1, 0, 2),
    ]
    assert jobs[1].url == "https://s.test/0-1-".ljust(30, "x")
    assert len({j.event_id for j in jobs}) == 3
