"""Settings shared by several services, read from environment variables (pydantic-settings)."""

from __future__ import annotations

import ipaddress
import math
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from imgpipe_contracts.topology import Topology
from imgpipe_runtime.logs import LogFormat

DelayList = Annotated[tuple[float, ...], NoDecode]
S = TypeVar("S", bound=BaseSettings)


def load_settings(kind: type[S]) -> S:
    """`kind` read from the environment; on a bad value, one line per problem on stderr
    (the variable and what is wrong) and exit status 2, not a traceback."""
    try:
        return kind()
    except ValidationError as exc:
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            variable = "_".join(str(part) for part in error["loc"]).upper()
            if variable and not message.startswith(variable):
                message = f"{variable}: {message}"
            print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None


def _split_delays(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(float(part) for part in value.replace(",", " ").split())
    return value


class ServiceSettings(BaseSettings):
    """What every service process has: where it listens and how it logs."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    environment: Literal["development", "production"] = "development"
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    log_level: str = "INFO"
    log_format: LogFormat = Field(
        default="auto", description="json, text, or auto: JSON unless on a terminal."
    )


class BrokerSettings(ServiceSettings):
    """RabbitMQ connection and the retry schedule every service declares identically."""

    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    broker_prefix: str = Field(
        default="", description="Prefix for exchange and queue names; isolates test runs."
    )
    retry_delays: DelayList = (1.0, 5.0, 30.0)
    webhook_retry_delays: DelayList = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0)
    delivery_limit: int = Field(default=5, ge=1)
    prefetch: int = Field(default=32, ge=1)
    publish_timeout: float = Field(default=10.0, gt=0)

    @field_validator("retry_delays", "webhook_retry_delays", mode="before")
    @classmethod
    def _parse_delays(cls, value: Any) -> Any:
        return _split_delays(value)

    @field_validator("retry_delays", "webhook_retry_delays")
    @classmethod
    def _positive(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or not all(math.isfinite(d) and d >= 0.001 for d in value):
            raise ValueError(
                "give one or more positive delays in seconds (at least 0.001), e.g. '1,5,30'"
            )
        return value

    def topology(self) -> Topology:
        return Topology(
            prefix=self.broker_prefix,
            work_retry_delays=self.retry_delays,
            webhook_retry_delays=self.webhook_retry_delays,
            delivery_limit=self.delivery_limit,
        )


NetworkList = Annotated[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...], NoDecode]


class NetworkSettings(BaseSettings):
    """Which addresses downloads and webhooks may reach (the SSRF guard's configuration)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    imgpipe_allow_private_networks: bool = Field(
        default=False, description="Allow loopback, private and link-local destinations."
    )
    imgpipe_allowed_networks: NetworkList = Field(
        default=(), description="Non-public networks allowed anyway, e.g. '10.1.2.0/24'."
    )

    @field_validator("imgpipe_allowed_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part for part in value.replace(",", " ").split())
        return value


class MongoSettings(BaseSettings):
    """Where the MongoDB-compatible database is."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    mongodb_url: str = "mongodb://127.0.0.1:27017"
    mongodb_db: str = "imgpipe"
    mongodb_timeout_ms: int = Field(default=5000, ge=100)


class PublicUrlSettings(BaseSettings):
    """Where users reach the status service: the links the services hand out start here."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    public_base_url: str = Field(
        default="http://localhost:8010",
        description="Where users reach the status service; the links it hands out start here.",
    )


# Presigned S3 URLs cannot live longer than 7 days (SigV4's limit).
MAX_URL_EXPIRY = 7 * 24 * 3600


class StorageSettings(PublicUrlSettings):
    """Where processed images and output CSVs are kept: a local directory or an S3 bucket.

    S3 credentials are not settings of ours: botocore finds them the standard AWS way
    (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, a role).
    """

    storage_backend: Literal["local", "s3"] = Field(
        default="local", description="local: DATA_DIR, served by status; s3: an S3 bucket."
    )
    data_dir: Path = Path(".data/files")
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = Field(
        default=None, description="An S3-compatible server; unset means AWS itself."
    )
    s3_region: str | None = None
    s3_prefix: str = Field(default="", description="Prepended to every object key.")
    s3_public_base_url: str | None = Field(
        default=None, description="A CDN or public-bucket base for links; unset: presigned links."
    )
    s3_url_expiry: int = Field(default=MAX_URL_EXPIRY, ge=1, le=MAX_URL_EXPIRY)
    s3_connect_timeout: float = Field(default=5.0, gt=0)
    s3_read_timeout: float = Field(default=30.0, gt=0)

    @field_validator(
        "s3_bucket", "s3_endpoint_url", "s3_region", "s3_public_base_url", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # Compose files and shells pass unset variables as empty strings.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("s3_prefix")
    @classmethod
    def _prefix_as_folder(cls, value: str) -> str:
        stripped = value.strip("/")
        return f"{stripped}/" if stripped else ""

    @model_validator(mode="after")
    def _bucket_for_s3(self) -> StorageSettings:
        if self.storage_backend == "s3" and not self.s3_bucket:
            raise ValueError("STORAGE_BACKEND=s3 needs S3_BUCKET: the bucket to keep files in")
        return self


# Only for development: anyone reading this file can forge file links signed with it.
DEVELOPMENT_LINK_SECRET = "imgpipe-development-link-secret"

StaticKeys = Annotated[tuple[tuple[str, str], ...], NoDecode]


class AuthSettings(ServiceSettings):
    """Who may call the APIs: API keys of tenants (ingest and status)."""

    auth_mode: Literal["off", "required"] | None = Field(
        default=None, description="off or required; unset: required in production, else off."
    )
    api_keys: StaticKeys = Field(
        default=(), description="Keys given as 'tenant:key' pairs, comma-separated."
    )
    key_cache_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long a looked-up key is trusted; a revocation takes effect within it.",
    )

    @property
    def auth_required(self) -> bool:
        mode = self.auth_mode or ("required" if self.environment == "production" else "off")
        return mode == "required"

    @field_validator("auth_mode", mode="before")
    @classmethod
    def _empty_mode_is_unset(cls, value: Any) -> Any:
        # Compose files and shells pass unset variables as empty strings.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_pairs(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        pairs = []
        for part in value.replace(";", ",").split(","):
            tenant, sep, key = part.strip().partition(":")
            if not part.strip():
                continue
            if not sep or not tenant.strip() or len(key.strip()) < 16:
                raise ValueError(
                    "API_KEYS: give 'tenant:key' pairs, comma-separated, keys of 16+ characters"
                )
            pairs.append((tenant.strip(), key.strip()))
        return tuple(pairs)


class LinkSettings(AuthSettings):
    """How file links are signed when access is controlled (processor and status)."""

    link_secret: str = Field(
        default=DEVELOPMENT_LINK_SECRET,
        min_length=16,
        description="Signs the file links handed out in CSVs, statuses and webhooks.",
    )
    link_expiry: int = Field(
        default=7 * 24 * 3600, ge=60, description="Seconds a signed file link stays valid."
    )

    @model_validator(mode="after")
    def _no_development_link_secret_in_production(self) -> Self:
        if self.environment == "production" and self.link_secret == DEVELOPMENT_LINK_SECRET:
            raise ValueError("set LINK_SECRET: the development link secret is public")
        return self
