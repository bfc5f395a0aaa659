"""Notifier settings, from environment variables."""

from __future__ import annotations

import base64
import binascii
from typing import Self

from pydantic import Field, field_validator, model_validator

from imgpipe_runtime.settings import BrokerSettings, MongoSettings, NetworkSettings

# Only for development: anyone reading this file can forge webhooks signed with it.
DEVELOPMENT_SECRET = "whsec_" + base64.b64encode(b"imgpipe-development-secret-32byte").decode()


class Settings(BrokerSettings, NetworkSettings, MongoSettings):
    notifier_port: int = 8020
    webhook_secret: str = Field(
        default=DEVELOPMENT_SECRET,
        description="Standard Webhooks secret: 'whsec_' followed by base64 of 24-64 bytes.",
    )
    default_webhook_url: str | None = None
    webhook_timeout: float = Field(default=10.0, gt=0)
    received_webhooks_kept: int = Field(default=1000, ge=1)

    @field_validator("webhook_secret")
    @classmethod
    def _standard_webhooks_secret(cls, value: str) -> str:
        if not value.startswith("whsec_"):
            raise ValueError("WEBHOOK_SECRET must look like 'whsec_<base64>' (Standard Webhooks)")
        try:
            raw = base64.b64decode(value.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            raise ValueError("WEBHOOK_SECRET: the part after 'whsec_' is not base64") from None
        if not 24 <= len(raw) <= 64:
            raise ValueError("WEBHOOK_SECRET must encode between 24 and 64 random bytes")
        return value

    @model_validator(mode="after")
    def _no_development_secret_in_production(self) -> Self:
        if self.environment == "production" and self.webhook_secret == DEVELOPMENT_SECRET:
            raise ValueError("set WEBHOOK_SECRET: the development secret is public")
        return self
