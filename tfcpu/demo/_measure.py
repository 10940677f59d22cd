"""How the demo times a row: every row through ``run_instances`` (fresh pinned children, the one timed
loop), the Keras baseline through its own child (``model.predict`` inside `timed_loop()`)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfcpu._stop import run_child
from tfcpu.errors import RunnerError
from tfcpu.runtime.backends._base import BenchmarkOptions

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.graph.model import Model
    from tfcpu.plan import InstancePlan

__all__ = ["Measurement", "graph_precision", "measure", "predict_child"]


@dataclass(frozen=True)
class Measurement:
    """What one row measured: throughput, the worst p99 batch latency, the rounds for the spread, and what
    ran (the first instance's backend ``describe()``)."""

    throughput: float
    p99_ms: float
    rounds: tuple[float, ...] = ()
    ran: dict[str, Any] = field(default_factory=dict)


def graph_precision(model: Model) -> tuple[str, str]:
    """What the graph computes in, read from its ops: ``("int8", "12 quantised ops")`` (``", 44 ops in
    bfloat16"`` added for a BF16 remainder), ``("bf16", ...)``
    or ``("fp32", "")``. A row's precision label is this, never the step's intent."""
    from tfcpu.graph.model import is_quantized_op

    quantised = sum(1 for n in model.graph_def.node if is_quantized_op(n.op))
    bf16 = sum(
        1
        for n in model.graph_def.node
        if any(n.attr[key].type == 14 for key in ("T", "DstT", "dtype") if key in n.attr)
    )
    if quantised:  # an INT8 graph with a BF16 remainder (Quantizer.remainder) says both
        return "int8", f"{quantised} quantised ops" + (f", {bf16} ops in bfloat16" if bf16 else "")
    if bf16:
        return "bf16", f"{bf16} ops in bfloat16"
    return "fp32", ""


def measure(
    model: Model,
    plan: InstancePlan,
    options: BenchmarkOptions,
    *,
    onednn: bool | None,
    env: tuple[tuple[str, str], ...] = (),
    tf_defaults: bool = False,
    backend: str = "tensorflow",
) -> Measurement:
    """Time ``model`` as the plan's instances (strict: a failed instance raises InstanceError, cause first).

    Args:
        model: the graph to time.
        plan: the instances (one for single-process rows).
        options: batch size, warm-up, duration.
        onednn: oneDNN for the children (None: the policy's decision for the graph's ops).
        env: extra environment (ITEX's settings).
        tf_defaults: let TensorFlow choose its threads (the graph baseline).
        backend: the children's runner backend (OpenVINO's for the OpenVINO rows).
    """
    from tfcpu.runtime.multi import InstanceSettings, run_instances

    settings = InstanceSettings(
        backend=backend, onednn=onednn, env=env, threads=(0, 0) if tf_defaults else None, strict=True
    )
    res = run_instances(model, plan, options, settings=settings)
    p99 = max(i.benchmark.latency_ms.p99 for i in res.instances if i.benchmark)
    ran = next((dict(i.benchmark.backend) for i in res.instances if i.benchmark), {})
    return Measurement(res.throughput, p99, res.rounds, ran)


def predict_child(path: Path, options: BenchmarkOptions, work: Path) -> Measurement:
    """Keras ``model.predict`` in a fresh child with TensorFlow's defaults (no tfcpu thread settings)."""
    from tfcpu.session.precision import child_env, decide_onednn

    out = work / "predict.json"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KMP_", "OMP_", "TF_NUM_"))}
    env = child_env(decide_onednn(needs_onednn=False, environ=base), base)
    duration = options.duration or 10.0
    argv = [
        sys.executable,
        "-P",
        "-m",
        "tfcpu.demo._predict",
        str(path),
        str(options.batch_size),
        str(duration),
        str(options.warmup),
        str(out),
    ]
    proc = run_child(argv, env=env, timeout=duration * 10 + 600)  # its own process group, ended however it ends
    if proc.returncode != 0 or not out.exists():
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        cause = next((line for line in reversed(lines) if "Error" in line), lines[-1] if lines else "")
        raise RunnerError("Keras predict baseline failed", why=cause or f"exit code {proc.returncode}")
    data = json.loads(out.read_text())
    return Measurement(
        float(data["throughput"]),
        float(data["latency_ms"]["p99"]),
        tuple(float(v) for v in data.get("rounds", ())),
    )
