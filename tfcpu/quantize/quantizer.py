"""``Quantizer``: an immutable plan for post-training quantisation, run by `Quantizer.run()`.

::

    result = (
        tfcpu.Quantizer()
        .int8(per_channel=True)
        .calibrate(images, batches=10)        # real data: shapes checked before INC starts
        .evaluate(accuracy)                   # fn(Model) -> float, higher is better
        .tolerance(relative_loss=0.01)        # keep nodes in FP32 until within 1 %
        .run(model)
    )

What ``run`` does, in order:

1. checks the calibration batches against the model's inputs (ConfigError before INC starts);
2. optimises the graph with ``GraphOptimizer.default()`` (unless ``.optimize(False)``) — on
   Keras 3 graphs this folds the decomposed batch norms so INC can fuse Conv+BiasAdd+Relu
   chains instead of leaving every batch norm in FP32 between Dequantize/Quantize pairs;
3. refuses politely (a warning, ``result.quantized`` False, the FP32 model returned unchanged)
   when the graph has no Conv/MatMul for INC to quantise;
4. runs INC 3.x static quantisation; with an evaluation, measures FP32 and INT8 and keeps
   nodes in FP32 one at a time (the classifier first, then the stem, then inwards) until the
   relative loss is within the tolerance or the trials run out;
5. compares FP32 and INT8 outputs on the calibration data (top-1 agreement, max abs diff).

**oneDNN.** INT8 graphs from INC use oneDNN kernels. Stock TensorFlow turns oneDNN on by itself
only on CPUs with VNNI/BF16/AMX; elsewhere (e.g. AVX2-only CPUs) it must be started with
``TF_ENABLE_ONEDNN_OPTS=1``. If TensorFlow has not started yet, ``run`` sets that variable
(logged); if it already started without oneDNN, the graph is still quantised but cannot be
executed in this process, so the evaluation and the agreement check are refused/skipped.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from tfcpu.errors import ConfigError, QuantizationError
from tfcpu.graph.model import Model, is_quantized_op
from tfcpu.quantize.calibration import Calibration, batch_size_of, describe_source, materialise
from tfcpu.quantize.result import COMPUTE_OPS, QuantizationResult, Trial, op_table
from tfcpu.topology import Topology

__all__ = ["Quantizer"]

log = logging.getLogger(__name__)

_ALGORITHMS = ("minmax", "kl")
SYNTHETIC_WARNING = "calibrated on synthetic data: fine for speed tests, accuracy numbers are meaningless"
SLOW_INT8_WARNING = (
    "this CPU has no VNNI or AMX: INT8 gains are smaller and model-dependent here; measure before deploying it"
)


@dataclass(frozen=True)
class Quantizer:
    """An immutable quantisation plan. Every method returns a new Quantizer.

    Args:
        topology: the machine to plan for (default: ``Topology.detect()`` when needed);
            inject a captured one in tests.
    """

    precision: str = "int8"
    per_channel: bool = True
    symmetric: bool = True
    algorithm: str = "minmax"
    smooth_quant_alpha: float | None = None
    calibration: Any = field(default=None, compare=False)
    calibration_batches: int = 10
    calibration_batch_size: int | None = None
    evaluator: Callable[[Model], float] | None = field(default=None, compare=False)
    relative_loss: float = 0.01
    max_trials: int = 5
    optimize_first: bool = True
    topology: Topology | None = field(default=None, compare=False)

    # -- precision ------------------------------------------------------------------------
    def int8(self, per_channel: bool = True, symmetric: bool = True, algorithm: str = "minmax") -> Quantizer:
        """Static post-training INT8 through Intel Neural Compressor 3.x.

        Args:
            per_channel: one weight scale per output channel (more accurate) or per tensor.
            symmetric: symmetric ranges for weights and activations.
            algorithm: activation range calibration: ``"minmax"`` or ``"kl"`` (KL divergence).
        """
        if algorithm not in _ALGORITHMS:
            from tfcpu.errors import did_you_mean

            raise ConfigError(
                f"unknown calibration algorithm {algorithm!r}",
                where="Quantizer.int8",
                hint=did_you_mean(algorithm, _ALGORITHMS) or f"use one of {list(_ALGORITHMS)}",
            )
        return replace(
            self, precision="int8", per_channel=bool(per_channel), symmetric=bool(symmetric), algorithm=algorithm
        )

    def smooth_quant(self, alpha: float = 0.5) -> Quantizer:
        """Add SmoothQuant before INT8 (moves activation outliers into weights; MatMul-heavy models)."""
        if not isinstance(alpha, int | float) or not 0.0 <= float(alpha) <= 1.0:
            raise ConfigError(f"smooth_quant alpha must be in [0, 1], got {alpha!r}", where="Quantizer.smooth_quant")
        return replace(self, precision="int8", smooth_quant_alpha=float(alpha))

    def bf16(self) -> Quantizer:
        """BF16 through oneDNN auto mixed precision — only where the CPU has AVX512_BF16 or AMX.

        Without them BF16 is emulated and slower than FP32 (measured 15 vs 25 img/s on a
        ResNet-50), so the plan is refused with a ConfigError.
        """
        topo = self.topology or Topology.detect()
        if not topo.precisions["bf16"].accelerated:
            raise ConfigError(
                "BF16 is not accelerated on this CPU",
                where=topo.model_name or "this machine",
                why="it has neither AVX512_BF16 nor AMX_BF16; BF16 would be emulated and slower than FP32",
                hint="use .int8() (or stay in FP32) on this machine",
            )
        return replace(self, precision="bf16", topology=topo)

    # -- data and accuracy ------------------------------------------------------------------
    def calibrate(self, data: Any, batches: int = 10, batch_size: int | None = None) -> Quantizer:
        """Calibration data: a numpy array (or dict of arrays), a sequence/iterator of batches,
        a ``tf.data.Dataset``, a callable returning batches, or ``"synthetic"``.

        Args:
            batches: at most this many batches are used.
            batch_size: how an array is cut into batches (default 32; 8 for synthetic data).

        Shapes and dtypes are checked against the model's inputs when `run()` starts,
        before INC does anything.
        """
        if data is None:
            raise ConfigError("calibration data is None", where="Quantizer.calibrate", hint='pass data or "synthetic"')
        if isinstance(data, str) and data != "synthetic":
            raise ConfigError(
                f"unknown calibration source {data!r}",
                where="Quantizer.calibrate",
                hint='pass "synthetic", or load the file first (numpy.load) and pass the array',
            )
        if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
            raise ConfigError(f"batches must be an integer >= 1, got {batches!r}", where="Quantizer.calibrate")
        bad_size = isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        if batch_size is not None and bad_size:
            raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}", where="Quantizer.calibrate")
        return replace(self, calibration=data, calibration_batches=batches, calibration_batch_size=batch_size)

    def evaluate(self, fn: Callable[[Model], float]) -> Quantizer:
        """``fn(model) -> float``: a metric where higher is better (e.g. accuracy on held-out data)."""
        if not callable(fn):
            raise ConfigError(
                f"evaluate needs a callable fn(Model) -> float, got {type(fn).__name__}", where="Quantizer.evaluate"
            )
        return replace(self, evaluator=fn)

    def tolerance(self, relative_loss: float = 0.01, max_trials: int = 5) -> Quantizer:
        """Accept INT8 when (FP32 − INT8) / |FP32| ≤ ``relative_loss``; otherwise keep up to
        ``max_trials - 1`` nodes in FP32, one more per trial. Needs `evaluate()`."""
        if not isinstance(relative_loss, int | float) or not 0.0 <= float(relative_loss) < 1.0:
            raise ConfigError(
                f"relative_loss must be in [0, 1), got {relative_loss!r}",
                where="Quantizer.tolerance",
                hint="0.01 means at most 1 % relative loss",
            )
        if isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1:
            raise ConfigError(f"max_trials must be an integer >= 1, got {max_trials!r}", where="Quantizer.tolerance")
        return replace(self, relative_loss=float(relative_loss), max_trials=max_trials)

    def optimize(self, enabled: bool = True) -> Quantizer:
        """Run ``GraphOptimizer.default()`` before quantising (default True)."""
        return replace(self, optimize_first=bool(enabled))

    # -- description ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "per_channel": self.per_channel,
            "symmetric": self.symmetric,
            "algorithm": self.algorithm,
            "smooth_quant_alpha": self.smooth_quant_alpha,
            "calibration": None if self.calibration is None else describe_source(self.calibration),
            "calibration_batches": self.calibration_batches,
            "calibration_batch_size": self.calibration_batch_size,
            "evaluate": self.evaluator is not None,
            "relative_loss": self.relative_loss,
            "max_trials": self.max_trials,
            "optimize": self.optimize_first,
        }

    def explain(self) -> str:
        d = self.to_dict()
        return "\n".join(f"{k}: {v}" for k, v in d.items())

    # -- running ------------------------------------------------------------------------
    def run(self, model: Model, *, seed: int = 0) -> QuantizationResult:
        """Quantise ``model`` (never modified) and return a `QuantizationResult`."""
        if not isinstance(model, Model):
            raise ConfigError(
                f"Quantizer.run needs a tfcpu Model, got {type(model).__name__}", hint="load it with tfcpu.load(...)"
            )
        if self.calibration is None and self.precision == "int8":
            raise ConfigError(
                "no calibration data",
                where="Quantizer.run",
                hint='call .calibrate(data) first (or .calibrate("synthetic") for speed tests only)',
            )
        start = time.perf_counter()
        warnings: list[str] = []
        topo = self.topology or Topology.detect()
        fast = bool(topo.precisions["int8"].accelerated)

        batches: list[dict[str, Any]] = []
        calibration = None
        if self.calibration is not None:
            batches = materialise(
                model,
                self.calibration,
                batches=self.calibration_batches,
                batch_size=self.calibration_batch_size,
                seed=seed,
            )
            synthetic = isinstance(self.calibration, str)
            calibration = Calibration(
                source=describe_source(self.calibration),
                batches=len(batches),
                batch_size=batch_size_of(batches),
                samples=sum(batch_size_of([b]) for b in batches),
                synthetic=synthetic,
            )
            if synthetic:
                _warn(warnings, SYNTHETIC_WARNING)

        onednn = _ensure_onednn(topo)
        common: dict[str, Any] = {"calibration": calibration, "onednn_enabled": onednn, "fast_int8_hardware": fast}

        if self.precision == "bf16":
            return self._run_bf16(model, warnings, common, start)

        if not any(node.op in COMPUTE_OPS for node in model.graph_def.node):
            _warn(
                warnings,
                f"nothing to quantise in {model.source}: it has no Conv/MatMul op "
                f"({', '.join(COMPUTE_OPS[:4])} ...); the FP32 model is returned unchanged",
            )
            return QuantizationResult(
                model=model,
                quantized=False,
                precision="fp32",
                warnings=tuple(warnings),
                seconds=round(time.perf_counter() - start, 3),
                **common,
            )
        if not fast:
            _warn(warnings, SLOW_INT8_WARNING)
        if not onednn:
            msg = (
                "oneDNN is off in this TensorFlow process, so INT8 graphs cannot run here "
                "(start Python with TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow is imported)"
            )
            if self.evaluator is not None:
                raise QuantizationError(
                    "cannot evaluate the INT8 model in this process",
                    why=msg,
                    hint="set TF_ENABLE_ONEDNN_OPTS=1 before importing TensorFlow, or use `tfcpu quantize`",
                )
            _warn(warnings, msg + "; the agreement check is skipped")

        fp32 = model
        if self.optimize_first:
            from tfcpu.graph.optimizer import GraphOptimizer

            fp32 = GraphOptimizer.default().run(model).model

        from tfcpu.quantize._inc import inc_version

        fp32_metric = self._evaluate(fp32, "FP32") if self.evaluator is not None else None
        trials: list[Trial] = []
        candidates = _fallback_order(fp32)
        best: tuple[Model, Trial] | None = None
        for attempt in range(self.max_trials if self.evaluator is not None else 1):
            kept = tuple(candidates[:attempt])
            if attempt and len(kept) < attempt:
                break  # every candidate is already FP32
            qmodel = self._quantize(fp32, batches, kept)
            metric = self._evaluate(qmodel, "INT8") if self.evaluator is not None else None
            accepted = metric is None or fp32_metric is None or _within(fp32_metric, metric, self.relative_loss)
            trial = Trial(kept, metric, accepted)
            trials.append(trial)
            log.info("INT8 trial %d: %d node(s) in FP32, metric %s", attempt + 1, len(kept), metric)
            if best is None or (metric is not None and best[1].metric is not None and metric > best[1].metric):
                best = (qmodel, trial)
            if accepted:
                best = (qmodel, trial)
                break
        assert best is not None
        qmodel, chosen = best
        if not chosen.accepted:
            _warn(
                warnings,
                f"INT8 stayed outside the tolerance ({self.relative_loss:.2%}) after {len(trials)} trial(s); "
                f"returning the best attempt — consider more calibration data, .int8(algorithm='kl') or FP32",
            )

        table = op_table(fp32.graph_def, qmodel.graph_def)
        int8_ops = _int8_ops(qmodel.graph_def)
        if not int8_ops:
            _warn(warnings, f"INC quantised nothing in {model.source}; the FP32 model is returned unchanged")
            return QuantizationResult(
                model=model,
                quantized=False,
                precision="fp32",
                op_types=table,
                optimized=self.optimize_first,
                inc_version=inc_version(),
                trials=tuple(trials),
                warnings=tuple(warnings),
                seconds=round(time.perf_counter() - start, 3),
                **common,
            )
        top1 = max_abs = None
        if onednn and batches:
            top1, max_abs = _agreement(fp32, qmodel, batches)
        return QuantizationResult(
            model=qmodel,
            quantized=True,
            precision="int8",
            op_types=table,
            quantized_ops=int8_ops,
            kept_fp32_nodes=chosen.fp32_nodes,
            fp32_metric=fp32_metric,
            int8_metric=chosen.metric,
            tolerance=self.relative_loss if self.evaluator is not None else None,
            top1_agreement=top1,
            max_abs_diff=max_abs,
            optimized=self.optimize_first,
            inc_version=inc_version(),
            trials=tuple(trials),
            warnings=tuple(warnings),
            seconds=round(time.perf_counter() - start, 3),
            **common,
        )

    # -- helpers --------------------------------------------------------------------------
    def _quantize(self, fp32: Model, batches: list[dict[str, Any]], kept: tuple[str, ...]) -> Model:
        from tfcpu.quantize._inc import IncSettings, quantize_graph

        settings = IncSettings(
            per_channel=self.per_channel,
            symmetric=self.symmetric,
            algorithm=self.algorithm,
            smooth_quant_alpha=self.smooth_quant_alpha,
            fp32_nodes=kept,
        )
        graph_def = quantize_graph(
            fp32.graph_def, fp32.input_names, fp32.output_names, batches, settings, source=fp32.source
        )
        if graph_def.versions.producer == 0 and fp32.graph_def.versions.producer:
            # INC drops the producer versions; without them the saved file looks truncated to loaders.
            graph_def.versions.CopyFrom(fp32.graph_def.versions)
        names = {n.name for n in graph_def.node}
        lost = [t.name for t in (*fp32.inputs, *fp32.outputs) if t.node not in names]
        if lost:
            raise QuantizationError(
                "the quantised graph lost model inputs/outputs", where=fp32.source, why=f"missing {lost}"
            )
        return Model(
            graph_def=graph_def,
            inputs=fp32.inputs,
            outputs=fp32.outputs,
            source=f"{fp32.source} [int8]",
            metadata={**fp32.metadata, "precision": "int8", "fp32_nodes": list(kept), "needs_onednn": True},
        )

    def _evaluate(self, model: Model, label: str) -> float:
        assert self.evaluator is not None
        try:
            value = float(self.evaluator(model))
        except Exception as exc:
            raise QuantizationError(
                f"the evaluation function failed on the {label} model",
                where=getattr(self.evaluator, "__name__", "evaluate"),
                why=f"{type(exc).__name__}: {exc}",
            ) from exc
        if math.isnan(value):
            raise QuantizationError(f"the evaluation function returned NaN for the {label} model")
        log.info("%s metric: %.6g", label, value)
        return value

    def _run_bf16(self, model: Model, warnings: list[str], common: dict[str, Any], start: float) -> QuantizationResult:
        from tfcpu.quantize._bf16 import bf16_rewrite

        if not common["onednn_enabled"]:
            raise QuantizationError(
                "the BF16 rewrite needs oneDNN, which is off in this TensorFlow process",
                hint="set TF_ENABLE_ONEDNN_OPTS=1 before importing TensorFlow, or use `tfcpu quantize --bf16`",
            )
        fp32 = model
        if self.optimize_first:
            from tfcpu.graph.optimizer import GraphOptimizer

            fp32 = GraphOptimizer.default().run(model).model
        graph_def = bf16_rewrite(fp32.graph_def, fp32.output_names, source=fp32.source)
        converted = sum(1 for n in graph_def.node if n.op == "Cast" and n.attr["DstT"].type == 14)
        new = Model(
            graph_def=graph_def,
            inputs=fp32.inputs,
            outputs=fp32.outputs,
            source=f"{fp32.source} [bf16]",
            metadata={**fp32.metadata, "precision": "bf16", "needs_onednn": True},
        )
        if not converted:
            _warn(warnings, f"oneDNN's BF16 rewrite changed nothing in {model.source}; the FP32 model is returned")
            new = model
        return QuantizationResult(
            model=new,
            quantized=bool(converted),
            precision="bf16" if converted else "fp32",
            quantized_ops={"Cast->bfloat16": converted} if converted else {},
            optimized=self.optimize_first,
            warnings=tuple(warnings),
            seconds=round(time.perf_counter() - start, 3),
            **common,
        )


def _warn(warnings: list[str], message: str) -> None:
    log.warning(message)
    warnings.append(message)


def _within(fp32: float, int8: float, tolerance: float) -> bool:
    if fp32 == 0:
        return int8 >= fp32
    return (fp32 - int8) / abs(fp32) <= tolerance + 1e-12


def _fallback_order(model: Model) -> list[str]:
    """Compute nodes in the order they are tried in FP32: last, first, second-to-last, second, ..."""
    names = [n.name for n in model.graph_def.node if n.op in COMPUTE_OPS]
    from tfcpu.graph._graphdef import topological_order

    ordered = topological_order(model.graph_def)
    if ordered is not None:
        position = {name: i for i, name in enumerate(ordered)}
        names.sort(key=lambda n: position.get(n, 0))
    out: list[str] = []
    lo, hi = 0, len(names) - 1
    while lo <= hi:
        out.append(names[hi])
        if lo != hi:
            out.append(names[lo])
        lo, hi = lo + 1, hi - 1
    return out


def _int8_ops(graph_def: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in graph_def.node:
        if is_quantized_op(node.op):
            counts[node.op] = counts.get(node.op, 0) + 1
    return dict(sorted(counts.items()))


def _ensure_onednn(topo: Topology) -> bool:
    """Turn oneDNN on for this process if TensorFlow has not started yet; report whether it is on."""
    from tfcpu.session.runtime import runtime_info

    # TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when it is imported (not when it starts running)
    if "tensorflow" not in sys.modules and not topo.onednn_default and "TF_ENABLE_ONEDNN_OPTS" not in os.environ:
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
        log.info("set TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow starts: INT8/BF16 graphs need oneDNN on this CPU")
    return bool(runtime_info().onednn_enabled)


def _agreement(fp32: Model, int8: Model, batches: list[dict[str, Any]]) -> tuple[float | None, float]:
    """Top-1 agreement (rank-2 outputs with >1 class) and max abs difference, FP32 vs INT8."""
    import numpy as np

    from tfcpu.runtime.runner import Runner

    agree = total = 0
    max_abs = 0.0
    with Runner(fp32, name="fp32") as ref, Runner(int8, name="int8") as new:
        for batch in batches:
            want = ref.run(batch)
            got = new.run(batch)
            for name in fp32.output_names:
                a = np.asarray(want[name], dtype=np.float64)
                b = np.asarray(got[name], dtype=np.float64)
                if a.size:
                    max_abs = max(max_abs, float(np.max(np.abs(a - b))))
                if a.ndim == 2 and a.shape[1] > 1:
                    agree += int(np.sum(a.argmax(axis=1) == b.argmax(axis=1)))
                    total += a.shape[0]
    return (agree / total if total else None), max_abs
