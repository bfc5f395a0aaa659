"""`imgpipe`: submit CSVs, follow them live, fetch the results, and operate the queues.

Exit codes a script can rely on:
  0 completed, every image processed      3 completed, some images failed
  4 failed (no image could be processed)  5 not finished yet (status, download, delete)
  1 an error (one line on stderr)         2 a usage error
`delete` exits 0 once the request is deleted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import aiohttp
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from imgpipe_cli.client import ApiError, Client, NotFinished
from imgpipe_cli.dlq import dlq
from imgpipe_cli.keys import keys
from imgpipe_contracts.events import FINAL_STATES

T = TypeVar("T")
OK, ERROR, USAGE, WITH_FAILURES, FAILED, NOT_FINISHED = 0, 1, 2, 3, 4, 5

app = typer.Typer(
    help="Turn spreadsheets of product images into optimised images.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(dlq, name="dlq")
app.add_typer(keys, name="keys")
out = Console()
err = Console(stderr=True, soft_wrap=True)

IngestUrl = Annotated[str, typer.Option(envvar="IMGPIPE_INGEST_URL", help="The ingest service.")]
StatusUrl = Annotated[str, typer.Option(envvar="IMGPIPE_STATUS_URL", help="The status service.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="IMGPIPE_API_KEY",
        help="Your API key (when the services require one).",
        show_default=False,
    ),
]


def _run(
    ingest_url: str,
    status_url: str,
    work: Callable[[Client], Awaitable[T]],
    api_key: str | None = None,
) -> T:
    async def main() -> T:
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=60)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            return await work(Client(session, ingest_url, status_url, api_key))

    try:
        return asyncio.run(main())
    except ApiError as exc:
        err.print(f"imgpipe: {exc}", highlight=False, markup=False)
        raise typer.Exit(ERROR) from None
    except (aiohttp.ClientError, OSError) as exc:
        err.print(f"imgpipe: {type(exc).__name__}: {exc}", highlight=False, markup=False)
        raise typer.Exit(ERROR) from None


class RateColumn(ProgressColumn):
    """Images per second, once there is a rate to show."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f} img/s" if task.speed else "")


def exit_code(status: dict[str, Any]) -> int:
    if status["status"] == "Failed":
        return FAILED
    if status["status"] != "Completed":
        return NOT_FINISHED
    return WITH_FAILURES if status["progress"]["failed"] else OK


def summary(status: dict[str, Any]) -> str:
    p = status["progress"]
    lines = [
        f"{status['request_id']}: {status['status']}, {p['processed']} processed, "
        f"{p['failed']} failed of {p['total']}"
    ]
    if status.get("bytes_in"):
        saved = 1 - status["bytes_out"] / status["bytes_in"]
        lines.append(
            f"  {status['bytes_in'] / 1e6:.1f} MB in, {status['bytes_out'] / 1e6:.1f} "
            f"MB out ({saved:.0%} saved)"
        )
    reused = {how: n for how, n in (status.get("reused") or {}).items() if n}
    if reused:
        hows = ", ".join(f"{n} {how.replace('_', ' ')}" for how, n in reused.items())
        not_downloaded = status.get("bytes_not_downloaded", 0) / 1e6
        lines.append(
            f"  reused {sum(reused.values())} ({hows}); {not_downloaded:.1f} MB not downloaded"
        )
    for reason, count in sorted(status.get("failures_by_reason", {}).items()):
        lines.append(f"  failed: {reason} x{count}")
    if status.get("output_csv_url"):
        lines.append(f"  output CSV: {status['output_csv_url']}")
    if status.get("error"):
        lines.append(f"  error: {status['error']}")
    return "\n".join(lines)


async def follow(client: Client, request_id: str, as_json: bool) -> dict[str, Any]:
    """Show live progress (a bar on a terminal, nothing in a pipe) until the final status."""
    show = not as_json and err.is_terminal
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TaskProgressColumn(),
        RateColumn(),
        TimeRemainingColumn(),
    )
    status: dict[str, Any] = {}
    with Progress(*columns, console=err, disable=not show, transient=False) as bar:
        task = bar.add_task("images", total=None, failed=0)
        async for status in client.events(request_id):
            p = status["progress"]
            bar.update(
                task,
                total=p["total"],
                completed=p["processed"] + p["failed"],
                failed=p["failed"],
                description=status["status"].lower(),
            )
    return status


