"""Status service settings, from environment variables."""

from __future__ import annotations

from pydantic import Field

from imgpipe_runtime.settings import BrokerSettings, LinkSettings, MongoSettings, StorageSettings


class Settings(LinkSettings, BrokerSettings, MongoSettings, StorageSettings):
    status_port: int = 8010
    ingest_public_url: str = Field(
        default="http://localhost:8000",
        description="Where browsers reach the ingest service (the dashboard uploads there).",
    )
    batch_size: int = Field(default=200, ge=1, description="Outcome events per database batch.")
    row_batch_messages: int = Field(
        default=20,
        ge=1,
        description="Image batches (up to 50 rows each) whose rows are recorded in one "
        "database write.",
    )
    assembly_images: int = Field(
        default=50_000,
        ge=0,
        description="Images of requests in progress whose rows and outcomes this process keeps "
        "in memory (up to about 1 kB each: 50 MB at the default), so that a row's product is "
        "inserted as soon as its last image has an outcome and a completion reads nothing "
        "back; a request larger than this gets all its products at completion (0: every "
        "request does).",
    )
    batch_wait: float = Field(default=0.05, ge=0, description="Seconds to wait to fill a batch.")
    events_interval: float = Field(
        default=0.25, gt=0, description="How often a live progress stream looks for changes."
    )
    status_cache_seconds: float = Field(
        default=0.5,
        ge=0,
        description="How long a rendered status is shared by its pollers (0: not at all); for "
        "as long again it is still answered while being refreshed.",
    )
    outbox_interval: float = Field(default=5.0, gt=0)
    outbox_grace: float = Field(
        default=30.0, gt=0, description="Age after which an unpublished completion is re-sent."
    )
    collect_interval: float = Field(
        default=300.0,
        gt=0,
        description="How often the collector removes unreferenced outputs, finishes "
        "interrupted deletions and expires requests (seconds).",
    )
    orphan_grace: float = Field(
        default=3600.0,
        ge=0,
        description="How long an output nobody refers to any more is kept before the "
        "collector removes it (seconds); a request made meanwhile reuses it.",
    )
    retention_days: float = Field(
        default=0.0,
        ge=0,
        description="Delete finished requests this many days after they completed, as "
        "DELETE /requests/{id} does (0: keep them).",
    )
