"""The web dashboard in a real browser (Debian's Chromium, driven by Playwright) against the
running system: upload, live progress to 100%, failures with reasons, the output CSV, escaping."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.conftest import REPO
from tests.e2e.conftest import Origin, RunningStack

CHROMIUM = shutil.which("chromium") or ""
SCREENSHOT = REPO / "results" / "dashboard-request.png"
# Flags this machine's closed network needs (see the env notes): no background traffic.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE = '"><svg/onload=alert(1)>.jpg'
QUOTED_HOSTILE = HOSTILE.replace('"', '""')  # as it stands inside a quoted CSV cell


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM:
        pytest.fail("Chromium is missing; `make test` installs Debian's chromium package")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    opened = await browser.new_page(viewport={"width": 1100, "height": 900})
    dialogs: list[str] = []
    opened.on("dialog", lambda dialog: dialogs.append(dialog.message))
    yield opened
    await opened.close()
    assert dialogs == [], "user text must never run as script"


async def test_a_csv_uploaded_in_the_dashboard_is_followed_live_to_its_results(
    running_stack: RunningStack, origin: Origin, page: Page, tmp_path: Path
) -> None:
    o = origin.base_url
    csv_file = tmp_path / "products.csv"
    csv_file.write_text(
        "S. No.,Product Name,Input Image Urls\n"
        f'1,"<b>Mug</b>","{o}/cat.jpg,{o}/coffee.jpg"\n'
        f"2,SKU2,{o}/astronaut.jpg\n"
        f'3,SKU3,"{o}/{QUOTED_HOSTILE}"\n'
    )
    await page.goto(f"{running_stack.status_url}/dashboard/")
    await page.set_input_files("#file-input", str(csv_file))
    await page.click("#upload-button")
    await page.wait_for_url(re.compile(r"#/requests/[0-9a-f]{32}$"))

    await expect(page.locator("#status")).to_have_text("Completed", timeout=60_000)
    await expect(page.locator("#progress-text")).to_have_text("4 / 4")
    await expect(page.locator("#progress-bar")).to_have_attribute("aria-valuenow", "4")
    await expect(page.locator("#failed-count")).to_have_text("1")
    request_id = page.url.rsplit("/", 1)[1]
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{running_stack.status_url}/status/{request_id}") as response,
    ):
        reused = (await response.json())["reused"]
    await expect(page.locator("#reused-count")).to_have_text(str(sum(reused.values())))
    await expect(page.locator(".failure-reason")).to_have_text(["http_404"])
    await expect(page.locator("#failures")).to_contain_text(HOSTILE)
    await expect(page.locator("#samples figure")).to_have_count(6)

    href = await page.locator("#output-csv").get_attribute("href")
    assert href is not None
    async with aiohttp.ClientSession() as session, session.get(href) as response:
        assert response.status == 200
        assert (await response.text()).startswith("S. No.,Product Name,Input Image Urls")

    SCREENSHOT.parent.mkdir(exist_ok=True)
    await page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000


async def test_a_rejected_csv_shows_each_problem_with_its_line(
    running_stack: RunningStack, page: Page, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "S. No.,Product Name,Input Image Urls\n1,SKU1,ftp://x/a.jpg\n1,SKU2,http://a.test/b.jpg\n"
    )
    await page.goto(f"{running_stack.status_url}/dashboard/")
    await page.set_input_files("#file-input", str(bad))
    await page.click("#upload-button")
    problems = page.locator("#upload-error li")
    await expect(problems).to_have_text(
        [
            "line 2: URL 'ftp://x/a.jpg' must start with http:// or https://",
            "line 3: S. No. 1 is used again (first on line 2)",
        ]
    )