@app.command()
def submit(
    csv_file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="The CSV: S. No.,Product Name,Input Image Urls",
        ),
    ],
    webhook: Annotated[str | None, typer.Option(help="Call this URL when done.")] = None,
    wait: Annotated[bool, typer.Option(help="Follow the progress until done.")] = False,
    as_json: AsJson = False,
    ingest_url: IngestUrl = "http://localhost:8000",
    status_url: StatusUrl = "http://localhost:8010",
    api_key: ApiKey = None,
) -> None:
    """Upload a CSV; print its request id (with --wait, follow it to the end)."""

    async def work(client: Client) -> dict[str, Any]:
        accepted = await client.submit(csv_file, webhook)
        if not wait:
            return accepted
        if not as_json:
            out.print(accepted["request_id"], highlight=False)
        return await follow(client, accepted["request_id"], as_json)

    result = _run(ingest_url, status_url, work, api_key)
    if not wait:
        print(json.dumps(result) if as_json else result["request_id"])
        return
    _report(result, as_json)


def _report(result: dict[str, Any], as_json: bool) -> NoReturn:
    """Print a final status (a summary, or JSON) and exit with its code."""
    print(json.dumps(result) if as_json else summary(result))
    raise typer.Exit(exit_code(result))


@app.command()
def status(
    request_id: str,
    as_json: AsJson = False,
    ingest_url: IngestUrl = "http://localhost:8000",
    status_url: StatusUrl = "http://localhost:8010",
    api_key: ApiKey = None,
) -> None:
    """Where a request is now."""
    _report(
        _run(ingest_url, status_url, lambda client: client.status(request_id), api_key), as_json
    )


@app.command()
def watch(
    request_id: str,
    as_json: AsJson = False,
    ingest_url: IngestUrl = "http://localhost:8000",
    status_url: StatusUrl = "http://localhost:8010",
    api_key: ApiKey = None,
) -> None:
    """Follow a request live until it is done."""
    _report(
        _run(ingest_url, status_url, lambda c: follow(c, request_id, as_json), api_key), as_json
    )


@app.command()
def download(
    request_id: str,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Where to save it.")] = None,
    ingest_url: IngestUrl = "http://localhost:8000",
    status_url: StatusUrl = "http://localhost:8010",
    api_key: ApiKey = None,
) -> None:
    """Save a finished request's output CSV (default: output_<id>.csv)."""

    async def work(client: Client) -> tuple[dict[str, Any], int]:
        current = await client.status(request_id)
        if current["status"] not in FINAL_STATES or not current.get("output_csv_url"):
            return current, 0
        target = output or Path(f"output_{request_id}.csv")
        return current, await client.download(current["output_csv_url"], target)

    current, size = _run(ingest_url, status_url, work, api_key)
    if not size:
        err.print(f"imgpipe: {request_id} is {current['status']}; its CSV is not ready yet")
        raise typer.Exit(NOT_FINISHED)
    print(output or f"output_{request_id}.csv")


@app.command()
def delete(
    request_id: str,
    as_json: AsJson = False,
    ingest_url: IngestUrl = "http://localhost:8000",
    status_url: StatusUrl = "http://localhost:8010",
    api_key: ApiKey = None,
) -> None:
    """Delete a finished request: its status, products, output CSV and the images only it
    uses (images other requests share keep working)."""

    async def work(client: Client) -> str | None:
        try:
            await client.delete(request_id)
        except NotFinished as exc:
            return str(exc)
        return None

    not_finished = _run(ingest_url, status_url, work, api_key)
    if not_finished is not None:
        err.print(f"imgpipe: {not_finished}", highlight=False, markup=False)
        raise typer.Exit(NOT_FINISHED)
    print(
        json.dumps({"request_id": request_id, "deleted": True})
        if as_json
        else f"{request_id}: deleted"
    )


def main() -> None:
    app(prog_name="imgpipe")
