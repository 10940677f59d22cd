"""Dynamic batching across requests: many small requests become few large batches, and back.

A request is a dict of arrays keyed by the model's input tensor names, every array with the same
number of rows (its batch). `Batcher.infer` queues it and waits. One collector task takes the first
queued request as soon as the executor (`tfcpu.Pool` or an in-process Runner) has a free worker (one
batch in flight per worker: ``executor.workers``), then keeps taking requests whose arrays can
be stacked with it (same dtype, same shape after the batch axis) until the batch holds
``max_batch_size`` rows or ``max_delay_ms`` has passed since the first one arrived, concatenates them
along axis 0 and hands the batch over. Forming the batch only when a worker can take it means that
under load everything that queued while the workers were busy leaves in one batch (with several
workers, the requests one worker answered come back while the other computes, and form its next full
batch); at low load a request waits at most ``max_delay_ms`` for company. When the outputs come back
they are cut at the same row boundaries, and each caller gets its own rows.

Backpressure: the queue holds at most ``max_queue`` requests; `infer` raises `QueueFull` at once
beyond that (the server answers 503 with ``Retry-After``), so memory never grows without bound. A
request larger than ``max_batch_size`` runs as a batch of its own. A failed batch fails each of its
requests with the executor's error.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["Batcher", "BatcherStats", "Executor", "QueueFull"]


class Executor(Protocol):
    """What the batcher runs batches on: `tfcpu.Pool`, or `RunnerExecutor` in this process."""

    @property
    def workers(self) -> int:
        """How many batches run at once (the pool's workers)."""

    def submit(self, feeds: Mapping[str, np.ndarray]) -> concurrent.futures.Future[dict[str, np.ndarray]]:
        """Run one batch (arrays by input tensor name); the future holds the outputs by tensor name."""


class QueueFull(Exception):
    """The batcher's queue is full: retry later."""


@dataclass
class _Request:
    feeds: dict[str, np.ndarray]
    rows: int
    key: tuple[Any, ...]
    future: asyncio.Future[dict[str, np.ndarray]]
    arrived: float = field(default_factory=time.perf_counter)


@dataclass
class BatcherStats:
    """Counters the metrics read: requests, batches, rows, the last batch sizes."""

    requests: int = 0
    batches: int = 0
    rows: int = 0
    rejected: int = 0
    failed_batches: int = 0
    in_flight: int = 0


def _stack_key(feeds: Mapping[str, np.ndarray]) -> tuple[Any, ...]:
    return tuple((name, arr.dtype.str, arr.shape[1:]) for name, arr in sorted(feeds.items()))


class Batcher:
    """Merge concurrent requests into batches for an executor (see the module docstring).

    Args:
        executor: runs a batch; ``capacity`` batches at once.
        max_batch_size: rows per batch at most (a larger request runs alone).
        max_delay_ms: how long the first request of a batch waits for others.
        max_queue: requests waiting at most; more raise `QueueFull`.
        on_batch: called with ``(rows, seconds)`` after each batch (metrics).
    """

    def __init__(
        self,
        executor: Executor,
        *,
        max_batch_size: int = 32,
        max_delay_ms: float = 5.0,
        max_queue: int = 256,
        on_batch: Any = None,
    ) -> None:
        if max_batch_size < 1 or max_queue < 1 or not (0 <= max_delay_ms < 60_000):
            raise ValueError("max_batch_size and max_queue must be >= 1, max_delay_ms in [0, 60000)")
        self.executor = executor
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay_ms / 1000.0
        self.max_queue = max_queue
        self.stats = BatcherStats()
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Request] | None = None
        self._task: asyncio.Task[None] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._held: _Request | None = None

    @property
    def depth(self) -> int:
        """Requests waiting to be batched."""
        return (self._queue.qsize() if self._queue is not None else 0) + (1 if self._held is not None else 0)

    def start(self) -> None:
        """Start the collector on the running event loop (the server's lifespan calls it)."""
        if self._task is None:
            self._queue = asyncio.Queue()
            self._slots = asyncio.Semaphore(max(1, int(self.executor.workers)))
            self._task = asyncio.get_running_loop().create_task(self._collect(), name="tfcpu-batcher")

    async def stop(self) -> None:
        """Let what is queued and in flight finish, then stop the collector."""
        if self._task is None:
            return
        while self.depth:
            await asyncio.sleep(0.005)
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Queue one request (arrays by input tensor name, equal batch sizes) and wait for its rows.

        Raises:
            QueueFull: ``max_queue`` requests are already waiting.
            Exception: what the executor raised for the batch this request was in.
        """
        if self._queue is None:
            self.start()
        assert self._queue is not None
        if self.depth >= self.max_queue:
            self.stats.rejected += 1
            raise QueueFull(f"{self.depth} requests queued (max_queue={self.max_queue})")
        arrays = {name: np.asarray(value) for name, value in feeds.items()}
        rows = {arr.shape[0] if arr.ndim else 1 for arr in arrays.values()}
        if len(rows) != 1:
            raise ValueError(f"the inputs have different batch sizes: {sorted(rows)}")
        future: asyncio.Future[dict[str, np.ndarray]] = asyncio.get_running_loop().create_future()
        self.stats.requests += 1
        self._queue.put_nowait(_Request(arrays, rows.pop(), _stack_key(arrays), future))
        return await future

    async def _next(self, timeout: float | None) -> _Request | None:
        assert self._queue is not None
        if self._held is not None:
            held, self._held = self._held, None
            return held
        if timeout is None:
            return await self._queue.get()
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    async def _collect(self) -> None:
        assert self._slots is not None
        while True:
            # A batch is formed only once an executor slot is free: what queued while every worker
            # was busy joins it, so batches grow with the load instead of leaving in fragments.
            await self._slots.acquire()
            first = await self._next(None)
            assert first is not None
            batch, rows = [first], first.rows
            deadline = first.arrived + self.max_delay
            while rows < self.max_batch_size:
                left = deadline - time.perf_counter()
                nxt = await self._next(max(left, 0.0)) if left > 0 else self._take_ready()
                if nxt is None:
                    break
                if nxt.key != first.key or rows + nxt.rows > self.max_batch_size:
                    self._held = nxt  # starts the next batch
                    break
                batch.append(nxt)
                rows += nxt.rows
            task = asyncio.get_running_loop().create_task(self._run(batch, rows))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    def _take_ready(self) -> _Request | None:
        assert self._queue is not None
        if self._held is not None:
            held, self._held = self._held, None
            return held
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    async def _run(self, batch: list[_Request], rows: int) -> None:
        assert self._slots is not None
        self.stats.in_flight += 1
        start = time.perf_counter()
        try:
            names = list(batch[0].feeds)
            feeds = {n: np.concatenate([r.feeds[n] for r in batch]) if len(batch) > 1 else batch[0].feeds[n]
                     for n in names}  # fmt: skip
            outputs = await asyncio.wrap_future(self.executor.submit(feeds))
        except Exception as exc:  # noqa: BLE001 - every caller of the batch gets the executor's error
            self.stats.failed_batches += 1
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        finally:
            self.stats.in_flight -= 1
            self._slots.release()
        self.stats.batches += 1
        self.stats.rows += rows
        if self._on_batch is not None:
            self._on_batch(rows, time.perf_counter() - start)
        offset = 0
        for request in batch:
            part = {
                # an output without a batch axis (a scalar, a table) goes to every caller whole
                name: value[offset : offset + request.rows] if np.ndim(value) and len(value) == rows else value
                for name, value in outputs.items()
            }
            offset += request.rows
            if not request.future.done():
                request.future.set_result(part)
