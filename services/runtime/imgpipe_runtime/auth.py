"""API keys of tenants: how they look, how they are stored, and how a request's key is checked.

A key is `imgpipe_<key id>_<secret>`: the id finds its record with one `_id` lookup, and only
a salted SHA-256 of the secret is stored. (The secret has 256 random bits, so a slow password
hash would add nothing but a way to make us burn CPU on made-up keys.) Keys from `API_KEYS`
are kept in memory the same way. A looked-up key is trusted for `KEY_CACHE_SECONDS`, so the hot
path makes no database round trip; a revocation takes effect within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cachetools import TTLCache
from pymongo.asynchronous.database import AsyncDatabase

from imgpipe_contracts import documents
from imgpipe_runtime.errors import ImgpipeRuntimeError
from imgpipe_runtime.mongo import Document

KEY_PREFIX = "imgpipe"
# What a 401 says, the same from every service.
NO_KEY = "send your API key as 'Authorization: Bearer <key>'"
BAD_KEY = "the API key is unknown or revoked; ask for a valid one"
_MISSING = object()


class AuthError(ImgpipeRuntimeError):
    """Base of the errors about API keys."""


class UnknownKey(AuthError):
    """No key has this id (for `revoke`)."""


@dataclass(frozen=True)
class NewKey:
    key_id: str
    tenant: str
    key: str  # shown once, never stored


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """`(key id, secret)` of a well-formed key, else None."""
    prefix, _, rest = key.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or len(key_id) != 16 or not secret:
        return None
    if not all(c in "0123456789abcdef" for c in key_id):
        return None
    return key_id, secret


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


class KeyStore:
    """The `api_keys` collection: create, list, revoke, look up."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._keys = db[documents.API_KEYS]

    async def create(self, tenant: str) -> NewKey:
        key_id, secret, salt = (
            secrets.token_hex(8),
            secrets.token_urlsafe(32),
            secrets.token_hex(16),
        )
        await self._keys.insert_one(
            documents.api_key_document(
                key_id, tenant, salt, _digest(salt, secret), datetime.now(UTC)
            )
        )
        return NewKey(key_id, tenant, f"{KEY_PREFIX}_{key_id}_{secret}")

    async def all(self) -> list[Document]:
        return await self._keys.find({}, {"hash": 0, "salt": 0}).sort("created_at", 1).to_list()

    async def revoke(self, key_id: str) -> None:
        result = await self._keys.update_one(
            {"_id": key_id, "revoked_at": None}, {"$set": {"revoked_at": datetime.now(UTC)}}
        )
        if result.matched_count == 0 and await self._keys.find_one({"_id": key_id}) is None:
            raise UnknownKey(f"no API key has the id {key_id!r}; `imgpipe keys list` shows them")

    async def find(self, key_id: str) -> Document | None:
        doc: Document | None = await self._keys.find_one({"_id": key_id})
        return doc


class Authenticator:
    """Which tenant a presented key belongs to (None: no valid key)."""

    def __init__(
        self, store: KeyStore, static_keys: tuple[tuple[str, str], ...], cache_seconds: float
    ) -> None:
        self._store = store
        self._static = {hashlib.sha256(key.encode()).hexdigest(): t for t, key in static_keys}
        self._cache: TTLCache[str, Any] = TTLCache(maxsize=10_000, ttl=cache_seconds or 1e-9)

    async def tenant_for(self, key: str) -> str | None:
        static = self._static.get(hashlib.sha256(key.encode()).hexdigest())
        if static is not None:
            return static
        parts = split_key(key)
        if parts is None:
            return None
        key_id, secret = parts
        record = self._cache.get(key_id, _MISSING)
        if record is _MISSING:
            record = await self._store.find(key_id)
            self._cache[key_id] = record  # unknown ids too: a made-up key costs one lookup
        if record is None or record.get("revoked_at") is not None:
            return None
        if not hmac.compare_digest(_digest(record["salt"], secret), record["hash"]):
            return None
        tenant: str = record["tenant"]
        return tenant
