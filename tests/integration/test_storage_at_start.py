"""A service pointed at a bucket it cannot use stops at start with one line, not a traceback."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from imgpipe_dev.s3local import LocalS3, s3_env


@pytest.mark.parametrize("module", ["imgpipe_processor", "imgpipe_status"])
async def test_a_service_with_a_missing_bucket_exits_at_start_with_a_one_line_error(
    local_s3: LocalS3, module: str
) -> None:
    env = os.environ | s3_env(local_s3.url, "no-such-bucket") | {"LOG_FORMAT": "text"}

    ended = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", module],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert ended.returncode == 2
    assert "Traceback" not in ended.stderr
    # Log lines may come first (which credentials botocore found); the error ends the output.
    assert ended.stderr.splitlines()[-1] == (
        f"error: S3 bucket 'no-such-bucket' does not exist at {local_s3.url}; "
        "create it or set S3_BUCKET"
    )
