"""The results table (with the targets marked PASS/FAIL), results.json and chart.png."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    figure: str
    value: float | None
    unit: str
    target: str = ""
    ok: bool | None = None  # None: no target

    def cells(self) -> tuple[str, str, str, str]:
        value = "n/a" if self.value is None else f"{self.value:,.{_digits(self.value)}f}"
        mark = "" if self.ok is None else ("PASS" if self.ok else "FAIL")
        return self.figure, f"{value} {self.unit}".strip(), self.target, mark


def _digits(value: float) -> int:
    return 0 if abs(value) >= 1000 else 1 if abs(value) >= 10 else 2


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# What the system itself spent per image (the bench, the origin, other processes and idle
# time left out): a cost that the machine's other load moves less than it moves throughput.
_SYSTEM = (
    "ingest",
    "processor",
    "processor children",
    "status",
    "notifier",
    "secantusdb",
    "rabbitmq",
)


def _system_cpu(run: dict[str, Any] | None) -> float | None:
    if run is None:
        return None
    per_image = run.get("cpu_ms_per_image", {})
    return sum(per_image.get(name, 0.0) for name in _SYSTEM) or None


def _mean(a: float | None, b: float | None) -> float | None:
    return (a + b) / 2 if a is not None and b is not None else None


def rows(r: dict[str, Any]) -> list[Row]:
    """Every figure, in run order; targets from the issue."""
    codec, naive, naive_lat = r.get("codec"), r.get("naive"), r.get("naive_latency")
    pipe, pipe_lat, pipe_s3 = r.get("pipeline"), r.get("pipeline_latency"), r.get("pipeline_s3")
    ingest, one = r.get("ingest"), r.get("one_image")
    repeat, dupes = r.get("pipeline_repeat"), r.get("pipeline_duplicates")
    pipe_traced, again = r.get("pipeline_traced"), r.get("pipeline_again")
    ms = r["config"]["latency_ms"]

    def get(d: dict[str, Any] | None, key: str) -> float | None:
        return None if d is None else d.get(key)

    codec_rate = get(codec, "images_per_s")
    pipe_rate, lat_rate = get(pipe, "images_per_s"), get(pipe_lat, "images_per_s")
    s3_rate = get(pipe_s3, "images_per_s")
    naive_lat_rate = get(naive_lat, "images_per_s")
    repeat_rate, dupes_rate = get(repeat, "images_per_s"), get(dupes, "images_per_s")
    out = [
        Row(f"1. codec limit ({get(codec, 'workers')} procs, no I/O)", codec_rate, "img/s"),
        Row("1. codec limit", get(codec, "megapixels_per_s"), "MP/s"),
        Row("2. pipeline, no latency", pipe_rate, "img/s"),
        Row("2. pipeline, steady 10-90%", get(pipe, "steady_images_per_s"), "img/s"),
        Row("2. pipeline / codec limit", _ratio(pipe_rate, codec_rate), "x", ">= 0.75"),
        Row("2. batch upload -> 202", get(pipe, "upload_s"), "s"),
        Row("2. last outcome -> Completed seen", get(pipe, "completion_tail_s"), "s"),
        Row("2r. the same request again (ETags)", repeat_rate, "img/s"),
        Row("2r. repeat / first run", _ratio(repeat_rate, pipe_rate), "x", ">= 10"),
        Row("2r. repeat / codec limit", _ratio(repeat_rate, codec_rate), "x", ">= 5"),
        Row("2r. repeat: bodies downloaded", get(repeat, "full_downloads"), "", "0"),
        Row("2r. repeat: encodes", get(repeat, "encodes"), "", "0"),
        Row("2d. rows over 1/10 as many URLs", dupes_rate, "img/s"),
        Row("2d. duplicates / codec limit", _ratio(dupes_rate, codec_rate), "x", ">= 5"),
        Row("2d. duplicates: downloads", get(dupes, "full_downloads"), "", "= distinct"),
        Row("2d. duplicates: encodes", get(dupes, "encodes"), "", "= distinct"),
        Row(
            f"2t. pipeline, traced at {r['config'].get('trace_ratio', 0.1):.0%} (OTLP)",
            get(pipe_traced, "images_per_s"),
            "img/s",
        ),
        Row("2t. spans received", get(pipe_traced, "spans_received"), ""),
        Row(
            "2t. imgpipe's CPU per image, traced / run 2",
            _ratio(_system_cpu(pipe_traced), _system_cpu(pipe)),
            "x",
        ),
        Row(
            "2t. traced / untraced (run 2)",
            _ratio(get(pipe_traced, "images_per_s"), pipe_rate),
            "x",
            ">= 0.95",
        ),
        # Only with BENCH_ONLY=tracing (bench/traced.py).
        *(bracketed(pipe, pipe_traced, again) if again else []),
        Row("2s. pipeline, s3 backend (local moto)", s3_rate, "img/s"),
        Row("2s. pipeline s3 / local disk", _ratio(s3_rate, pipe_rate), "x"),
        Row("2s. GET /status p99, s3 backend", get(pipe_s3, "status_p99_ms"), "ms"),
        Row("3. naive sequential, no latency", get(naive, "images_per_s"), "img/s"),
        Row("3. pipeline / naive, no latency", _ratio(pipe_rate, get(naive, "images_per_s")), "x"),
        Row(f"3. naive sequential, {ms:g} ms latency", naive_lat_rate, "img/s"),
        Row(f"4. pipeline, {ms:g} ms latency", lat_rate, "img/s"),
        Row(f"4. pipeline {ms:g} ms / codec limit", _ratio(lat_rate, codec_rate), "x", ">= 0.70"),
        Row(f"4. pipeline / naive, both {ms:g} ms", _ratio(lat_rate, naive_lat_rate), "x", ">= 10"),
        Row("5. ingest accepted+published", get(ingest, "rows_per_s"), "rows/s", ">= 20,000"),
        Row("5. ingest peak RSS (VmHWM)", get(ingest, "peak_rss_mb"), "MB", "< 200"),
        Row("6. GET /status p50 under load", get(pipe, "status_p50_ms"), "ms"),
        Row("6. GET /status p99 under load", get(pipe, "status_p99_ms"), "ms", "< 25"),
        Row("6. GET /status p99, 1 poller (run 4)", get(pipe_lat, "status_p99_ms"), "ms"),
        Row("7. one image, 202 -> webhook p50", get(one, "p50_ms"), "ms", "< 150"),
        *host_rows(r),
    ]
    distinct = max(1, r["config"]["images"] // 10)
    checks = {
        "2. pipeline / codec limit": lambda v: v >= 0.75,
        "2r. repeat / first run": lambda v: v >= 10,
        "2r. repeat / codec limit": lambda v: v >= 5,
        "2r. repeat: bodies downloaded": lambda v: v == 0,
        "2r. repeat: encodes": lambda v: v == 0,
        "2d. duplicates / codec limit": lambda v: v >= 5,
        "2t. traced / untraced (run 2)": lambda v: v >= 0.95,
        "2a. traced / mean of 2 and 2a": lambda v: v >= 0.95,
        "2d. duplicates: downloads": lambda v: v == distinct,
        "2d. duplicates: encodes": lambda v: v == distinct,
        f"4. pipeline {ms:g} ms / codec limit": lambda v: v >= 0.70,
        f"4. pipeline / naive, both {ms:g} ms": lambda v: v >= 10,
        "5. ingest accepted+published": lambda v: v >= 20_000,
        "5. ingest peak RSS (VmHWM)": lambda v: v < 200,
        "6. GET /status p99 under load": lambda v: v < 25,
        "7. one image, 202 -> webhook p50": lambda v: v < 150,
        f"8b. {ms:g} ms / no latency": lambda v: v >= 0.9,
        "9. refused requests, share": lambda v: v < 15,
    }
    return [
        Row(row.figure, row.value, row.unit, row.target, checks[row.figure](row.value))
        if row.figure in checks and row.value is not None
        else Row(row.figure, row.value, row.unit, row.target, False if row.target else None)
        for row in out
    ]


def bracketed(
    first_run: dict[str, Any] | None, traced: dict[str, Any] | None, again: dict[str, Any]
) -> list[Row]:
    """Run 2t against both untraced runs around it (2, and 2a after it)."""
    traced_rate = None if traced is None else traced.get("images_per_s")
    first = None if first_run is None else first_run.get("images_per_s")
    mean = _mean(first, again.get("images_per_s"))
    cpu = _mean(_system_cpu(first_run), _system_cpu(again))
    return [
        Row("2a. pipeline again after 2t, untraced", again.get("images_per_s"), "img/s"),
        Row("2a. imgpipe's CPU per image, traced / mean", _ratio(_system_cpu(traced), cpu), "x"),
        Row("2a. traced / mean of 2 and 2a", _ratio(traced_rate, mean), "x", ">= 0.95"),
    ]


def host_rows(r: dict[str, Any]) -> list[Row]:
    """Runs 8 and 9 (bench/hosts.py): one host, small photos; a host capped at 8 at once."""
    ms = r["config"]["latency_ms"]
    codec, fast, slow, capped = (
        r.get(k) or {} for k in ("hosts_codec", "hosts_0ms", "hosts_latency", "hosts_capped")
    )
    fast_rate, slow_rate = fast.get("images_per_s"), slow.get("images_per_s")
    capped_rate = capped.get("images_per_s")
    seen = capped.get("origin") or {}
    refused = 100 * seen["refused"] / seen["requests"] if seen.get("requests") else None
    allowed = capped["cap"] / (capped["latency_ms"] / 1000) if capped.get("latency_ms") else None
    return [
        Row("8. codec limit, small photos (0.3 MP)", codec.get("images_per_s"), "img/s"),
        Row("8a. one host, small photos, no latency", fast_rate, "img/s"),
        Row(f"8b. one host, small photos, {ms:g} ms latency", slow_rate, "img/s"),
        Row(f"8b. {ms:g} ms / no latency", _ratio(slow_rate, fast_rate), "x", ">= 0.90"),
        Row(f"8b. downloads at once at the {ms:g} ms host, peak", _peak(slow), ""),
        Row(f"9. host serving 8 at once (429 beyond), {ms:g} ms", capped_rate, "img/s"),
        Row("9. capped host / what 8 at once allow", _ratio(capped_rate, allowed), "x"),
        Row(
            "9. the same, steady 10-90%",
            _ratio(capped.get("steady_images_per_s"), allowed),
            "x",
        ),
        Row("9. refused requests, share", refused, "%", "< 15"),
        Row("9. requests at once at the capped host, peak", _peak(capped), ""),
    ]


def _peak(run: dict[str, Any]) -> float | None:
    peak = (run.get("origin") or {}).get("peak")
    return None if peak is None else float(peak)


def table(table_rows: list[Row]) -> str:
    header = ("figure", "value", "target", "")
    cells = [header, *(row.cells() for row in table_rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(4)).rstrip() for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cpu_table(cpu: dict[str, dict[str, float]], items: int) -> str:
    """CPU per process group during a run; `items` images or rows give the cost of each."""
    lines = [f"    {'process':<20}{'CPU %':>7}{'CPU s':>8}{'ms/item':>9}{'peak RSS MB':>13}"]
    for name, c in sorted(cpu.items(), key=lambda kv: (kv[0][0] == "(", -kv[1]["cpu_percent"])):
        pct, seconds, rss = c["cpu_percent"], c["cpu_seconds"], c["peak_rss_mb"]
        each = "" if name[0] == "(" else f"{1000 * seconds / items:.2f}"
        rss_text = "" if name[0] == "(" else f"{rss:.0f}"
        lines.append(f"    {name:<20}{pct:>7.1f}{seconds:>8.1f}{each:>9}{rss_text:>13}")
    return "\n".join(lines)


def write(directory: Path, results: dict[str, Any], table_rows: list[Row]) -> None:
    results["table"] = [
        {"figure": r.figure, "value": r.value, "unit": r.unit, "target": r.target, "pass": r.ok}
        for r in table_rows
    ]
    (directory / "results.json").write_text(json.dumps(results, indent=1, default=str))
    text = table(table_rows) + "\n"
    runs = (
        ("pipeline", "images"),
        ("pipeline_traced", "images"),
        ("pipeline_again", "images"),
        ("pipeline_latency", "images"),
        ("pipeline_s3", "images"),
        ("hosts_0ms", "images"),
        ("hosts_latency", "images"),
        ("hosts_capped", "images"),
    )
    for key, count in (*runs, ("ingest", "rows")):
        if run := results.get(key):
            text += f"\nCPU during {key}:\n{cpu_table(run['cpu'], run[count])}\n"
    (directory / "table.txt").write_text(text)
    chart(directory / "chart.png", results)


def chart(path: Path, results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    longest = 0.0
    ms = results["config"]["latency_ms"]
    for key, label in (
        ("pipeline", "pipeline, no latency"),
        ("pipeline_latency", f"pipeline, {ms:g} ms origin latency"),
        ("pipeline_s3", "pipeline, s3 backend (local moto)"),
    ):
        run = results.get(key)
        if run and run.get("timeline"):
            ts, done = zip(*run["timeline"], strict=True)
            ax.plot(ts, done, label=f"{label} ({run['images_per_s']:.1f} img/s)")
            longest = max(longest, ts[-1])
    codec = results.get("codec")
    if codec and longest:
        rate = codec["images_per_s"]
        ax.plot(
            [0, longest], [0, rate * longest], "k--", lw=1, label=f"codec limit ({rate:.1f} img/s)"
        )
        ax.set_ylim(0, max(results["config"]["images"], results["config"]["latency_images"]) * 1.05)
    ax.set_xlabel("seconds since upload started")
    ax.set_ylabel("images with an outcome")
    ax.set_title("imgpipe throughput (from GET /status polls)")
    ax.grid(alpha=0.3)
    if longest:
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
