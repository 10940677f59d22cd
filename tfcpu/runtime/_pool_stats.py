"""`PoolStats`: what a `tfcpu.Pool` has done, per instance and in total (frozen, renders, round-trips JSON)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tfcpu._codec import Serializable
from tfcpu._render import TextTable, html_table, rich_table
from tfcpu.runtime.stats import LatencyStats

__all__ = ["InstanceStats", "PoolStats"]


@dataclass(frozen=True)
class InstanceStats(Serializable):
    """One worker of a pool.

    Attributes:
        index: the instance's index in the plan.
        cpus: the CPUs it is pinned to.
        pid: its current process id (0 when it is not running).
        state: ``"ready"``, ``"restarting"``, ``"failed"`` or ``"closed"``.
        restarts: how many times it was started again after dying.
        batches: batches answered.
        items: items (first-dimension rows) in those batches.
        failed: batches that failed on it (a model error, or it died with them in flight).
        in_flight: batches sent to it and not answered yet, when the stats were taken.
        latency_ms: submit-to-result time per batch (queueing and transport included).
        compute_ms: time inside the backend per batch, measured in the worker.
    """

    index: int
    cpus: tuple[int, ...]
    pid: int
    state: str
    restarts: int
    batches: int
    items: int
    failed: int
    in_flight: int
    latency_ms: LatencyStats
    compute_ms: LatencyStats


@dataclass(frozen=True)
class PoolStats(Serializable, TextTable):
    """A pool's work so far: per instance, and in total.

    Attributes:
        model: the model's source.
        backend: the backend every worker runs.
        method: how the workers are pinned (numactl, numactl-cpubind, taskset, sched_setaffinity).
        instances: one `InstanceStats` per worker.
        queued: batches submitted and not yet sent to a worker (the queue depth).
        seconds: time since the pool was ready.
        latency_ms: submit-to-result time per batch over every instance.
    """

    model: str
    backend: str
    method: str
    instances: tuple[InstanceStats, ...]
    queued: int
    seconds: float
    latency_ms: LatencyStats = field(default_factory=lambda: LatencyStats.from_seconds(()))

    _extra_fields = ("batches", "items", "failed", "restarts")

    @property
    def batches(self) -> int:
        return sum(i.batches for i in self.instances)

    @property
    def items(self) -> int:
        return sum(i.items for i in self.instances)

    @property
    def failed(self) -> int:
        return sum(i.failed for i in self.instances)

    @property
    def restarts(self) -> int:
        return sum(i.restarts for i in self.instances)

    @property
    def in_flight(self) -> int:
        return sum(i.in_flight for i in self.instances)

    @property
    def throughput(self) -> float:
        """Items per second since the pool was ready (idle time included)."""
        return self.items / self.seconds if self.seconds > 0 else math.nan

    # -- rendering ----------------------------------------------------------------------
    _COLUMNS = ("#", "CPUs", "state", "batches", "items", "failed", "in flight", "p50 ms", "p99 ms", "compute p50 ms")

    @staticmethod
    def _ms(value: float) -> str:
        return "-" if math.isnan(value) else f"{value:.2f}"

    def _cells(self) -> list[tuple[str, ...]]:
        rows: list[tuple[str, ...]] = []
        for i in self.instances:
            state = i.state + (f" ({i.restarts} restart{'s' if i.restarts != 1 else ''})" if i.restarts else "")
            rows.append(
                (
                    str(i.index),
                    ",".join(str(c) for c in i.cpus),
                    state,
                    str(i.batches),
                    str(i.items),
                    str(i.failed),
                    str(i.in_flight),
                    self._ms(i.latency_ms.p50),
                    self._ms(i.latency_ms.p99),
                    self._ms(i.compute_ms.p50),
                )
            )
        lat = self.latency_ms
        rows.append(
            (
                "all",
                "",
                f"{self.queued} queued",
                str(self.batches),
                str(self.items),
                str(self.failed),
                str(self.in_flight),
                self._ms(lat.p50),
                self._ms(lat.p99),
                "",
            )
        )
        return rows

    def _title(self) -> str:
        rate = "" if math.isnan(self.throughput) else f", {self.throughput:.1f} items/s"
        return (
            f"Pool: {self.model} on {len(self.instances)} instance(s), {self.backend}, pinned by {self.method}; "
            f"{self.seconds:.1f} s{rate}"
        )

    def __rich__(self) -> Any:
        return rich_table(self._title(), self._COLUMNS, self._cells())

    def _repr_html_(self) -> str:
        return html_table(self._title(), self._COLUMNS, self._cells())


def latency(values: Sequence[float]) -> LatencyStats:
    """`LatencyStats` of ``values`` in seconds."""
    return LatencyStats.from_seconds(values)
