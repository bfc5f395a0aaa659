"""Ingest settings, from environment variables."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field

from imgpipe_ingest.csv_format import CsvLimits
from imgpipe_runtime.settings import (
    BrokerSettings,
    MongoSettings,
    NetworkSettings,
    PublicUrlSettings,
)


class Settings(BrokerSettings, MongoSettings, NetworkSettings, PublicUrlSettings):
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
