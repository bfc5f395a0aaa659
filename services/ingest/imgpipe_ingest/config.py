"""Ingest settings, from environment variables."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from imgpipe_ingest.csv_format import CsvLimits
from imgpipe_runtime.settings import (
    AuthSettings,
    BrokerSettings,
    MongoSettings,
    NetworkSettings,
    PublicUrlSettings,
)


class TenantLimits(BaseModel):
    """What one tenant may do (the ingest enforces these when AUTH_MODE=required)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uploads_per_minute: int = Field(default=60, ge=1)
    images_in_flight: int = Field(default=1_000_000, ge=1)
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)


class Settings(AuthSettings, BrokerSettings, MongoSettings, NetworkSettings, PublicUrlSettings):
    ingest_port: int = 8000
    dashboard_origins: str = Field(
        default="",
        description="Extra browser origins allowed to upload (comma-separated); the origin "
        "of PUBLIC_BASE_URL, where the dashboard lives, is always allowed.",
    )
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    max_rows: int = Field(default=200_000, ge=1)
    max_urls_per_row: int = Field(default=50, ge=1)
    max_images: int = Field(default=500_000, ge=1)
    max_cell_chars: int = Field(default=10_000, ge=100)
    max_url_length: int = Field(default=2_048, ge=64)
    tenant_uploads_per_minute: int = Field(default=60, ge=1)
    tenant_images_in_flight: int = Field(default=1_000_000, ge=1)
    tenant_max_upload_bytes: int | None = Field(
        default=None,
        ge=1024,
        description="Bytes per upload of one tenant (unset: MAX_UPLOAD_BYTES).",
    )
    tenant_limits: dict[str, TenantLimits] = Field(
        default_factory=dict,
        description='Per-tenant overrides as JSON, e.g. {"acme": {"uploads_per_minute": 10}}.',
    )

    def limits_of(self, tenant: str) -> TenantLimits:
        """The tenant's limits: its overrides over the defaults (only with AUTH_MODE=required)."""
        defaults = TenantLimits(
            uploads_per_minute=self.tenant_uploads_per_minute,
            images_in_flight=self.tenant_images_in_flight,
            max_upload_bytes=min(
                self.tenant_max_upload_bytes or self.max_upload_bytes, self.max_upload_bytes
            ),
        )
        override = self.tenant_limits.get(tenant)
        if override is None:
            return defaults
        return defaults.model_copy(update=override.model_dump(exclude_unset=True))

    def cors_origins(self) -> list[str]:
        parts = urlsplit(self.public_base_url)
        extra = [o.strip().rstrip("/") for o in self.dashboard_origins.split(",") if o.strip()]
        return [f"{parts.scheme}://{parts.netloc}", *extra]

    def csv_limits(self) -> CsvLimits:
        return CsvLimits(
            max_rows=self.max_rows,
            max_urls_per_row=self.max_urls_per_row,
            max_images=self.max_images,
            max_cell_chars=self.max_cell_chars,
            max_url_length=self.max_url_length,
        )
