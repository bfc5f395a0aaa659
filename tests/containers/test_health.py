"""The healthchecks report what a service can do, not only that its process is up: each
service's own check (as docker-compose.yml defines it) fails while what it needs is down."""

from __future__ import annotations

import time

from tests.containers.stack import SERVICES, Stack


def checks_passing(stack: Stack) -> dict[str, bool]:
    """Each service's healthcheck command, run now in its container: did it pass?"""
    passing = {}
    for service in SERVICES:
        container = stack.containers(service)[0]
        test = stack.inspect(container)["Config"]["Healthcheck"]["Test"]
        assert test[0] == "CMD"
        passing[service] = stack.exec(container, *test[1:]).returncode == 0
    return passing


def until_checks(stack: Stack, expected: dict[str, bool], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while (passing := checks_passing(stack)) != expected:
        assert time.monotonic() < deadline, f"healthchecks {passing}, expected {expected}"
        time.sleep(0.5)


def test_healthchecks_fail_while_the_database_or_the_broker_is_down(stack: Stack) -> None:
    until_checks(stack, dict.fromkeys(SERVICES, True), within=0)
    try:
        stack.compose("stop", "mongo")
        # Ingest and status answer requests from the database; processor and notifier do
        # not need it to be healthy.
        until_checks(stack, {"ingest": False, "processor": True, "status": False, "notifier": True})
        stack.compose("stop", "rabbitmq")
        until_checks(stack, dict.fromkeys(SERVICES, False))
    finally:
        stack.compose("start", "mongo", "rabbitmq")
        stack.wait_healthy()
    until_checks(stack, dict.fromkeys(SERVICES, True), within=0)
