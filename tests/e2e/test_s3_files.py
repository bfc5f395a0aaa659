"""With the s3 backend, `/files/...` on the status service stays a working link: it redirects
to a freshly signed link into the bucket, and answers 404 for anything that is not ours."""

from __future__ import annotations

import aiohttp
import pytest
from yarl import URL

from tests.e2e.conftest import Origin, S3Stack, WebhookReceiver
from tests.e2e.test_pipeline import upload, wait_for_final_status


async def test_a_files_link_redirects_to_a_fresh_signed_link_into_the_bucket(
    running_s3_stack: S3Stack, origin: Origin, webhook_receiver: WebhookReceiver
) -> None:
    stack = running_s3_stack.running
    text = f"S. No.,Product Name,Input Image Urls\n1,SKU1,{origin.base_url}/cat.jpg\n"
    async with aiohttp.ClientSession() as session:
        accepted = await upload(session, stack, text, webhook_receiver.url)
        status = await wait_for_final_status(session, accepted["status_url"])
        key = status["output_csv_path"]
        async with session.get(status["output_csv_url"]) as response:
            direct = await response.read()

        link = f"{stack.status_url}/files/{key}"
        async with session.get(link, allow_redirects=False) as response:
            assert response.status == 307
            location = response.headers["Location"]
        async with session.get(link) as response:
            assert response.status == 200
            assert await response.read() == direct

    bucket_url = f"{running_s3_stack.endpoint_url}/{running_s3_stack.bucket}/{key}"
    assert location.startswith(bucket_url + "?")
    assert "X-Amz-Signature" in URL(location).query


@pytest.mark.parametrize(
    "path", ["secrets.txt", "other/x.jpg", "images", "outputs/", "images/a//b.jpg"]
)
async def test_a_files_link_outside_the_stores_folders_is_404_without_a_redirect(
    running_s3_stack: S3Stack, path: str
) -> None:
    url = f"{running_s3_stack.running.status_url}/files/{path}"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, allow_redirects=False) as response,
    ):
        assert response.status == 404
