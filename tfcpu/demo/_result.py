"""The demo's rows and result: frozen, serialisable, rendered; and the pure logic of speedups and noise.

Every row carries the throughput of each third of its timed region (``rounds``) and their
relative spread; a row whose range of rounds overlaps the previous measured row's range is
marked ``within_noise``: the difference between the two says nothing on this machine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tfcpu._codec import Serializable
from tfcpu._render import TextTable, drop_empty_last_column, html_table, rich_table
from tfcpu.runtime.stats import relative_spread

__all__ = ["DemoResult", "DemoRow", "mark_noise", "unit_of", "with_speedups"]


@dataclass(frozen=True)
class DemoRow(Serializable):
    """One measured step.

    Attributes:
        name: the row's label (its precision part is read from the timed graph's ops).
        description: what the step does.
        throughput: items (images, sequences) per second over the whole timed region.
        speedup: throughput / the first row's throughput.
        p99_ms: the worst instance's 99th-percentile batch latency.
        instances: how many pinned processes ran it.
        precision: what the timed graph computes in, read from its ops (fp32, int8, bf16).
        status: ``ok``, ``skipped`` or ``failed``.
        note: why it was skipped or failed, or what the graph holds.
        rounds: throughput of each third of the timed region.
        within_noise: the difference from the previous measured row is within the noise.
        kernels: what ran, from the dispatch probe of the row's graph at its batch size
            (`tfcpu.runtime.dispatch.DispatchReport.brief`); empty when not probed.
    """

    name: str
    description: str
    throughput: float = 0.0
    speedup: float = 0.0
    p99_ms: float = float("nan")
    instances: int = 1
    precision: str = "fp32"
    status: str = "ok"
    note: str = ""
    rounds: tuple[float, ...] = ()
    within_noise: bool = False
    kernels: str = ""

    _extra_fields = ("spread",)

    @property
    def spread(self) -> float:
        """(max - min) / median of `rounds` (NaN when fewer than two)."""
        return relative_spread(self.rounds)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def with_speedups(rows: tuple[DemoRow, ...]) -> tuple[DemoRow, ...]:
    """Each row's speedup over the first row of the same run (0 when either was not measured)."""
    base = rows[0].throughput if rows and rows[0].ok else 0.0
    return tuple(replace(r, speedup=r.throughput / base if base > 0 and r.ok else 0.0) for r in rows)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return bool(a) and bool(b) and min(a) <= max(b) and min(b) <= max(a)


def mark_noise(rows: tuple[DemoRow, ...]) -> tuple[DemoRow, ...]:
    """Mark each measured row whose rounds' range overlaps the previous measured row's range."""
    out = []
    previous: DemoRow | None = None
    for row in rows:
        if not row.ok:
            out.append(row)
            continue
        noisy = previous is not None and _overlap(row.rounds, previous.rounds)
        out.append(replace(row, within_noise=noisy))
        previous = row
    return tuple(out)


_UNIT_WORDS = {"img/s": "images per second", "seq/s": "sequences per second", "items/s": "items per second"}


def unit_of(inputs: Sequence[Any]) -> str:
    """What one batch item of a model with these inputs (`tfcpu.graph.model.TensorSpec`) is:
    ``"img/s"`` when a float input has rank 4 (NHWC/NCHW images), ``"seq/s"`` when an integer
    input has rank 2 (token ids: batch x sequence), else ``"items/s"``."""
    for spec in inputs:
        rank = None if spec.shape is None else len(spec.shape)
        if spec.dtype.startswith(("float", "bfloat", "half")) and rank == 4:
            return "img/s"
    for spec in inputs:
        rank = None if spec.shape is None else len(spec.shape)
        if spec.dtype.startswith(("int", "uint")) and rank == 2:
            return "seq/s"
    return "items/s"


def _spread_text(row: DemoRow) -> str:
    return "-" if math.isnan(row.spread) else f"±{row.spread * 50:.0f}%"


@dataclass(frozen=True)
class DemoResult(Serializable, TextTable):
    """The demo's table, its machine, and what it wrote.

    Attributes:
        model: what was measured.
        rows: the steps, in order.
        batch_size: the batch size of every row.
        duration: timed seconds per row.
        machine: the CPU summary.
        runtime: the TensorFlow runtime of the demo's process.
        date: when it ran (UTC).
        seconds: the demo's wall time.
        notes: everything the reader should know (skipped rows, a chart that was not drawn, ...).
        files: the files the demo wrote into its output directory.
        unit: what a throughput counts, per second: ``"img/s"`` (an image model), ``"seq/s"`` (token
            sequences: a transformer) or ``"items/s"``; see `unit_of()`.
    """

    model: str
    rows: tuple[DemoRow, ...]
    batch_size: int
    duration: float
    machine: str
    runtime: dict[str, Any] = field(default_factory=dict)
    date: str = ""
    seconds: float = 0.0
    notes: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    unit: str = "img/s"

    @property
    def best(self) -> DemoRow | None:
        ok = [r for r in self.rows if r.ok and r.throughput > 0]
        return max(ok, key=lambda r: r.throughput) if ok else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data; ``best`` is the best row's name (`from_dict` ignores it)."""
        return {**super().to_dict(), "best": self.best.name if self.best else None}

    def _table(self) -> tuple[list[str], list[list[str]]]:
        cols = ("step", self.unit, "spread", "speedup", "p99 ms/batch", "instances", "kernels", "note")
        rows: list[tuple[str, ...]] = []
        for r in self.rows:
            if r.ok:
                note = "; ".join(
                    n for n in (r.note, "within the noise of the row above" if r.within_noise else "") if n
                )
                rows.append(
                    (
                        r.name,
                        f"{r.throughput:.1f}",
                        _spread_text(r),
                        f"{r.speedup:.2f}x",
                        f"{r.p99_ms:.0f}",
                        str(r.instances),
                        r.kernels or "-",
                        note,
                    )
                )
            else:
                rows.append((r.name, "-", "-", "-", "-", str(r.instances), "-", f"{r.status}: {r.note}"))
        return drop_empty_last_column(cols, rows)

    def __rich__(self) -> Any:
        cols, rows = self._table()
        title = f"tfcpu demo: {self.model}, batch {self.batch_size} — {self.machine}"
        return rich_table(title, cols, rows, spill=("kernels", "note"))

    def _repr_html_(self) -> str:
        cols, rows = self._table()
        return html_table(f"tfcpu demo: {self.model}, batch {self.batch_size}", cols, rows)

    def plot(self, path: str | Path) -> Path:
        """A bar chart in the style of the white paper's Figure 1."""
        from tfcpu._plot import bars_png

        ok = [r for r in self.rows if r.ok]
        return bars_png(
            path,
            [r.name for r in ok],
            [r.throughput for r in ok],
            title=f"{self.model} inference, batch {self.batch_size} ({self.machine})",
            ylabel=_UNIT_WORDS.get(self.unit, self.unit),
            annotations=[f"{r.throughput:.1f} {self.unit} ({r.speedup:.1f}x)" for r in ok],
        )
