"""The seed's CSV through the containers, checked from its output CSV to every link."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

from tests.containers.checks import (
    ORIGIN,
    RECEIVER,
    assert_quality_50_jpeg,
    output_csv,
    upload,
    wait_for,
    webhook_settled,
    webhooks_for,
)
from tests.containers.stack import Stack

SEED = f"{ORIGIN}/seed"
# Several rows, several URLs in a quoted cell, one broken URL, and two different URLs that end
# in the same file name.
SEED_CSV = (
    "S. No.,Product Name,Input Image Urls\r\n"
    f'1,SKU1,"{SEED}/cat.jpg, {SEED}/coffee.jpg"\r\n'
    f'2,"Mug, ""large""",{SEED}/astronaut.jpg\r\n'
    f'3,SKU3,"{SEED}/hubble.jpg,{SEED}/missing.jpg,{SEED}/other/cat.jpg"\r\n'
)
SOURCES: list[list[str | None]] = [
    ["cat.jpg", "coffee.jpg"],
    ["astronaut.jpg"],
    ["hubble.jpg", None, "other/cat.jpg"],
]


async def run_seed_request(
    http: aiohttp.ClientSession, stack: Stack, files_base: str
) -> dict[str, Any]:
    """Upload the seed CSV, wait for its end, check everything a user gets; return the final
    status. Every link (output CSV and images) must start with `files_base`."""
    request_id = await upload(http, stack, SEED_CSV)
    final = await wait_for(http, stack, request_id, within=120)
    assert final["status"] == "Completed", final
    assert final["progress"] == {"total": 6, "processed": 5, "failed": 1}
    assert final["failures_by_reason"] == {"http_404": 1}

    assert final["output_csv_url"].startswith(files_base), final["output_csv_url"]
    rows = await output_csv(http, final["output_csv_url"])
    assert rows[0] == ["S. No.", "Product Name", "Input Image Urls", "Output Image Urls", "Errors"]
    assert [r[:3] for r in rows[1:]] == [
        ["1", "SKU1", f"{SEED}/cat.jpg,{SEED}/coffee.jpg"],
        ["2", 'Mug, "large"', f"{SEED}/astronaut.jpg"],
        ["3", "SKU3", f"{SEED}/hubble.jpg,{SEED}/missing.jpg,{SEED}/other/cat.jpg"],
    ]
    outputs = [r[3].split(",") for r in rows[1:]]
    assert "missing.jpg -> http_404" in rows[3][4] and rows[1][4] == rows[2][4] == ""
    links = [u for row in outputs for u in row if u]
    assert len(set(links)) == 5, "two files named cat.jpg must not share an output"
    for row_outputs, row_sources in zip(outputs, SOURCES, strict=True):
        for url, source in zip(row_outputs, row_sources, strict=True):
            if source is None:
                assert url == "", "the failed image leaves its position empty"
                continue
            assert url.startswith(files_base), url
            with Image.open(stack.images_dir / "seed" / Path(source)) as original:
                await assert_quality_50_jpeg(http, url, original.size)

    settled = await webhook_settled(http, stack, request_id)
    assert settled["webhook"]["status"] == "delivered"
    assert settled["webhook"]["url"] == RECEIVER
    calls = await webhooks_for(http, stack, request_id)
    assert len(calls) == 1 and calls[0]["signature_valid"], calls
    payload = calls[0]["payload"]
    assert (payload["status"], payload["processed"], payload["failed"]) == ("Completed", 5, 1)
    stack.finished[request_id] = final
    return final
