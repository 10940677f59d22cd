"""Frozen, serialisable results of benchmarks and multi-instance runs."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from tfcpu._codec import CODEC, SKIP, Serializable
from tfcpu._render import TextTable, html_table, rich_table
from tfcpu.runtime.stats import LatencyStats, relative_spread

__all__ = ["BenchmarkResult", "InstanceResult", "MultiInstanceResult"]


@dataclass(frozen=True)
class BenchmarkResult(Serializable, TextTable):
    """One timed run of one model in one process (Appendix B's semantics).

    ``throughput`` = items / wall time of the timed region; data is prepared outside it.
    ``first_run_ms`` is the very first batch (graph setup, oneDNN primitive creation),
    reported separately and excluded from the statistics, like the warm-up batches.
    """

    model: str
    batch_size: int
    warmup: int
    steps: int
    items: int
    seconds: float
    throughput: float
    latency_ms: LatencyStats
    first_run_ms: float
    mode: str = "throughput"
    config: dict[str, Any] = field(default_factory=dict)
    topology: str = ""
    runtime: dict[str, Any] = field(default_factory=dict)
    started_at: float = 0.0
    name: str = ""
    backend: dict[str, Any] = field(default_factory=dict)
    rounds: tuple[float, ...] = ()
    contention: dict[str, Any] = field(default_factory=dict)

    @property
    def suspect(self) -> bool:
        """Whether other work on the machine was busy enough to move this figure (`tfcpu.runtime.contention`)."""
        return bool(self.contention.get("suspect"))

    @property
    def spread(self) -> float:
        """Relative spread, (max - min) / median, of the throughput of the timed region's thirds."""
        return relative_spread(self.rounds)

    # CSV: one header row and one value row; nested dicts are stored as JSON strings.
    def to_csv(self) -> str:
        flat = self._flat()
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(flat), lineterminator="\n")
        writer.writeheader()
        writer.writerow(flat)
        return buf.getvalue()

    def _flat(self) -> dict[str, Any]:
        data = self.to_dict()
        flat: dict[str, Any] = {}
        for key, value in data.items():
            if key == "latency_ms":
                for k, v in value.items():
                    flat[f"latency_ms.{k}"] = v
            elif isinstance(value, (dict, list)):
                flat[key] = json.dumps(value, sort_keys=True)
            else:
                flat[key] = value
        return flat

    @classmethod
    def from_csv(cls, text: str) -> BenchmarkResult:
        row = next(csv.DictReader(io.StringIO(text)))
        types = {f.name: f.type for f in fields(cls)}
        data: dict[str, Any] = {"latency_ms": {}}
        for key, raw in row.items():
            if key.startswith("latency_ms."):
                data["latency_ms"][key.split(".", 1)[1]] = float(raw)
            elif types.get(key) in ("dict[str, Any]", "tuple[float, ...]"):
                data[key] = json.loads(raw)
            elif types.get(key) == "int":
                data[key] = int(raw)
            elif types.get(key) == "float":
                data[key] = float(raw)
            else:
                data[key] = raw
        return cls.from_dict(data)

    def rows(self) -> list[tuple[str, str]]:
        lat = self.latency_ms
        return [
            ("model", self.model),
            ("mode", f"{self.mode}, batch size {self.batch_size}"),
            ("throughput", f"{self.throughput:.2f} items/s"),
            ("timed region", f"{self.steps} batches, {self.items} items in {self.seconds:.3f} s"),
            (
                "latency per batch (ms)",
                f"mean {lat.mean:.2f}  min {lat.min:.2f}  p50 {lat.p50:.2f}  p90 {lat.p90:.2f}  "
                f"p99 {lat.p99:.2f}  max {lat.max:.2f}",
            ),
            ("first run", f"{self.first_run_ms:.1f} ms (excluded), {self.warmup} warm-up batches"),
            ("spread", _spread(self.rounds)),
            *([("machine", str(self.contention.get("note", "")))] if self.contention else []),
            ("threads", _threads(self.config)),
            ("CPU", self.topology),
            ("TensorFlow", _runtime(self.runtime)),
            *([("backend", _backend(self.backend))] if self.backend.get("backend") not in (None, "tensorflow") else []),
        ]

    def __rich__(self) -> Any:
        return rich_table(f"Benchmark {self.name}".strip(), ("", ""), self.rows())

    def _repr_html_(self) -> str:
        return html_table(f"Benchmark {self.name}".strip(), ("", ""), self.rows())


def _spread(rounds: tuple[float, ...]) -> str:
    if len(rounds) < 2:
        return "not measured (too few batches)"
    return (
        f"{min(rounds):.2f}-{max(rounds):.2f} items/s over {len(rounds)} thirds of the timed region "
        f"(±{relative_spread(rounds) * 50:.1f}%)"
    )


def _backend(backend: dict[str, Any]) -> str:
    rest = ", ".join(f"{k} {v}" for k, v in backend.items() if k != "backend")
    return f"{backend.get('backend')}: {rest}" if rest else str(backend.get("backend"))


