"""``run_demo``: walk the demo's steps in one loop, time every row through ``run_instances``, write the files."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfcpu._io import atomic_write_text
from tfcpu._stop import temp_dir
from tfcpu.demo import _openvino as openvino_demo
from tfcpu.demo._measure import Measurement, graph_precision, measure, predict_child
from tfcpu.demo._result import DemoResult, DemoRow, mark_noise, unit_of, with_speedups
from tfcpu.demo._steps import Step, bf16_graph, demo_steps, int8_graph, itex_env, optimised_graph, prepare_models
from tfcpu.errors import ConfigError, TfcpuError
from tfcpu.runtime.backends._base import BenchmarkOptions

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.plan import InstancePlan
    from tfcpu.topology import Topology

__all__ = ["DEFAULT_MODEL", "default_batch_size", "default_instances", "run_demo", "write_outputs"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

DEFAULT_MODEL = "ResNet50"


def default_batch_size(model: str) -> int:
    """The rows' batch size when none is given: 8 for the built-in encoder (8 sequences of 128
    tokens, what transformer benchmarks on CPUs commonly time), 16 otherwise (the paper's ResNet-50)."""
    from tfcpu.graph.encoder import BUILTIN_MODELS

    return 8 if model.removeprefix("keras:") in BUILTIN_MODELS else 16


def default_instances(usable_cores: int) -> int:
    """The multi-instance rows' layout: about 4 cores per instance (the paper's best for
    ResNet-50), and at least 2 instances when there are 2 cores or more."""
    if usable_cores < 2:
        return 1
    return max(2, usable_cores // 4)


class _Skip(Exception):
    pass


@dataclass
class _Run:
    """The state of one demo run: the graphs prepared so far, the plans, the notes."""

    model: str
    options: BenchmarkOptions
    topo: Topology
    work: Path
    n_multi: int
    calibration_batches: int
    itex: bool
    dispatch: bool = True
    keras_path: Path | None = None
    graphs: dict[str, Any] = field(default_factory=dict)
    kernels: dict[tuple[str, bool | None, bool], str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def applies(self, step: Step) -> bool:
        if step.when == "keras":
            return self.keras_path is not None
        if step.when == "graph":
            return self.keras_path is None
        if step.when == "itex":
            return self.itex
        return True

    def graph(self, key: str) -> Any:
        value = self.graphs.get(key)
        if value is None:
            raise _Skip(self.graphs.get(f"{key}:why") or "an earlier step failed")
        return value

    def plan(self, layout: str) -> InstancePlan:
        from tfcpu.plan import InstancePlan

        if layout == "multi":
            if self.n_multi < 2:
                raise _Skip("this machine has one usable core: no multi-instance layout")
            return InstancePlan.for_topology(self.topo, instances=self.n_multi)
        return InstancePlan.for_topology(self.topo, instances=1)


def _prepare(run: _Run, step: Step) -> None:
    """Make the graph ``step.key`` names; a failure leaves it missing, with its reason."""
    try:
        if step.key == "frozen":
            run.keras_path, run.graphs["frozen"] = prepare_models(run.model, run.work)
        elif step.key == "optimised":
            run.graphs["optimised"] = optimised_graph(run.graph("frozen"))
        elif step.key == "int8":
            source = run.graphs.get("optimised") or run.graph("frozen")
            run.graphs["int8"] = int8_graph(source, run.calibration_batches, run.notes)
            if not run.topo.precisions["int8"].accelerated:
                run.notes.append(run.topo.precisions["int8"].advice)
        elif step.key == "bf16":
            run.graphs["bf16"] = bf16_graph(run.graph("optimised"), run.topo)
        elif step.key == openvino_demo.PREPARE:
            source = run.graphs.get("optimised") or run.graph("frozen")
            run.graphs.update(openvino_demo.openvino_models(source, run.topo, run.calibration_batches))
    except _Skip:
        return
    except TfcpuError as exc:
        if step.key == "frozen":
            raise
        why = exc.what if not exc.why else f"{exc.what}: {exc.why}"
        run.graphs[f"{step.key}:why"] = why
        if step.key != "bf16":
            run.notes.append(f"{step.label} failed: {exc.what}")


def _measure(run: _Run, step: Step) -> tuple[Measurement, str]:
    if step.graph == "keras":
        assert run.keras_path is not None
        return predict_child(run.keras_path, run.options, run.work), "fp32"
    model = run.graph(step.graph)
    if step.backend != "tensorflow":  # labelled from what the compiled model ran (describe())
        got = measure(model, run.plan(step.layout), run.options, onednn=None, backend=step.backend)
        return got, str(got.ran.get("precision", "unknown"))
    precision, ops = graph_precision(model)
    if precision != step.precision:  # never time one graph under another precision's label
        raise _Skip(f"the graph holds no {step.precision.upper()} ops ({ops or 'fp32 only'})")
    got = measure(
        model,
        run.plan(step.layout),
        run.options,
        onednn=step.onednn,
        env=itex_env() if step.itex else (),
        tf_defaults=step.layout == "defaults",
    )
    return got, precision


def _row(run: _Run, step: Step) -> DemoRow:
    instances = run.n_multi if step.layout == "multi" else 1
    base = DemoRow(step.name, step.description, instances=instances, precision=step.precision)
    try:
        got, precision = _measure(run, step)
    except _Skip as exc:
        return replace(base, status="skipped", note=str(exc))
    except TfcpuError as exc:
        log.warning("demo row %r failed: %s", step.name, exc)
        return replace(base, status="failed", note=exc.what if not exc.why else f"{exc.what}: {exc.why}")
    note = graph_precision(run.graphs[step.graph])[1] if step.graph in run.graphs else ""
    if step.backend != "tensorflow":
        note = _ran_note(got.ran, step.precision, precision)
    return replace(
        base,
        throughput=got.throughput,
        p99_ms=got.p99_ms,
        precision=precision,
        rounds=got.rounds,
        note=note,
        kernels=_kernels(run, step),
    )


def _ran_note(ran: dict[str, Any], asked: str, precision: str) -> str:
    """What an OpenVINO row's compiled model ran: its layers by precision, streams and threads."""
    layers = ran.get("compute_layers") or {}
    text = ", ".join(f"{count} {key}" for key, count in sorted(layers.items()))
    note = f"{text}; {ran.get('streams', '?')} stream(s), {ran.get('threads', '?')} thread(s)"
    if precision != asked:
        note = f"asked {asked}, ran {precision}: {note}"
    return note


def _kernels(run: _Run, step: Step) -> str:
    """The row's "kernels" cell: one dispatch probe per distinct graph and oneDNN setting, in a child,
    after the row's timed window (never inside it); Keras predict rows and OpenVINO rows (no oneDNN
    verbose log: OpenVINO's own kernels) are not probed."""
    if not run.dispatch or step.graph == "keras" or step.backend != "tensorflow" or step.graph not in run.graphs:
        return ""
    key = (step.graph, step.onednn, step.itex)
    if key not in run.kernels:
        from tfcpu.runtime.dispatch import probe_dispatch

        try:
            env = {**os.environ, **dict(itex_env())} if step.itex else None
            report = probe_dispatch(
                run.graphs[step.graph], batch_size=run.options.batch_size, onednn=step.onednn, env=env
            )
            run.kernels[key] = report.brief()
        except TfcpuError as exc:
            log.warning("dispatch probe of %r failed: %s", step.graph, exc)
            run.kernels[key] = f"probe failed: {exc.what}"
    return run.kernels[key]


def run_demo(
    model: str = DEFAULT_MODEL,
    *,
    output: str | Path | None = None,
    batch_size: int | None = None,
    duration: float = 15.0,
    warmup: int = 3,
    instances: int | None = None,
    calibration_batches: int = 8,
    progress: Progress | None = None,
    dispatch: bool = True,
) -> DemoResult:
    """Measure every step of the white paper on ``model`` and return the table.

    Args:
        model: a Keras application name, ``"encoder"`` (tfcpu's built-in transformer encoder,
            `tfcpu.graph.encoder.build_encoder()`: batch x 128 tokens) or a model path.
        output: a directory for ``demo.json`` and ``demo.png`` (checked before measuring); None writes nothing.
        batch_size: the batch size of every row (default: `default_batch_size()` of the model).
        duration: timed seconds per row.
        warmup: untimed batches per row.
        instances: instances of the multi-instance rows (default: about 4 cores each).
        calibration_batches: synthetic calibration batches for INT8.
        progress: callback ``(done, total, label)``.
        dispatch: fill each graph row's "kernels" cell with a dispatch probe (one child per distinct
            graph, outside the timed windows); False skips the probes.
    """
    from tfcpu.session.config import itex_installed
    from tfcpu.topology import Topology

    if batch_size is None:
        batch_size = default_batch_size(model)
    if batch_size < 1 or duration <= 0:
        raise ConfigError("batch_size must be >= 1 and duration > 0")
    if output is not None:  # fail now, not after ten minutes of measuring
        _check_output_dir(Path(output))
    started = time.monotonic()
    topo = Topology.detect()
    options = BenchmarkOptions(batch_size=batch_size, warmup=warmup, duration=duration)
    n_multi = instances or default_instances(topo.usable_physical_cores)
    rows: list[DemoRow] = []
    with temp_dir("tfcpu-demo-") as tmp:
        run = _Run(model, options, topo, tmp, n_multi, calibration_batches, itex_installed(), dispatch)
        if run.itex:
            run.notes.append(
                "ITEX is installed: TensorFlow loads its plug-in in every row; the ITEX row sets its options"
            )
        steps = [s for s in demo_steps(n_multi) if s.when != "itex" or run.itex]
        total = sum(1 for s in steps if s.when != "graph")  # one of the two baselines runs
        done = 0
        for step in steps:
            if not run.applies(step):
                continue
            if progress is not None:
                progress(done, total, step.label)
            if step.kind == "prepare":
                _prepare(run, step)
            else:
                rows.append(_row(run, step))
            done += 1
        if progress is not None:
            progress(total, total, "done")
    result = DemoResult(
        model=model,
        rows=mark_noise(with_speedups(tuple(rows))),
        batch_size=batch_size,
        duration=duration,
        machine=topo.summary(),
        runtime=_runtime(),
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        seconds=time.monotonic() - started,
        notes=tuple(run.notes),
        unit=unit_of(run.graphs["frozen"].inputs) if "frozen" in run.graphs else "items/s",
    )
    return write_outputs(result, Path(output)) if output is not None else result


def write_outputs(result: DemoResult, out: Path) -> DemoResult:
    """Draw ``demo.png`` and write ``demo.json`` into ``out``; the result names exactly the files written.

    A chart that cannot be drawn (matplotlib missing, ...) is said in ``notes`` and in the JSON,
    and ``files`` holds only ``demo.json``.
    """
    out.mkdir(parents=True, exist_ok=True)
    files = ["demo.json"]
    try:
        result.plot(out / "demo.png")
        files.append("demo.png")
    except TfcpuError as exc:
        log.warning("no chart: %s", exc.what)
        hint = f" ({exc.hint})" if exc.hint else ""
        result = replace(result, notes=(*result.notes, f"no chart: {exc.what}{hint}"))
    result = replace(result, files=tuple(files))
    atomic_write_text(out / "demo.json", result.to_json(indent=2) + "\n")
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


def _runtime() -> dict[str, Any]:
    try:
        from tfcpu.session.runtime import runtime_info

        return runtime_info().to_dict()
    except TfcpuError:
        return {}
