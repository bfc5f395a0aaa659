"""Files in an S3 bucket, on AWS or any S3-compatible server, through aiobotocore.

Why aiobotocore: it is botocore, the code under boto3 and the AWS CLI (request signing, the
standard credential chain, error parsing, retries), with aiohttp doing the I/O. Uploads never
block the event loop, and a server that works with boto3 works here. One client per process,
opened by the service's bootstrap inside its running loop and closed on shutdown.

Every failure leaves here as one of the store's exceptions: StoreUnavailable for what passes
(5xx, throttling, timeouts, refused or reset connections), StoreMisconfigured for what needs an
operator (no such bucket, refused credentials), FileNotFoundError for a missing object.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    NoCredentialsError,
    PartialCredentialsError,
)

from imgpipe_runtime.files import StoreError, StoreMisconfigured, StoreUnavailable, checked_key
from imgpipe_runtime.settings import StorageSettings

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

log = logging.getLogger(__name__)

# Bodies above this go up in parts (S3 takes at most 5 GB in one PUT, and a part that fails
# is sent again alone). Every part but the last must be at least 5 MiB.
MULTIPART_THRESHOLD = 8 * 1024 * 1024
PART_SIZE = 8 * 1024 * 1024

# botocore tries a few times in all by itself (a reset connection, a 503 SlowDown); longer outages
# are waited out by the broker's retry queues, which do not hold a message in memory.
BOTOCORE_ATTEMPTS = 3
# Above the processor's default PREFETCH (32), so concurrent writes do not queue for a socket.
MAX_CONNECTIONS = 64

_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequests",
    "RequestTimeout",
    "ServiceUnavailable",
    "InternalError",
}
_MISSING_OBJECT_CODES = {"NoSuchKey", "404", "NotFound"}
_CREDENTIAL_ERRORS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)


def _translated(exc: Exception) -> Exception:
    """The store's exception for what botocore or aiohttp raised."""
    if isinstance(exc, _CREDENTIAL_ERRORS):
        return StoreMisconfigured(
            f"no usable S3 credentials ({exc}); set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY or configure an AWS profile or role"
        )
    if not isinstance(exc, ClientError):
        # Connection refused or reset, timeouts, a body cut short: the store may be back soon.
        return StoreUnavailable(f"S3 did not answer: {exc}")
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    code = str(exc.response.get("Error", {}).get("Code", ""))
    if status >= 500 or status == 429 or code in _TRANSIENT_CODES:
        return StoreUnavailable(f"S3 answered {status} {code}".rstrip())
    if code in _MISSING_OBJECT_CODES:
        return FileNotFoundError(str(exc))
    if status in (401, 403):
        return StoreMisconfigured(
            f"S3 refused the credentials ({code}): check AWS_ACCESS_KEY_ID "
            "and AWS_SECRET_ACCESS_KEY and the bucket's policy"
        )
    return StoreError(f"S3 answered {status} {code}: {exc}")


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    try:
        yield
    except (ClientError, BotoCoreError, aiohttp.ClientError, TimeoutError) as exc:
        raise _translated(exc) from exc


