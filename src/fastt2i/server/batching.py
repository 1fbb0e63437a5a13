"""`MicroBatcher`: requests that arrive together with the same settings run as one forward, on one compute thread.

A request is a job: a batch key (None = runs alone), its rows (e.g. (prompt, seed) pairs) and a function that
maps a list of rows to one result per row. The event loop accepts jobs into a bounded queue (`QueueFull` past
`max_queue`); a single worker takes the oldest job, waits up to `window_s` for more jobs with the same key, and hands
their rows, concatenated up to `max_batch`, to the function on a single worker thread, so torch runs one job at a
time, whichever request asked. A batch that fails is retried job by job, so one bad request cannot fail the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterator, Sequence

RunRows = Callable[[list[Any]], Sequence[Any]]


class QueueFull(Exception):
    """The bounded queue is full: answer 503 with Retry-After."""


@dataclass
class BatchInfo:
    """What a job's batch looked like: its rows (all jobs together), jobs, and seconds spent waiting and computing."""

    rows: int = 0
    jobs: int = 0
    queued_s: float = 0.0
    compute_s: float = 0.0


@dataclass
class _Job:
    key: Hashable | None
    rows: list[Any]
    run: RunRows
    future: asyncio.Future
    arrived: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Collects jobs into batches and runs them one batch at a time on a dedicated thread.

    Args:
        window_s: how long the oldest job waits for others with its key (0 = take only what is already queued).
        max_batch: most rows per batch (a single job with more rows still runs, alone).
        max_queue: most jobs accepted and not yet finished (queued or running).
    """

    def __init__(self, window_s: float = 0.004, max_batch: int = 16, max_queue: int = 64):
        self.window_s, self.max_batch, self.max_queue = float(window_s), int(max_batch), int(max_queue)
        self._pending: deque[_Job] = deque()
        self._inflight = 0
        self._arrival: asyncio.Event | None = None
        self._released: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.stats = {"batches": 0, "jobs": 0, "rows": 0, "rejected": 0, "max_rows": 0}

    # ------------------------------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the worker on the running event loop."""
        if self._task is not None:
            return
        self._arrival, self._released = asyncio.Event(), asyncio.Event()
        self._released.set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastt2i-compute")
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._work())

    async def stop(self) -> None:
        """Stop the worker; jobs still queued are cancelled."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        while self._pending:
            job = self._pending.popleft()
            if not job.future.done():
                job.future.cancel()
        self._executor.shutdown(wait=True)
        self._executor = None

    @property
    def inflight(self) -> int:
        """Jobs accepted and not yet finished (queued or running)."""
        return self._inflight

    def pause(self) -> None:
        """Keep accepting jobs but start none until `resume` (for tests and maintenance); safe from any thread."""
        self._call(self._released.clear)

    def resume(self) -> None:
        """Start jobs again after `pause`; safe from any thread."""
        self._call(self._released.set)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """`pause` for the duration of the block."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def _call(self, fn: Callable[[], None]) -> None:
        """Run fn on the worker's event loop (directly when already there) and wait until it ran."""
        if self._loop is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is self._loop:
            fn()
            return
        done: Future = Future()

        def call() -> None:
            try:
                fn()
                done.set_result(None)
            except BaseException as e:  # noqa: BLE001 - handed to the calling thread
                done.set_exception(e)

        self._loop.call_soon_threadsafe(call)
        done.result(timeout=30)

    # ------------------------------------------------------------------------------------------------ submitting
    async def submit(self, key: Hashable | None, rows: Sequence[Any], run: RunRows) -> tuple[list[Any], BatchInfo]:
        """Queue a job and wait for (its results, one per row, and the `BatchInfo` of the batch it ran in).

        Args:
            key: jobs with equal keys (not None) may share a forward; they must share the meaning of `run`.
            rows: the job's rows.
            run: rows -> results, one per row (called on the compute thread with the rows of the whole batch).
        Raises:
            QueueFull: `max_queue` jobs are already waiting or running.
        """
        if self._task is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        if self._inflight >= self.max_queue:
            self.stats["rejected"] += 1
            raise QueueFull(f"server busy: {self._inflight} requests in progress (limit {self.max_queue})")
        job = _Job(key, list(rows), run, asyncio.get_running_loop().create_future())
        self._inflight += 1
        self._pending.append(job)
        self._arrival.set()
        try:
            return await asyncio.shield(job.future)
        finally:
            if not job.future.done():  # the client went away: the job is dropped if it has not started
                with contextlib.suppress(ValueError):
                    self._pending.remove(job)
                    self._inflight -= 1
                job.future.cancel()

    # ------------------------------------------------------------------------------------------------ worker
    def _rows_for(self, key: Hashable) -> int:
        return sum(len(j.rows) for j in self._pending if j.key == key)

    def _take_batch(self) -> list[_Job]:
        first = self._pending.popleft()
        batch, rows = [first], len(first.rows)
        if first.key is None:
            return batch
        rest = deque()
        while self._pending:
            job = self._pending.popleft()
            if job.key == first.key and rows + len(job.rows) <= self.max_batch:
                batch.append(job)
                rows += len(job.rows)
            else:
                rest.append(job)
        self._pending.extendleft(reversed(rest))
        return batch

    async def _wait_for_company(self, first: _Job) -> None:
        """Wait until the window since `first` arrived is over or its key has `max_batch` rows queued."""
        if first.key is None or self.max_batch <= 1 or self.window_s <= 0:
            return
        while True:
            left = first.arrived + self.window_s - time.perf_counter()
            if left <= 0 or self._rows_for(first.key) >= self.max_batch:
                return
            self._arrival.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrival.wait(), timeout=left)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._released.wait()
            if not self._pending:
                self._arrival.clear()
                await self._arrival.wait()
                continue
            await self._wait_for_company(self._pending[0])
            await self._released.wait()
            if not self._pending:
                continue
            batch = self._take_batch()
            start = time.perf_counter()
            try:
                outcomes = await loop.run_in_executor(self._executor, _run_batch, batch)
            except BaseException as e:  # noqa: BLE001 - cancelled while computing: fail the batch, then stop
                outcomes = [e] * len(batch)
                if isinstance(e, asyncio.CancelledError):
                    self._finish(batch, outcomes, start, start)
                    raise
            self._finish(batch, outcomes, start, time.perf_counter())

    def _finish(self, batch: list[_Job], outcomes: list[Any], start: float, end: float) -> None:
        rows = sum(len(j.rows) for j in batch)
        self.stats["batches"] += 1
        self.stats["jobs"] += len(batch)
        self.stats["rows"] += rows
        self.stats["max_rows"] = max(self.stats["max_rows"], rows)
        for job, out in zip(batch, outcomes):
            self._inflight -= 1
            if job.future.done():
                continue
            if isinstance(out, BaseException):
                job.future.set_exception(out)
            else:
                job.future.set_result((out, BatchInfo(rows, len(batch), start - job.arrived, end - start)))


def _run_batch(batch: list[_Job]) -> list[Any]:
    """On the compute thread: every job's results (a list per job) or its exception; a failed batch is retried alone."""
    rows = [r for job in batch for r in job.rows]
    try:
        results = list(batch[0].run(rows))
        if len(results) != len(rows):
            raise RuntimeError(f"a batch function returned {len(results)} results for {len(rows)} rows")
    except Exception as e:  # noqa: BLE001 - handed to the waiting request(s)
        if len(batch) == 1:
            return [e]
        return [_run_batch([job])[0] for job in batch]
    out, i = [], 0
    for job in batch:
        out.append(results[i: i + len(job.rows)])
        i += len(job.rows)
    return out
