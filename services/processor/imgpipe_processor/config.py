"""Processor settings, from environment variables."""

from __future__ import annotations

import os
from typing import Self

from pydantic import Field, model_validator

from imgpipe_processor.caching import ReuseScope
from imgpipe_processor.hostlimit import Tuning
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
    downloads_per_host: int = Field(
        default=64,
        ge=1,
        description="The most downloads from one host at once, whatever its adaptive limit "
        "(a hard cap, also the connection pool's per host).",
    )
    downloads_per_host_min: int = Field(
        default=2,
        ge=1,
        description="The adaptive per-host limit's floor and starting point.",
    )
    host_probe_interval: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a host's limit stays below a level the host refused before it "
        "tries that level again.",
    )
    host_max_pause: float = Field(
        default=60.0,
        ge=0,
        description="The longest Retry-After a host gets as a pause of new downloads from it.",
    )
    metrics_hosts: int = Field(
        default=20,
        ge=0,
        description="Busy hosts that get metrics labels of their own (the rest: 'other').",
    )
    # A request's jobs go to one lane, so BATCH_PREFETCH * 50 bounds one request's images in
    # progress as well: with 4, a one-host batch 100 ms away kept at most 200 at work.
    batch_prefetch: int = Field(
        default=8,
        ge=1,
        description="Messages (a batch carries up to 50 images) each lane hands this "
        "processor at a time.",
    )
    # Four times DOWNLOADS_PER_HOST: an image also waits for the database's write windows
    # (reuse's lease and records, up to 500 ms each) while it holds a place. A one-host batch
    # 100 ms away ran at 0.76x its no-latency rate with 128 (and 4 batches per lane), 0.87x
    # with 256 (and 4), 0.94-1.06x with 256 and 8 (make bench, runs 8a and 8b).
    images_in_progress: int = Field(
        default=256,
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

    @model_validator(mode="after")
    def _floor_under_ceiling(self) -> Self:
        if self.downloads_per_host_min > self.downloads_per_host:
            raise ValueError(
                f"DOWNLOADS_PER_HOST_MIN ({self.downloads_per_host_min}) must not exceed "
                f"DOWNLOADS_PER_HOST ({self.downloads_per_host})"
            )
        return self

    def host_tuning(self) -> Tuning:
        """The per-host download limits' constants (hostlimit.py)."""
        return Tuning(
            floor=self.downloads_per_host_min,
            ceiling=self.downloads_per_host,
            probe_interval=self.host_probe_interval,
            max_pause=self.host_max_pause,
        )
