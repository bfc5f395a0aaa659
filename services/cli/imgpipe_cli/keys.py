"""`imgpipe keys`: API keys of tenants, straight in the database (MONGODB_URL, MONGODB_DB)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from imgpipe_runtime.auth import AuthError, KeyStore
from imgpipe_runtime.mongo import connected_database
from imgpipe_runtime.settings import MongoSettings, load_settings

T = TypeVar("T")

keys = typer.Typer(help="API keys: who may upload and see their requests.", no_args_is_help=True)
out = Console()
err = Console(stderr=True, soft_wrap=True)


def _run(work: Callable[[KeyStore], Awaitable[T]]) -> T:
    settings = load_settings(MongoSettings)

    async def main() -> T:
        async with connected_database(settings, wait_seconds=10) as db:
            return await work(KeyStore(db))

    try:
        return asyncio.run(main())
    except AuthError as exc:
        err.print(f"imgpipe: {exc}", highlight=False, markup=False)
        raise typer.Exit(1) from None
    except Exception as exc:
        err.print(
            f"imgpipe: cannot reach the database at {settings.mongodb_url}: {exc}",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(1) from None


@keys.command()
def create(tenant: Annotated[str, typer.Argument(help="Who the key is for, e.g. acme.")]) -> None:
    """Create a key for TENANT and print it (once: only a hash of it is stored)."""
    tenant = tenant.strip()
    if not tenant or len(tenant) > 100 or any(c in tenant for c in ":,;\n"):
        err.print("imgpipe: give a tenant name of 1-100 characters without ':', ',' or ';'")
        raise typer.Exit(2)
    new = _run(lambda store: store.create(tenant))
    err.print(f"key {new.key_id} for {new.tenant}; store it now, it is not shown again:")
    print(new.key)


@keys.command("list")
def list_keys(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every key: its id, tenant, when it was made and whether it is revoked."""
    docs = _run(lambda store: store.all())
    rows: list[dict[str, Any]] = [
        {
            "key_id": d["_id"],
            "tenant": d["tenant"],
            "created_at": d["created_at"].isoformat(),
            "revoked_at": d["revoked_at"].isoformat() if d.get("revoked_at") else None,
        }
        for d in docs
    ]
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("key id", "tenant", "created", "revoked")
    for row in rows:
        table.add_row(row["key_id"], row["tenant"], row["created_at"], row["revoked_at"] or "")
    out.print(table)


@keys.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key id from `imgpipe keys list`.")],
) -> None:
    """Revoke a key; services stop accepting it within KEY_CACHE_SECONDS."""
    _run(lambda store: store.revoke(key_id))
    err.print(f"revoked {key_id}")
