"""Processor settings, from environment variables."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from imgpipe_contracts.settings import BrokerSettings, NetworkSettings


class Settings(BrokerSettings, NetworkSettings):
    host: str = "127.0.0.1"
    metrics_port: int = Field(
        default=8030, description="Port of the Prometheus /metrics endpoint (no other HTTP)."
    )
    data_dir: Path = Path(".data/files")
    public_base_url: str = Field(
        default="http://localhost:8010",
        description="Where the status service serves DATA_DIR under /files.",
    )
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    connect_timeout: float = Field(default=5.0, gt=0)
    download_timeout: float = Field(default=30.0, gt=0)
    max_download_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    max_pixels: int = Field(default=50_000_000, ge=1)
    max_redirects: int = Field(default=3, ge=0)
    downloads_per_host: int = Field(default=8, ge=1)
    jpeg_quality: int = Field(default=50, ge=1, le=95)
