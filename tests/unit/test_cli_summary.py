"""The CLI's closing summary of a request, from its status document (pure)."""

from __future__ import annotations

from typing import Any

from imgpipe_cli.main import summary


def status(**extra: Any) -> dict[str, Any]:
    return {
        "request_id": "f" * 32,
        "status": "Completed",
        "progress": {"total": 10, "processed": 10, "failed": 0},
        "bytes_in": 2_000_000,
        "bytes_out": 500_000,
        "failures_by_reason": {},
        "output_csv_url": None,
        "error": None,
    } | extra


def test_the_summary_says_how_many_images_were_reused_and_how() -> None:
    text = summary(
        status(reused={"not_modified": 6, "same_bytes": 0, "fresh": 3}, bytes_not_downloaded=1.8e6)
    )
    assert "  reused 9 (6 not modified, 3 fresh); 1.8 MB not downloaded" in text.splitlines()


def test_a_request_with_nothing_reused_says_nothing_of_reuse() -> None:
    text = summary(status(reused={"not_modified": 0, "same_bytes": 0, "fresh": 0}))
    assert "reused" not in text
    assert "2.0 MB in, 0.5 MB out (75% saved)" in text