def _threads(config: dict[str, Any]) -> str:
    if not config:
        return "TensorFlow defaults"
    return f"intra-op {config.get('intra_op_threads', '?')}, inter-op {config.get('inter_op_threads', '?')}"


def _runtime(runtime: dict[str, Any]) -> str:
    if not runtime:
        return "unknown"
    onednn = "oneDNN on" if runtime.get("onednn_enabled") else "oneDNN off"
    return f"{runtime.get('tf_version', '?')}, {onednn}, {runtime.get('threading', '?')} threads"


@dataclass(frozen=True)
class InstanceResult(Serializable):
    """What one child instance did: its status, its benchmark, its log tail."""

    index: int
    cpus: tuple[int, ...]
    status: str  # "ok", "failed", "timeout", "interrupted"
    exit_code: int | None = None
    signal: str | None = None
    benchmark: BenchmarkResult | None = None
    window_items: int = 0
    log_tail: tuple[str, ...] = ()
    error: str = ""
    items_processed: int = 0
    started: float = math.nan  # CLOCK_MONOTONIC seconds of the first timed batch
    ended: float = math.nan  # ... of the end of the last timed batch
    affinity: tuple[int, ...] = ()  # the CPUs the child actually ran on (read inside it)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class MultiInstanceResult(Serializable, TextTable):
    """Aggregate of a multi-instance run.

    Two throughputs, both honest:

    * ``sum_throughput`` — the sum of each instance's own throughput, as the white paper
      adds up the lines of ``nohup.out``;
    * ``window_throughput`` — items finished by all instances inside the *common* window
      (from the last instance's start to the first instance's end) divided by its length,
      so instances that ran at different times are not added up as if concurrent;
    * ``wall_throughput`` — all items / (last end − first start).
    """

    instances: tuple[InstanceResult, ...]
    method: str
    sum_throughput: float
    window_throughput: float
    window_seconds: float
    wall_throughput: float
    wall_seconds: float
    items: int
    batch_size: int
    model: str = ""
    outputs: dict[str, Any] | None = field(default=None, compare=False, repr=False, metadata={CODEC: SKIP})
    contention: dict[str, Any] = field(default_factory=dict)

    _extra_fields = ("partial", "throughput", "rounds")

    @property
    def suspect(self) -> bool:
        """Whether other work on the machine was busy enough to move this figure (`tfcpu.runtime.contention`)."""
        return bool(self.contention.get("suspect"))

    @property
    def partial(self) -> bool:
        """True when at least one instance failed; the numbers cover the others."""
        return any(not i.ok for i in self.instances)

    @property
    def failed(self) -> tuple[InstanceResult, ...]:
        return tuple(i for i in self.instances if not i.ok)

    @property
    def throughput(self) -> float:
        """The headline number: the common-window throughput (falls back to the sum)."""
        return self.window_throughput if self.window_throughput > 0 else self.sum_throughput

    @property
    def rounds(self) -> tuple[float, ...]:
        """Per third of the timed region, the sum of the instances' throughputs (for the spread)."""
        per = [i.benchmark.rounds for i in self.instances if i.ok and i.benchmark is not None]
        n = min((len(r) for r in per), default=0)
        return tuple(sum(r[k] for r in per) for k in range(n))

    @property
    def spread(self) -> float:
        """Relative spread, (max - min) / median, of `rounds`."""
        return relative_spread(self.rounds)

    def without_outputs(self) -> MultiInstanceResult:
        return replace(self, outputs=None)

    def rows(self) -> list[tuple[str, ...]]:
        rows: list[tuple[str, ...]] = []
        for inst in self.instances:
            bench = inst.benchmark
            if bench is not None:
                perf = f"{bench.throughput:.2f}"
                p99 = f"{bench.latency_ms.p99:.1f}"
            else:
                perf = p99 = "-"
            status = inst.status
            if inst.signal:
                status += f" ({inst.signal})"
            elif inst.exit_code not in (None, 0):
                status += f" (exit {inst.exit_code})"
            from tfcpu.topology.cpulist import format_cpulist

            rows.append((str(inst.index), format_cpulist(inst.cpus), status, perf, p99))
        rows.append(("sum", "", "partial" if self.partial else "ok", f"{self.sum_throughput:.2f}", ""))
        rows.append(("common window", f"{self.window_seconds:.2f} s", "", f"{self.window_throughput:.2f}", ""))
        rows.append(("all items / wall", f"{self.wall_seconds:.2f} s", "", f"{self.wall_throughput:.2f}", ""))
        if self.contention:
            rows.append(("machine", str(self.contention.get("note", "")), "", "", ""))
        return rows

    _COLUMNS = ("instance", "CPUs", "status", "items/s", "p99 ms")

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        table = rich_table(f"{len(self.instances)} instances ({self.method})", self._COLUMNS, self.rows())
        notes = [
            Text(f"instance {i.index} {i.status}: {i.error}\n  " + "\n  ".join(i.log_tail[-5:]), style="red")
            for i in self.failed
        ]
        return Group(table, *notes)

    def _repr_html_(self) -> str:
        return html_table(f"{len(self.instances)} instances ({self.method})", self._COLUMNS, self.rows())