class S3FileStore:
    """A bucket (and an optional key prefix): writes go straight to it, and so do the links,
    either under a public base URL or presigned for `S3_URL_EXPIRY` seconds."""

    def __init__(self, client: S3Client, settings: StorageSettings) -> None:
        if not settings.s3_bucket:
            raise StoreMisconfigured("STORAGE_BACKEND=s3 needs S3_BUCKET")
        self._client = client
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix
        self._public = (settings.s3_public_base_url or "").rstrip("/")
        self._expiry = settings.s3_url_expiry
        self._where = settings.s3_endpoint_url or "AWS"
        # Set by a transient failure, cleared by any answer: see `ready`.
        self._failing = False

    @contextlib.contextmanager
    def _request(self) -> Iterator[None]:
        """One request to S3: its errors translated, and whether S3 is failing noted."""
        try:
            with _store_errors():
                yield
        except StoreUnavailable:
            self._failing = True
            raise
        except (StoreError, FileNotFoundError):
            self._failing = False  # S3 answered, if not as hoped
            raise
        self._failing = False

    async def ready(self) -> None:
        # Free while S3 works. After a transient failure one HEAD of the bucket stands in for
        # the job: during an outage, retried jobs wait for S3 without downloading and
        # re-encoding their image every time round.
        if self._failing:
            with self._request():
                await self._client.head_bucket(Bucket=self.bucket)

    def object_key(self, key: str) -> str:
        """The object's name in the bucket: the prefix, then the checked key."""
        return f"{self.prefix}{checked_key(key)}"

    async def url_for(self, key: str) -> str:
        name = self.object_key(key)
        if self._public:
            return f"{self._public}/{quote(name)}"
        # Signed locally (no request to S3); a fresh link each time, valid for the expiry.
        with _store_errors():
            return await self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": name}, ExpiresIn=self._expiry
            )

    async def write(self, key: str, data: bytes, content_type: str) -> None:
        # A PUT replaces the object whole: readers see the old or the new bytes, never a mix,
        # and a redelivered job writing the same key again changes nothing.
        name = self.object_key(key)
        if len(data) > MULTIPART_THRESHOLD:
            await self._write_in_parts(name, data, content_type)
            return
        with self._request():
            await self._client.put_object(
                Bucket=self.bucket, Key=name, Body=data, ContentType=content_type
            )

    async def _write_in_parts(self, name: str, data: bytes, content_type: str) -> None:
        with self._request():
            upload = await self._client.create_multipart_upload(
                Bucket=self.bucket, Key=name, ContentType=content_type
            )
        upload_id = upload["UploadId"]
        try:
            parts: list[Any] = []
            # One part at a time: only output CSVs get this large, once per request.
            for number, start in enumerate(range(0, len(data), PART_SIZE), start=1):
                with self._request():
                    answer = await self._client.upload_part(
                        Bucket=self.bucket,
                        Key=name,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=data[start : start + PART_SIZE],
                    )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
            with self._request():
                await self._client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=name,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            # An upload left open keeps its parts, billed and invisible, until aborted.
            with contextlib.suppress(Exception):
                await self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=name, UploadId=upload_id
                )
            raise

    async def read(self, key: str) -> bytes:
        with self._request():
            response = await self._client.get_object(Bucket=self.bucket, Key=self.object_key(key))
            async with response["Body"] as body:
                data: bytes = await body.read()
        return data

    async def exists(self, key: str) -> bool:
        try:
            with self._request():
                await self._client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except FileNotFoundError:
            return False
        return True

    async def delete(self, keys: list[str]) -> None:
        names = [self.object_key(key) for key in keys]
        # DeleteObjects takes up to 1,000 keys; a key with no object counts as deleted.
        for start in range(0, len(names), 1000):
            chunk = names[start : start + 1000]
            with self._request():
                answer = await self._client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": name} for name in chunk], "Quiet": True},
                )
            if errors := answer.get("Errors"):
                raise StoreUnavailable(f"S3 did not delete {len(errors)} objects: {errors[0]}")

    async def check(self) -> None:
        """StoreMisconfigured unless the bucket exists and the credentials are accepted; an
        unreachable store is only logged, as it may be back by the time there is work."""
        try:
            with self._request():
                await self._client.head_bucket(Bucket=self.bucket)
        except StoreUnavailable as exc:
            log.warning(
                "S3 at %s does not answer yet (%s); writes will be retried", self._where, exc
            )
        except FileNotFoundError:
            raise StoreMisconfigured(
                f"S3 bucket {self.bucket!r} does not exist at {self._where}; "
                "create it or set S3_BUCKET"
            ) from None
        except StoreMisconfigured:
            raise
        except StoreError as exc:
            raise StoreMisconfigured(
                f"cannot use S3 bucket {self.bucket!r} at {self._where}: {exc}"
            ) from None


def client_config(settings: StorageSettings) -> AioConfig:
    """Timeouts, few retries, path-style addressing for S3-compatible servers."""
    return AioConfig(
        connect_timeout=settings.s3_connect_timeout,
        read_timeout=settings.s3_read_timeout,
        retries={"mode": "standard", "total_max_attempts": BOTOCORE_ATTEMPTS},
        max_pool_connections=MAX_CONNECTIONS,
        # botocore still presigns S3 links with the legacy SigV2 unless told; newer AWS regions
        # and most S3-compatible servers accept only SigV4 (which also bounds the expiry).
        signature_version="s3v4",
        # Servers other than AWS rarely resolve <bucket>.<host> names.
        s3={"addressing_style": "path"} if settings.s3_endpoint_url else None,
        # botocore 1.36 began sending CRC checksums (aws-chunked) on every upload, which
        # several S3-compatible servers reject; send them only where S3 requires one.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


@asynccontextmanager
async def open_s3_file_store(settings: StorageSettings) -> AsyncIterator[S3FileStore]:
    """An S3 client for the settings' bucket, checked (see `S3FileStore.check`), open while
    in the block."""
    session = get_session()
    async with session.create_client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        config=client_config(settings),
    ) as client:
        store = S3FileStore(client, settings)
        await store.check()
        yield store
