"""Processor settings, from environment variables."""

from __future__ import annotations

import os

from pydantic import Field

from imgpipe_processor.caching import ReuseScope
from imgpipe_runtime.settings import (
    BrokerSettings,
    LinkSettings,
    MongoSettings,
    NetworkSettings,
    StorageSettings,
)


class Settings(LinkSettings, BrokerSettings, MongoSettings, NetworkSettings, StorageSettings):
    metrics_port: int = Field(
        default=8030, description="Port of the Prometheus /metrics endpoint (no other HTTP)."
    )
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    worker_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="How much lower the image workers' CPU priority is than the event loops'.",
    )
    connect_timeout: float = Field(default=5.0, gt=0)
    download_timeout: float = Field(default=30.0, gt=0)
    max_download_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    max_pixels: int = Field(default=50_000_000, ge=1)
    max_redirects: int = Field(default=3, ge=0)
    downloads_per_host: int = Field(default=16, ge=1)
    batch_prefetch: int = Field(
        default=4,
        ge=1,
        description="Messages (a batch carries up to 50 images) each lane hands this "
        "processor at a time.",
    )
    images_in_progress: int = Field(
        default=64,
        ge=1,
        description="Images one processor downloads, recompresses or stores at once.",
    )
    outcome_wait: float = Field(
        default=0.25,
        ge=0,
        description="Seconds an image outcome may wait for others to share its message (it "
        "goes at once when no other image is in progress, or with the last image of its batch).",
    )
    jpeg_quality: int = Field(default=50, ge=1, le=95)
    reuse: bool = Field(
        default=True,
        description="Fetch and encode each source once: reuse earlier outputs where exact, "
        "revalidate with conditional GETs (off: every image downloaded and encoded anew).",
    )
    reuse_scope: ReuseScope = Field(
        default="tenant",
        description="tenant: a tenant reuses only its own earlier work; global: every tenant's "
        "(reveals to a tenant which images others process).",
    )
    reuse_lease: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a processor may hold a source it fetches before another takes "
        "over (a processor that died holding one delays that source this long).",
    )
