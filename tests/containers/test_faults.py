"""Crashes and stops mid-request, done to the containers as they happen in production: the
main process of a container killed by SIGKILL (a crash, so `restart: unless-stopped` brings it
back; `docker kill` would count as a manual stop), and `docker stop` (SIGTERM, then SIGKILL
after the container's stop_grace_period). Nothing may be lost or done twice."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import aiohttp

from tests.containers.checks import assert_exact_result, images_csv, upload, wait_for
from tests.containers.stack import Stack
from tests.containers.stack import wait_for as wait_until

ROWS, PER_ROW = 150, 2  # 300 images
THIRD = ROWS * PER_ROW // 3
GRACE = 30  # docker-compose.yml: the processor's stop_grace_period


async def crash_mid_request(
    http: aiohttp.ClientSession, stack: Stack, service: str, image_set: str
) -> None:
    request_id = await upload(http, stack, images_csv(image_set, ROWS, PER_ROW))
    progress = (await wait_for(http, stack, request_id, outcomes=THIRD))["progress"]
    assert progress["processed"] < progress["total"], "the request ended before the crash"
    victim = stack.containers(service)[0]
    restarts = stack.inspect(victim)["RestartCount"]
    os.kill(stack.host_pid(victim), signal.SIGKILL)

    await assert_exact_result(http, stack, request_id, ROWS, PER_ROW)
    wait_until(
        lambda: stack.inspect(victim)["RestartCount"] == restarts + 1,
        30,
        f"{service} restarted by its restart policy",
    )
    await asyncio.to_thread(stack.wait_healthy)


async def test_a_processor_killed_mid_request_is_restarted_and_nothing_is_lost_or_repeated(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    await crash_mid_request(http, stack, "processor", "kill-processor")


async def test_the_status_service_killed_mid_request_completes_it_and_calls_back_once(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    await crash_mid_request(http, stack, "status", "kill-status")


async def test_a_processor_stopped_mid_request_drains_within_its_grace_period(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    request_id = await upload(http, stack, images_csv("stop", ROWS, PER_ROW))
    progress = (await wait_for(http, stack, request_id, outcomes=THIRD))["progress"]
    assert progress["processed"] < progress["total"], "the request ended before the stop"
    victim = stack.containers("processor")[-1]
    assert stack.inspect(victim)["Config"]["StopTimeout"] == GRACE

    started = time.monotonic()
    await asyncio.to_thread(stack.docker_stop, victim)
    took = time.monotonic() - started
    state = stack.inspect(victim)["State"]
    # Exit status 0 within the grace period: it drained and exited by itself (a SIGKILL at the
    # end of the grace period would give 137).
    assert (state["ExitCode"], state["OOMKilled"]) == (0, False), state
    assert took < GRACE, f"stopping took {took:.1f}s"

    await assert_exact_result(http, stack, request_id, ROWS, PER_ROW)
    await asyncio.to_thread(stack.up, "--scale", "processor=3")
