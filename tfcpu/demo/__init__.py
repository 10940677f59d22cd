"""``tfcpu demo``: the white paper's Figure 1 on your machine, each step measured in one run.

Rows (each measured in a fresh child process, one after the other, same batch size and
timed duration, synthetic data prepared outside the timed region):

1. Keras ``model.predict`` — what most users run first (for a graph file: the frozen graph
   with TensorFlow's default threads);
2. the frozen graph on oneDNN with tuned threads (intra-op = usable physical cores, inter-op = 1):
   the paper's steps 2 and 3 (stock TensorFlow leaves oneDNN off on CPUs without VNNI/BF16/AMX,
   where it still pays for FP32: 1.2x on ResNet-50 on an AVX2-only EPYC);
3. the optimised graph (`tfcpu.GraphOptimizer.default()`);
4. the optimised graph as several pinned instances;
5. INT8 (optimised, then quantised by Intel Neural Compressor, synthetic calibration);
6. INT8 as several pinned instances;

plus BF16 where the CPU accelerates it, and an ITEX row (the optimised graph under Intel
Extension for TensorFlow's OpenMP pool) when ITEX is installed. A row that fails is reported as failed with its
reason; the others still run.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfcpu._io import atomic_write_text
from tfcpu._render import TextTable, drop_empty_last_column, html_table, rich_table
from tfcpu.errors import ConfigError, TfcpuError

if TYPE_CHECKING:
    from tfcpu.quantize.result import QuantizationResult

__all__ = ["DemoResult", "DemoRow", "default_instances", "run_demo"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

DEFAULT_MODEL = "ResNet50"


@dataclass(frozen=True)
class DemoRow:
    name: str
    description: str
    throughput: float = 0.0
    speedup: float = 0.0
    p99_ms: float = float("nan")
    instances: int = 1
    precision: str = "fp32"
    status: str = "ok"
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DemoResult(TextTable):
    model: str
    rows: tuple[DemoRow, ...]
    batch_size: int
    duration: float
    machine: str
    runtime: dict[str, Any] = field(default_factory=dict)
    date: str = ""
    seconds: float = 0.0
    notes: tuple[str, ...] = ()

    @property
    def best(self) -> DemoRow | None:
        ok = [r for r in self.rows if r.status == "ok" and r.throughput > 0]
        return max(ok, key=lambda r: r.throughput) if ok else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "batch_size": self.batch_size,
            "duration": self.duration,
            "machine": self.machine,
            "runtime": self.runtime,
            "date": self.date,
            "seconds": self.seconds,
            "best": self.best.name if self.best else None,
            "notes": list(self.notes),
            "rows": [r.to_dict() for r in self.rows],
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def _table(self) -> tuple[list[str], list[list[str]]]:
        cols = ("step", "img/s", "speedup", "p99 ms/batch", "instances", "note")
        rows: list[tuple[str, ...]] = []
        for r in self.rows:
            if r.status == "ok":
                rows.append(
                    (r.name, f"{r.throughput:.1f}", f"{r.speedup:.2f}x", f"{r.p99_ms:.0f}", str(r.instances), r.note)
                )
            else:
                rows.append((r.name, "-", "-", "-", str(r.instances), f"{r.status}: {r.note}"))
        return drop_empty_last_column(cols, rows)

    def __rich__(self) -> Any:
        cols, rows = self._table()
        title = f"tfcpu demo: {self.model}, batch {self.batch_size} — {self.machine}"
        return rich_table(title, cols, rows)

    def _repr_html_(self) -> str:
        cols, rows = self._table()
        return html_table(f"tfcpu demo: {self.model}, batch {self.batch_size}", cols, rows)

    def plot(self, path: str | Path) -> Path:
        """A bar chart in the style of the white paper's Figure 1."""
        from tfcpu._plot import bars_png

        ok = [r for r in self.rows if r.status == "ok"]
        return bars_png(
            path,
            [r.name for r in ok],
            [r.throughput for r in ok],
            title=f"{self.model} inference, batch {self.batch_size} ({self.machine})",
            ylabel="images per second",
            annotations=[f"{r.throughput:.1f} img/s ({r.speedup:.1f}x)" for r in ok],
        )


