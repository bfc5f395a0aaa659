"""A process pool for Pillow work, replaced when a worker dies (a decoder crash or the OOM
killer would otherwise leave every later job failing with BrokenProcessPool)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial

from imgpipe_processor.errors import ProcessorError
from imgpipe_processor.transform import Recompressed, configure_worker, recompress
from imgpipe_runtime import tracing
from imgpipe_runtime.lifecycle import die_with_parent


class WorkerCrashed(ProcessorError):
    """A pool worker died while handling the job; the job may be retried."""


def start_worker(parent_pid: int, max_pixels: int, nice: int) -> None:
    """Pool initializer: die with the processor, step back in CPU priority, then configure
    Pillow.

    The niceness: image work takes whatever CPU is left, but the event loops on the same
    cores (this processor's, which feeds the pool; status answering polls; the database)
    get a core as soon as they need one, instead of waiting out a codec's time slice.

    Without this, a SIGKILLed processor leaves its workers running, and with them
    multiprocessing's resource tracker: it exits by itself only once the processor and every
    worker have closed their end of its pipe. SIGKILL, because a worker has nothing to save:
    its job, unacknowledged, goes back to the queue.
    """
    die_with_parent(signal.SIGKILL, parent_pid)
    os.nice(nice)
    configure_worker(max_pixels)


def _timed(job: partial[Recompressed]) -> tuple[Recompressed, int, int]:
    """`job` in a worker, with when it began and ended there (wall clock, nanoseconds: the
    same clock as the processor's on this machine)."""
    began = time.time_ns()
    result = job()
    return result, began, time.time_ns()


def _pid_after(seconds: float) -> int:
    """A warm-up job: long enough that one worker cannot take a whole round."""
    time.sleep(seconds)
    return os.getpid()


class ImagePool:
    def __init__(self, workers: int, max_pixels: int, quality: int, nice: int = 0) -> None:
        self._workers = workers
        self._nice = nice
        self._max_pixels = max_pixels
        self._quality = quality
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        # spawn, not fork: forking a process that runs an event loop and AMQP threads is unsafe.
        # The parent-death signal follows the thread that starts a worker. With spawn, Python
        # 3.11 starts workers lazily in submit(), which run_in_executor calls on the event
        # loop's thread, the main thread, alive as long as the process. The executor's manager
        # thread starts some only under max_tasks_per_child (unused here), and it joins them
        # before it ends.
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=start_worker,
            initargs=(os.getpid(), self._max_pixels, self._nice),
        )

    async def warm_up(self, within: float = 60.0) -> None:
        """Start every worker now, not when the first batch arrives: a starting worker
        imports Pillow at full priority (its niceness comes after), which would take the
        cores from the event loops just as a batch begins. Done when each worker has run a
        job (so has finished starting): one round of jobs may all go to the first worker up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        started: set[int] = set()
        while len(started) < self._workers and loop.time() < deadline:
            pids = await asyncio.gather(
                *(
                    loop.run_in_executor(self._executor, _pid_after, 0.05)
                    for _ in range(self._workers)
                )
            )
            started.update(pids)

    async def recompress(self, data: bytes) -> Recompressed:
        loop = asyncio.get_running_loop()
        executor = self._executor
        job = partial(recompress, data, self._max_pixels, self._quality)
        try:
            if not tracing.recording():
                return await loop.run_in_executor(executor, job)
            with tracing.span("recompress", **{"imgpipe.bytes_in": len(data)}):
                submitted = time.time_ns()
                result, began, ended = await loop.run_in_executor(executor, partial(_timed, job))
                tracing.timed_span("wait for a worker", submitted, began)
                tracing.timed_span("recompress in worker", began, ended)
                return result
        except BrokenProcessPool as exc:
            if self._executor is executor:
                self._executor = self._new_executor()
                executor.shutdown(wait=False, cancel_futures=True)
            raise WorkerCrashed("an image worker process died") from exc

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
