"""The compose profile `tracing` as Compose resolves it (`docker compose config`, which needs
no engine; the Jaeger image cannot be pulled on these machines, so it is not started here)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import compose
import yaml

from tests.conftest import REPO

COMPOSE = Path(compose.__file__).parent / "docker-compose"
SERVICES = ("ingest", "processor", "status", "notifier")


def resolved(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [str(COMPOSE), "--project-directory", str(REPO), *args, "config", "--format", "yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_the_tracing_profile_runs_jaeger_and_points_every_service_at_it() -> None:
    files = ["-f", str(REPO / "docker-compose.yml"), "-f", str(REPO / "docker-compose.tracing.yml")]
    config = resolved(*files, "--profile", "tracing")
    jaeger = config["services"]["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/jaeger:2.")
    assert any(p["target"] == 16686 for p in jaeger["ports"])
    for service in SERVICES:
        env = config["services"][service]["environment"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318", service
        assert env["OTEL_TRACES_SAMPLER"] == "parentbased_always_on"
        # Tracing is an aid: a service never waits for (or fails without) its backend.
        assert "jaeger" not in (config["services"][service].get("depends_on") or {})


def test_without_the_profile_there_is_no_jaeger_and_no_tracing() -> None:
    config = resolved("-f", str(REPO / "docker-compose.yml"))
    assert "jaeger" not in config["services"]
    for service in SERVICES:
        env = config["services"][service]["environment"]
        assert not any(name.startswith("OTEL_") for name in env), service
