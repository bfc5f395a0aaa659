"""A local S3-compatible server for trying the s3 backend, and for the tests and the bench:
moto's server mode (PyPI `moto[server]`) in a process of its own, with a bucket made at start.

    python -m imgpipe_dev.s3local --port 9000 --bucket imgpipe

It prints the variables that point imgpipe at it and serves until Ctrl-C. It keeps everything
in memory: stopping it loses the buckets and what is in them. moto accepts any credentials.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from imgpipe_dev.infra import port_open, terminate, wait_until

REGION = "us-east-1"
# Placeholders in the standard variables, so that botocore never looks further (a profile,
# the instance metadata service) for credentials that moto does not check anyway.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "imgpipe-local", "AWS_SECRET_ACCESS_KEY": "imgpipe-local"}


def s3_env(endpoint_url: str, bucket: str) -> dict[str, str]:
    """The environment that points the services at `bucket` on this server."""
    return CREDENTIALS | {
        "STORAGE_BACKEND": "s3",
        "S3_BUCKET": bucket,
        "S3_ENDPOINT_URL": endpoint_url,
        "S3_REGION": REGION,
    }


def client(endpoint_url: str) -> Any:
    """A plain (blocking) boto3 client for the server at `endpoint_url`, for set-up and checks."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1}),
    )


def create_bucket(endpoint_url: str, bucket: str) -> None:
    """Make `bucket` on the server at `endpoint_url` (nothing happens if it is there)."""
    s3 = client(endpoint_url)
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise
    finally:
        s3.close()


def _has_bucket(endpoint_url: str, bucket: str) -> bool:
    s3 = client(endpoint_url)
    try:
        s3.head_bucket(Bucket=bucket)
        return True
    except Exception:
        return False
    finally:
        s3.close()


class LocalS3:
    """`python -m imgpipe_dev.s3local` as a child process, started and stopped by us."""

    def __init__(
        self,
        port: int,
        bucket: str,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`bucket` "" makes none; `env` adds to the server's environment (moto's settings)."""
        self.port = port
        self.bucket = bucket
        self.log_path = log_path
        self.extra_env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return s3_env(self.url, self.bucket)

    def start(self, timeout: float = 60) -> None:
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        command = [sys.executable, "-m", "imgpipe_dev.s3local"]
        command += ["--port", str(self.port), "--bucket", self.bucket, "--quiet"]
        # Own session: stopped by us, after the services, not by a Ctrl-C meant for them.
        self.process = subprocess.Popen(
            command,
            env=os.environ | self.extra_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the local S3 server exited with {self.process.returncode}")
            if not port_open("127.0.0.1", self.port):
                return False
            return not self.bucket or _has_bucket(self.url, self.bucket)

        wait_until(ready, timeout, f"the local S3 server on port {self.port}", interval=0.1)

    def stop(self) -> None:
        terminate(self.process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--bucket", default="imgpipe", help='made at start ("" for none)')
    parser.add_argument("--quiet", action="store_true", help="print no line per request")
    args = parser.parse_args()
    if args.quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if port_open(args.host, args.port):
        raise SystemExit(f"port {args.port} is in use; choose another with --port")
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    endpoint = f"http://{args.host}:{args.port}"
    if args.bucket:
        create_bucket(endpoint, args.bucket)
    exports = " ".join(f"{k}={v}" for k, v in s3_env(endpoint, args.bucket).items())
    print(
        f"S3 (moto) at {endpoint} with bucket {args.bucket!r}. Try imgpipe on it with:\n"
        f"  {exports} make run",
        flush=True,
    )
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    server.stop()


if __name__ == "__main__":
    main()
