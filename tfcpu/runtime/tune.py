"""Find the best instance layout by measuring it (the paper's "map your performance").

For each cores-per-instance value (1, 2, 4, ... up to all usable cores), each batch size
and optionally oneDNN on/off, run the model as that many pinned instances at once and
record the common-window throughput and the p99 batch latency. The best row is the highest
throughput, or the highest throughput whose p99 stays under a latency budget.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfcpu._render import TextTable, html_table, rich_table
from tfcpu.errors import ConfigError
from tfcpu.graph.model import Model
from tfcpu.runtime.backends._base import BenchmarkOptions
from tfcpu.runtime.multi import InstanceSettings, run_instances

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.topology import Topology

__all__ = ["TuneResult", "TuneRow", "core_counts", "tune"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneRow:
    cores_per_instance: int
    instances: int
    batch_size: int
    onednn: bool | None
    throughput: float
    p99_ms: float
    partial: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TuneRow:
        return cls(
            cores_per_instance=int(data["cores_per_instance"]),
            instances=int(data["instances"]),
            batch_size=int(data["batch_size"]),
            onednn=data.get("onednn"),
            throughput=float(data["throughput"]),
            p99_ms=float(data["p99_ms"]),
            partial=bool(data["partial"]),
        )


@dataclass(frozen=True)
class TuneResult(TextTable):
    rows: tuple[TuneRow, ...]
    best: TuneRow | None
    latency_budget_ms: float | None
    model: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "latency_budget_ms": self.latency_budget_ms,
            "best": self.best.to_dict() if self.best else None,
            "rows": [r.to_dict() for r in self.rows],
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TuneResult:
        best = data.get("best")
        return cls(
            rows=tuple(TuneRow.from_dict(r) for r in data["rows"]),
            best=TuneRow.from_dict(best) if best else None,
            latency_budget_ms=data.get("latency_budget_ms"),
            model=str(data["model"]),
        )

    @classmethod
    def from_json(cls, text: str) -> TuneResult:
        return cls.from_dict(json.loads(text))

    def table_rows(self) -> list[tuple[str, ...]]:
        out: list[tuple[str, ...]] = []
        for r in self.rows:
            mark = "best" if r == self.best else ""
            onednn = "default" if r.onednn is None else ("on" if r.onednn else "off")
            out.append(
                (
                    str(r.cores_per_instance),
                    str(r.instances),
                    str(r.batch_size),
                    onednn,
                    f"{r.throughput:.2f}",
                    f"{r.p99_ms:.1f}",
                    mark,
                )
            )
        return out

    _COLUMNS = ("cores/instance", "instances", "batch", "oneDNN", "items/s", "p99 ms", "")

    def __rich__(self) -> Any:
        return rich_table(f"Layout sweep: {self.model}", self._COLUMNS, self.table_rows())

    def _repr_html_(self) -> str:
        return html_table(f"Layout sweep: {self.model}", self._COLUMNS, self.table_rows())

    def plot(self, path: str | Path) -> Path:
        """Save throughput vs cores per instance (the paper's Figure 9) as a PNG."""
        from tfcpu._plot import bar_or_line_png

        series: dict[str, list[tuple[float, float]]] = {}
        for r in self.rows:
            onednn = "" if r.onednn is None else (", oneDNN on" if r.onednn else ", oneDNN off")
            series.setdefault(f"batch {r.batch_size}{onednn}", []).append((r.cores_per_instance, r.throughput))
        return bar_or_line_png(
            path,
            series,
            title=f"Throughput vs cores per instance ({self.model})",
            xlabel="cores per instance",
            ylabel="items/s (all instances)",
        )


def core_counts(total: int) -> list[int]:
    """1, 2, 4, ... up to ``total``, plus ``total`` itself."""
    out = []
    k = 1
    while k < total:
        out.append(k)
        k *= 2
    out.append(total)
    return out


def tune(
    model: Model,
    *,
    topology: Topology | None = None,
    cores_per_instance: Sequence[int] | None = None,
    batch_sizes: Sequence[int] | None = None,
    onednn: Sequence[bool | None] = (None,),
    steps: int | None = None,
    duration: float | None = 10.0,
    warmup: int = 3,
    latency_budget_ms: float | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    options: BenchmarkOptions | None = None,
    settings: InstanceSettings | None = None,
) -> TuneResult:
    """Measure every layout and pick the best (see module docstring).

    Args:
        model: the model to run.
        topology: the machine (default: detected).
        cores_per_instance: the values to try (default 1, 2, 4, ... all usable cores).
        batch_sizes: the batch sizes to try (default: ``options.batch_size``, or 32).
        onednn: oneDNN settings to try (None = the policy's decision for the model).
        steps: timed batches per layout (instead of ``duration``), when ``options`` is not given.
        duration: timed seconds per layout, when ``options`` is not given.
        warmup: untimed batches, when ``options`` is not given.
        latency_budget_ms: best = the fastest layout whose p99 stays under this.
        progress: callback ``(done, total, label)``.
        options: how to time each layout (the CLI's BenchmarkOptions); overrides steps/duration/warmup.
        settings: how the children start (backend, environment); ``onednn`` is set per row.
    """
    from tfcpu.plan import InstancePlan
    from tfcpu.topology import Topology

    topo = topology or Topology.detect()
    counts = list(cores_per_instance or core_counts(topo.usable_physical_cores))
    if not counts or any(k < 1 for k in counts):
        raise ConfigError("cores_per_instance values must be >= 1")
    if options is None:
        options = BenchmarkOptions(warmup=warmup, steps=steps, duration=None if steps is not None else duration)
    sizes = list(batch_sizes or (options.batch_size if options is not None else 32,))
    base = settings or InstanceSettings()
    combos = [(k, b, o) for k in counts for b in sizes for o in onednn]
    rows = []
    for n, (k, bs, on) in enumerate(combos):
        label = f"{k} cores/instance, batch {bs}"
        if progress is not None:
            progress(n, len(combos), label)
        plan = InstancePlan.for_topology(topo, cores_per_instance=k)
        res = run_instances(
            model,
            plan,
            replace(options, batch_size=bs),
            settings=replace(base, onednn=base.onednn if on is None else on),
        )
        p99 = max((i.benchmark.latency_ms.p99 for i in res.instances if i.benchmark), default=float("nan"))
        rows.append(TuneRow(k, len(plan.instances), bs, on, res.throughput, p99, res.partial))
        log.info("%s: %.2f items/s", label, res.throughput)
    if progress is not None:
        progress(len(combos), len(combos), "done")
    eligible = [r for r in rows if not r.partial and r.throughput > 0]
    if latency_budget_ms is not None:
        eligible = [r for r in eligible if r.p99_ms <= latency_budget_ms]
    best = max(eligible, key=lambda r: r.throughput) if eligible else None
    return TuneResult(tuple(rows), best, latency_budget_ms, model.source)