def default_instances(usable_cores: int) -> int:
    """The multi-instance rows' layout: about 4 cores per instance (the paper's best for
    ResNet-50), and at least 2 instances when there are 2 cores or more."""
    if usable_cores < 2:
        return 1
    return max(2, usable_cores // 4)


def run_demo(
    model: str = DEFAULT_MODEL,
    *,
    output: str | Path | None = None,
    batch_size: int = 16,
    duration: float = 15.0,
    warmup: int = 3,
    instances: int | None = None,
    calibration_batches: int = 8,
    progress: Progress | None = None,
) -> DemoResult:
    """Measure every step of the white paper on ``model`` (a Keras application name or a
    model path) and return the table; write ``demo.json`` and ``demo.png`` to ``output``."""
    from tfcpu.plan import InstancePlan
    from tfcpu.topology import Topology

    if batch_size < 1 or duration <= 0:
        raise ConfigError("batch_size must be >= 1 and duration > 0")
    if output is not None:  # fail now, not after ten minutes of measuring
        _check_output_dir(Path(output))
    started = time.monotonic()
    topo = Topology.detect()
    n_multi = instances or default_instances(topo.usable_physical_cores)
    bf16 = topo.precisions["bf16"].accelerated
    steps = ["prepare", "baseline", "tuned", "optimise", "optimised", "multi", "quantise", "int8", "int8-multi"]
    if bf16:
        steps += ["bf16"]
    from tfcpu.session.config import ItexSettings, itex_installed

    itex = itex_installed()
    if itex:
        steps += ["itex"]
    total = len(steps)
    notes: list[str] = []

    def tick(i: int, label: str) -> None:
        if progress is not None:
            progress(i, total, label)

    rows: list[DemoRow] = []
    with tempfile.TemporaryDirectory(prefix="tfcpu-demo-") as tmp:
        work = Path(tmp)
        tick(0, "building and freezing the model")
        keras_path, frozen = _prepare(model, work)
        single = InstancePlan.for_topology(topo, instances=1)
        multi = InstancePlan.for_topology(topo, instances=n_multi) if n_multi > 1 else None
        onednn = {"TF_ENABLE_ONEDNN_OPTS": "1"}

        tick(1, "baseline")
        if keras_path is not None:
            rows.append(
                _row(
                    "Keras model.predict",
                    "Keras predict, TensorFlow defaults",
                    lambda: _predict_child(keras_path, batch_size, duration, warmup, work),
                )
            )
        else:
            rows.append(
                _row(
                    "frozen graph, TF defaults",
                    "TensorFlow's default threads",
                    lambda: _measure(frozen, None, batch_size, duration, warmup, {}),
                )
            )
        tick(2, "frozen graph, oneDNN, tuned threads")
        rows.append(
            _row(
                "frozen graph, oneDNN, tuned threads",
                "oneDNN on, intra-op = physical cores, inter-op = 1",
                lambda: _measure(frozen, single, batch_size, duration, warmup, onednn),
            )
        )
        tick(3, "optimising the graph")
        optimised = None
        try:
            from tfcpu.graph.optimizer import GraphOptimizer

            optimised = GraphOptimizer.default().run(frozen).model
        except TfcpuError as exc:
            notes.append(f"graph optimisation failed: {exc.what}")
        tick(4, "optimised graph")
        rows.append(
            _row(
                "optimised graph",
                "GraphOptimizer.default()",
                lambda: _measure(_need(optimised), single, batch_size, duration, warmup, onednn),
            )
        )
        tick(5, "optimised graph, multi-instance")
        rows.append(
            _row(
                "optimised + multi-instance",
                f"{n_multi} pinned instances",
                lambda: _measure(_need(optimised), _need(multi), batch_size, duration, warmup, onednn),
                instances=n_multi,
            )
        )
        tick(6, "quantising to INT8 (synthetic calibration)")
        int8 = None
        try:
            quantised = _quantise(optimised or frozen, calibration_batches, batch_size)
            if quantised.quantized:
                int8 = quantised.model
            else:  # never time the FP32 model under an "INT8" label
                notes.append("INT8 rows skipped: " + "; ".join(quantised.warnings or ("nothing was quantised",)))
        except TfcpuError as exc:
            notes.append(f"INT8 quantisation failed: {exc.what}")
        if not topo.precisions["int8"].accelerated:
            notes.append(topo.precisions["int8"].advice)
        tick(7, "INT8")
        rows.append(
            _row(
                "INT8",
                "Intel Neural Compressor, after optimisation",
                lambda: _measure(_need(int8), single, batch_size, duration, warmup, onednn),
                precision="int8",
            )
        )
        tick(8, "INT8, multi-instance")
        rows.append(
            _row(
                "INT8 + multi-instance",
                f"{n_multi} pinned instances",
                lambda: _measure(_need(int8), _need(multi), batch_size, duration, warmup, onednn),
                instances=n_multi,
                precision="int8",
            )
        )
        if bf16:
            tick(9, "BF16")
            rows.append(
                _row(
                    "BF16 (oneDNN AMP)",
                    "auto mixed precision",
                    lambda: _measure(
                        _need(optimised),
                        single,
                        batch_size,
                        duration,
                        warmup,
                        {
                            **onednn,
                            "TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_LEVEL": "1",
                            "TF_ENABLE_AUTO_MIXED_PRECISION_MKL": "1",
                        },
                    ),
                    precision="bf16",
                )
            )
        if itex:
            tick(total - 1, "ITEX")
            notes.append("ITEX is installed: TensorFlow loads its plug-in in every row; the ITEX row sets its options")
            rows.append(
                _row(
                    "ITEX (optimised graph)",
                    "Intel Extension for TensorFlow, OpenMP pool",
                    lambda: _measure(
                        _need(optimised), single, batch_size, duration, warmup, {**onednn, **ItexSettings().env()}
                    ),
                )
            )
        tick(total, "done")

    base = rows[0].throughput if rows and rows[0].status == "ok" else 0.0
    rows = [
        DemoRow(**{**r.to_dict(), "speedup": (r.throughput / base if base > 0 and r.status == "ok" else 0.0)})
        for r in rows
    ]
    result = DemoResult(
        model=model,
        rows=tuple(rows),
        batch_size=batch_size,
        duration=duration,
        machine=topo.summary(),
        runtime=_runtime(),
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        seconds=time.monotonic() - started,
        notes=tuple(notes),
    )
    if output is not None:
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "demo.json", result.to_json(indent=2) + "\n")
        try:
            result.plot(out / "demo.png")
        except TfcpuError as exc:
            log.warning("no chart: %s", exc)
    return result


def _check_output_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(
            "the demo's output is not a directory",
            where=str(out),
            why="demo.json and demo.png are written inside it",
            hint="pass a directory (new or existing) with --output",
        )
    parent = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if not os.access(parent, os.W_OK):
        raise ConfigError(
            "the demo's output directory cannot be written",
            where=str(out),
            why=f"{parent} is not writable by this user",
            hint="pass a writable directory with --output",
        )


def _need(value: Any) -> Any:
    if value is None:
        raise _Skip("an earlier step failed")
    return value


class _Skip(Exception):
    pass


def _row(
    name: str,
    description: str,
    measure: Callable[[], tuple[float, float]],
    *,
    instances: int = 1,
    precision: str = "fp32",
) -> DemoRow:
    try:
        throughput, p99 = measure()
    except _Skip as exc:
        return DemoRow(name, description, instances=instances, precision=precision, status="skipped", note=str(exc))
    except TfcpuError as exc:
        log.warning("demo row %r failed: %s", name, exc)
        return DemoRow(name, description, instances=instances, precision=precision, status="failed", note=exc.what)
    return DemoRow(name, description, throughput, 0.0, p99, instances, precision)


def _prepare(model: str, work: Path) -> tuple[Path | None, Any]:
    """Return (saved .keras path or None, frozen tfcpu Model)."""
    from tfcpu.graph.load import load

    if Path(model).exists():
        return (Path(model) if model.endswith(".keras") else None), load(model)
    from tfcpu.graph.load import resolve_application

    keras_model = resolve_application(model)
    path = work / "model.keras"
    keras_model.save(path)
    return path, load(keras_model)


def _predict_child(path: Path, batch: int, duration: float, warmup: int, work: Path) -> tuple[float, float]:
    from tfcpu.errors import RunnerError

    out = work / "predict.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KMP_", "OMP_", "TF_NUM_"))}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run(
        [sys.executable, "-m", "tfcpu.demo._predict", str(path), str(batch), str(duration), str(warmup), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=duration * 10 + 600,
    )
    if proc.returncode != 0 or not out.exists():
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise RunnerError("Keras predict baseline failed", why=tail or f"exit code {proc.returncode}")
    data = json.loads(out.read_text())
    return float(data["throughput"]), float(data["latency_ms"]["p99"])


def _measure(
    model: Any, plan: Any, batch: int, duration: float, warmup: int, env: dict[str, str]
) -> tuple[float, float]:
    from tfcpu.errors import RunnerError
    from tfcpu.runtime.multi import run_instances

    threads = None
    if plan is None:  # TensorFlow's defaults: 0 threads means "let TensorFlow decide"
        from tfcpu.plan import InstancePlan
        from tfcpu.topology import Topology

        plan, threads = InstancePlan.for_topology(Topology.detect(), instances=1), (0, 0)
    res = run_instances(model, plan, batch_size=batch, warmup=warmup, duration=duration, env=env, threads=threads)
    if res.partial:
        failed = res.failed[0]
        raise RunnerError(
            f"instance {failed.index} {failed.status}", why=failed.error, hint=" | ".join(failed.log_tail[-3:])
        )
    p99 = max(i.benchmark.latency_ms.p99 for i in res.instances if i.benchmark)
    return res.throughput, p99


def _quantise(model: Any, batches: int, batch_size: int) -> QuantizationResult:
    from tfcpu.quantize import Quantizer

    quantizer = Quantizer().int8().calibrate("synthetic", batches=batches).optimize(False)
    # The demo knows its calibration is synthetic, says the CPU's INT8 advice in its notes and
    # times INT8 in fresh oneDNN children: the quantizer's warnings about those would only be noise.
    qlog = logging.getLogger("tfcpu.quantize.quantizer")
    level = qlog.level
    qlog.setLevel(logging.ERROR)
    try:
        return quantizer.run(model)
    finally:
        qlog.setLevel(level)


def _runtime() -> dict[str, Any]:
    try:
        from tfcpu.session.runtime import runtime_info

        return runtime_info().to_dict()
    except TfcpuError:
        return {}
