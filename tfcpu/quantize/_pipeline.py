"""The stages of `tfcpu.Quantizer.run()`, each handing the next a value, once.

::

    prepare(plan, model)  -> Prepared    machine read, calibration read and checked, oneDNN decided
    optimise(prepared)    -> Prepared    GraphOptimizer.default() unless off or already optimised
    run_int8 / run_bf16   -> Outcome     what the quantiser made (model, ops, metrics, trials)
    build_result(...)     -> QuantizationResult   built here and nowhere else

Everything the result reports is read from these values; nothing is measured twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from tfcpu.errors import QuantizationError
from tfcpu.graph.model import NEEDS_ONEDNN, PRECISION, REMAINDER, Model, copy_graph_def
from tfcpu.quantize.calibration import Calibration, batch_size_of, describe_source, materialise
from tfcpu.quantize.result import COMPUTE_OPS, QuantizationResult, Trial, bf16_op_table, bf16_ops, int8_ops, op_table

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.graph.optimizer import OptimizationResult
    from tfcpu.quantize.quantizer import Quantizer
    from tfcpu.topology import Topology

__all__ = ["Outcome", "Prepared", "build_result", "run_bf16", "run_int8"]

log = logging.getLogger("tfcpu.quantize.quantizer")  # the logger users filter on since the start

_ONEDNN_OFF = (
    "oneDNN is off in this TensorFlow process, so INT8 graphs cannot run here "
    "(start Python with oneDNN on, e.g. SessionConfig...with_onednn(True).apply(), before TensorFlow is imported)"
)


@dataclass(frozen=True)
class Prepared:
    """What every pipeline starts from (built once by `prepare()`)."""

    plan: Quantizer
    source: Model
    fp32: Model
    topology: Topology
    batches: tuple[dict[str, Any], ...]
    calibration: Calibration | None
    onednn: bool
    start: float
    warnings: tuple[str, ...] = ()
    optimization: OptimizationResult | None = None

    def warn(self, message: str) -> Prepared:
        log.warning(message)
        return replace(self, warnings=(*self.warnings, message))


@dataclass(frozen=True)
class Outcome:
    """What a quantiser made of the FP32 graph (each field has the name of the QuantizationResult field it becomes)."""

    model: Model
    precision: str
    op_types: tuple[Any, ...] = ()
    quantized_ops: dict[str, int] = field(default_factory=dict)
    kept_fp32_nodes: tuple[str, ...] = ()
    fp32_metric: float | None = None
    int8_metric: float | None = None
    tolerance: float | None = None
    top1_agreement: float | None = None
    max_abs_diff: float | None = None
    cosine: float | None = None
    matmul_flop_share: float | None = None
    inc_version: str | None = None
    trials: tuple[Trial, ...] = ()


def prepare(plan: Quantizer, model: Model, seed: int) -> Prepared:
    """Read the machine and the calibration data; decide oneDNN for this process."""
    from tfcpu.session.precision import decide_onednn, ensure_in_process
    from tfcpu.topology import Topology

    start = time.perf_counter()
    topo = plan.topology or Topology.detect()
    batches: list[dict[str, Any]] = []
    calibration = None
    synthetic = False
    if plan.calibration is not None:
        batches = materialise(
            model, plan.calibration, batches=plan.calibration_batches, batch_size=plan.calibration_batch_size, seed=seed
        )
        synthetic = isinstance(plan.calibration, str) and plan.calibration == "synthetic"
        assumed: tuple[str, ...] = ()
        if synthetic:
            from tfcpu.graph._input_ranges import describe, input_ranges

            assumed = tuple(describe(input_ranges(model, floats=True)))
            from tfcpu.quantize.calibration import SYNTHETIC_UNKNOWN_DIM, synthetic_shapes

            dynamic = sorted(synthetic_shapes(model, 1))
            if dynamic:
                assumed += (
                    f"unknown dimensions after the batch ({', '.join(dynamic)}): {SYNTHETIC_UNKNOWN_DIM} "
                    "(calibrate with your own data for other lengths)",
                )
            log.info("synthetic calibration of %s assumes: %s", model.source, "; ".join(assumed))
        calibration = Calibration(
            source=describe_source(plan.calibration),
            batches=len(batches),
            batch_size=batch_size_of(batches),
            samples=sum(batch_size_of([b]) for b in batches),
            synthetic=synthetic,
            assumed=assumed,
        )
    # The quantised graph needs oneDNN: the one policy decides, and sets it if TensorFlow has not started.
    onednn = ensure_in_process(decide_onednn(needs_onednn=True))
    prepared = Prepared(plan, model, model, topo, tuple(batches), calibration, onednn, start)
    if synthetic:
        from tfcpu.quantize.quantizer import SYNTHETIC_WARNING

        prepared = prepared.warn(SYNTHETIC_WARNING)
    return prepared


def optimise(prepared: Prepared) -> Prepared:
    """``GraphOptimizer.default()`` once: not with ``.optimize(False)``, not on an optimised Model."""
    model = prepared.source
    if not prepared.plan.optimize_first:
        return prepared
    if model.format != "graphdef":  # an OpenVINO IR holds no GraphDef: the GraphDef passes have nothing to do
        log.info("%s is a %s model: the GraphDef optimiser does not apply, not optimised", model.source, model.format)
        return prepared
    if model.optimized_with is not None:
        log.info("%s is already optimised (%s): not optimised again", model.source, ", ".join(model.optimized_with))
        return prepared
    from tfcpu.graph.optimizer import GraphOptimizer

    result = GraphOptimizer.default().run(model, check_inputs=_check_inputs(prepared))
    return replace(prepared, fp32=result.model, optimization=result)


def _check_inputs(prepared: Prepared) -> Any:
    """The user's check inputs, else the first batch of real calibration data, else None (generated)."""
    if prepared.plan.check_inputs is not None:
        return prepared.plan.check_inputs
    if prepared.batches and prepared.calibration is not None and not prepared.calibration.synthetic:
        return prepared.batches[0]
    return None


def build_result(prepared: Prepared, outcome: Outcome) -> QuantizationResult:
    """The one place a QuantizationResult is made."""
    found = {f.name: getattr(outcome, f.name) for f in fields(outcome)}  # same names as the result's
    return QuantizationResult(
        **found,
        quantized=outcome.precision != "fp32",
        calibration=prepared.calibration,
        optimized=prepared.fp32.optimized_with is not None,
        fast_int8_hardware=bool(prepared.topology.precisions["int8"].accelerated),
        onednn_enabled=prepared.onednn,
        warnings=prepared.warnings,
        seconds=round(time.perf_counter() - prepared.start, 3),
        optimization=prepared.optimization,
        requested=prepared.plan.precision,
    )


# -- INT8 -----------------------------------------------------------------------------------
def run_int8(plan: Quantizer, model: Model, seed: int) -> QuantizationResult:
    """INT8 through INC: prepare, refuse an empty graph, optimise, trial loop, agreement."""
    from tfcpu.quantize.quantizer import SLOW_INT8_WARNING

    prepared = prepare(plan, model, seed)
    if not any(node.op in COMPUTE_OPS for node in model.graph_def.node):
        prepared = prepared.warn(
            f"nothing to quantise in {model.source}: it has no Conv/MatMul op "
            f"({', '.join(COMPUTE_OPS[:4])} ...); the FP32 model is returned unchanged"
        )
        return build_result(prepared, Outcome(model=model, precision="fp32"))
    if not prepared.topology.precisions["int8"].accelerated:
        prepared = prepared.warn(SLOW_INT8_WARNING)
    if not prepared.onednn and plan.rest == "bf16":  # refused before INC runs
        raise QuantizationError(
            "the BF16 remainder needs oneDNN, which is off in this TensorFlow process",
            hint="turn oneDNN on before TensorFlow is imported (TF_ENABLE_ONEDNN_OPTS=1, or "
            "tfcpu.SessionConfig...with_onednn(True).apply())",
        )
    if not prepared.onednn:
        if plan.evaluator is not None:
            raise QuantizationError(
                "cannot evaluate the INT8 model in this process",
                why=_ONEDNN_OFF,
                hint="turn oneDNN on before importing TensorFlow (tfcpu.SessionConfig...with_onednn(True).apply()), "
                "or use `tfcpu quantize`",
            )
        prepared = prepared.warn(_ONEDNN_OFF + "; the agreement check runs the INT8 graph in a child process")
    prepared = optimise(prepared)
    outcome, prepared = _trials(prepared)
    return build_result(prepared, outcome)


def _trials(prepared: Prepared) -> tuple[Outcome, Prepared]:
    from tfcpu.quantize._inc import inc_version
    from tfcpu.quantize.quantizer import _fallback_order, _within

    plan, fp32, batches = prepared.plan, prepared.fp32, list(prepared.batches)
    fp32_metric = plan._evaluate(fp32, "FP32") if plan.evaluator is not None else None
    trials: list[Trial] = []
    candidates = _fallback_order(fp32)
    best: tuple[Model, Trial] | None = None
    for attempt in range(plan.max_trials if plan.evaluator is not None else 1):
        kept = tuple(candidates[:attempt])
        if attempt and len(kept) < attempt:
            break  # every candidate is already FP32
        qmodel = plan._quantize(fp32, batches, kept)
        metric = plan._evaluate(qmodel, "INT8") if plan.evaluator is not None else None
        accepted = metric is None or fp32_metric is None or _within(fp32_metric, metric, plan.relative_loss)
        trial = Trial(kept, metric, accepted)
        trials.append(trial)
        log.info("INT8 trial %d: %d node(s) in FP32, metric %s", attempt + 1, len(kept), metric)
        better = best is None or (metric is not None and best[1].metric is not None and metric > best[1].metric)
        if better or accepted:
            best = (qmodel, trial)
        if accepted:
            break
    if best is None:  # max_trials >= 1 is validated by the builder, so the loop ran at least once
        raise QuantizationError("no INT8 trial ran", where=fp32.source)
    qmodel, chosen = best
    if not chosen.accepted:
        prepared = prepared.warn(
            f"INT8 stayed outside the tolerance ({plan.relative_loss:.2%}) after {len(trials)} trial(s); "
            f"returning the best attempt — consider more calibration data, .int8(algorithm='kl') or FP32"
        )
    common: dict[str, Any] = {
        "op_types": op_table(fp32.graph_def, qmodel.graph_def),
        "inc_version": inc_version(),
        "trials": tuple(trials),
    }
    found = int8_ops(qmodel.graph_def)
    if not found:
        prepared = prepared.warn(
            f"INC quantised nothing in {prepared.source.source}; the FP32 model is returned unchanged"
        )
        return Outcome(model=prepared.source, precision="fp32", **common), prepared
    if plan.rest == "bf16":
        qmodel, prepared = _bf16_remainder(qmodel, prepared)
    agreement, prepared = _agree(prepared, qmodel, "int8")
    outcome = Outcome(
        matmul_flop_share=_matmul_share(qmodel, batches),
        model=qmodel,
        precision="int8",
        quantized_ops=found,
        kept_fp32_nodes=chosen.fp32_nodes,
        fp32_metric=fp32_metric,
        int8_metric=chosen.metric,
        tolerance=plan.relative_loss if plan.evaluator is not None else None,
        **agreement,
        **common,
    )
    return outcome, prepared


def _bf16_remainder(qmodel: Model, prepared: Prepared) -> tuple[Model, Prepared]:
    """``remainder("bf16")``: oneDNN's BF16 rewrite on the INT8 graph (the quantised ops stay as they are;
    the float MatMul/Einsum/Conv left by INC and what follows them become BF16). The CPU and oneDNN
    were checked before INC ran (`Quantizer.run`, `run_int8`)."""
    from tfcpu.quantize._bf16 import bf16_rewrite

    graph_def = bf16_rewrite(copy_graph_def(qmodel.graph_def), qmodel.output_names, source=qmodel.source)
    if not bf16_ops(graph_def):
        return qmodel, prepared.warn("remainder('bf16'): the INT8 graph has no float op oneDNN runs in BF16")
    mixed = Model(
        graph_def=graph_def,
        inputs=qmodel.inputs,
        outputs=qmodel.outputs,
        source=f"{qmodel.source} [bf16 remainder]",
        metadata={**qmodel.metadata, REMAINDER: "bf16"},
    )
    return mixed, prepared


def _matmul_share(qmodel: Model, batches: list[dict[str, Any]]) -> float | None:
    """The INT8 share of the graph's MatMul/Einsum/Conv FLOPs at the first calibration batch's shapes
    (what is inside function calls included; None when a call the count cannot open holds some)."""
    from tfcpu.graph.flops import matmul_flops

    if not batches:
        return None
    try:
        share = matmul_flops(qmodel.graph_def, {k: v.shape for k, v in batches[0].items()}, include_conv=True)
    except Exception as exc:  # noqa: BLE001 - a report line, never a reason to fail the quantisation
        log.debug("no MatMul FLOP share for %s: %s", qmodel.source, exc)
        return None
    if share.hidden:
        log.warning("no INT8 FLOP share: function calls hide compute (%s)", ", ".join(share.hidden[:3]))
    return share.share if share.total else None


def _agree(prepared: Prepared, candidate: Model, label: str) -> tuple[dict[str, Any], Prepared]:
    """Top-1 agreement, max abs difference and cosine of ``candidate`` against the FP32 graph (the one
    comparator), on the calibration batches or, without them, one seeded random batch. A check that
    proves nothing (constant outputs, NaN, all-equal logits) is said in the warnings."""
    from tfcpu.quantize.quantizer import _agreement

    batches = list(prepared.batches)
    if not batches and prepared.plan.check_inputs is not None:
        from tfcpu.graph._check import sample_inputs

        batches = [sample_inputs(prepared.fp32, prepared.plan.check_inputs)]
    if not batches:
        from tfcpu.graph.compare import random_inputs

        batches = [random_inputs(prepared.fp32, 4, seed=0, unknown_dims=1)]
    # oneDNN off here (TensorFlow was imported before tfcpu could turn it on): the candidate runs in a
    # child process with oneDNN on, so the agreement is measured on every CPU (issue 27).
    comparison = _agreement(prepared.fp32, candidate, batches, label, in_child=not prepared.onednn)
    for reason in comparison.degenerate:
        prepared = prepared.warn(f"the {label.upper()} agreement check: {reason}")
    prepared = _drift(prepared, candidate, batches, comparison.cosine, label)
    fields = {"top1_agreement": comparison.top1, "max_abs_diff": comparison.max_abs, "cosine": comparison.cosine}
    return fields, prepared


def _drift(
    prepared: Prepared, candidate: Model, batches: list[dict[str, Any]], cosine: float | None, label: str
) -> Prepared:
    """A low INT8 agreement names the layers that drift most and the fix (`tfcpu.quantize._drift`)."""
    from tfcpu.quantize._drift import DRIFT_COSINE, drift_warning, layer_drift

    if label != "int8" or cosine is None or cosine >= DRIFT_COSINE:
        return prepared
    try:
        drifts = layer_drift(prepared.fp32, candidate, batches, in_child=not prepared.onednn)
    except Exception as exc:  # noqa: BLE001 - the per-layer report is advice; the result stands without it
        log.info("no per-layer drift for %s: %s", prepared.source.source, exc)
        drifts = []
    synthetic = prepared.calibration is not None and prepared.calibration.synthetic
    return prepared.warn(drift_warning(cosine, drifts, synthetic=synthetic))


# -- BF16 -----------------------------------------------------------------------------------
def run_bf16(plan: Quantizer, model: Model, seed: int) -> QuantizationResult:
    """BF16 through Grappler's oneDNN auto mixed precision, on a CPU that accelerates BF16."""
    from tfcpu.quantize._bf16 import bf16_rewrite
    from tfcpu.session.precision import check_precision
    from tfcpu.topology import Topology

    check_precision("bf16", plan.topology or Topology.detect())  # the machine is read here, not in .bf16()
    prepared = prepare(plan, model, seed)
    if not prepared.onednn:
        raise QuantizationError(
            "the BF16 rewrite needs oneDNN, which is off in this TensorFlow process",
            hint="turn oneDNN on before importing TensorFlow (tfcpu.SessionConfig...with_onednn(True).apply()), "
            "or use `tfcpu quantize --bf16`",
        )
    prepared = optimise(prepared)
    fp32 = prepared.fp32
    # Grappler gets a copy: the Model's own GraphDef is never handed to TensorFlow mutable.
    graph_def = bf16_rewrite(copy_graph_def(fp32.graph_def), fp32.output_names, source=fp32.source)
    found = bf16_ops(graph_def)
    if not found:
        prepared = prepared.warn(f"oneDNN's BF16 rewrite changed nothing in {model.source}; the FP32 model is returned")
        return build_result(prepared, Outcome(model=model, precision="fp32"))
    new = Model(
        graph_def=graph_def,
        inputs=fp32.inputs,
        outputs=fp32.outputs,
        source=f"{fp32.source} [bf16]",
        metadata={**fp32.metadata, PRECISION: "bf16", NEEDS_ONEDNN: True},
    )
    agreement, prepared = _agree(prepared, new, "bf16")
    outcome = Outcome(
        model=new,
        precision="bf16",
        op_types=bf16_op_table(fp32.graph_def, graph_def),
        quantized_ops=found,
        **agreement,
    )
    return build_result(prepared, outcome)


def run_openvino(plan: Quantizer, model: Model, seed: int) -> QuantizationResult:
    """The OpenVINO target (`tfcpu.quantize.targets`): INT8 through NNCF or BF16 inference precision
    (tfcpu/quantize/_nncf.py), from the same calibration data; the TensorFlow FP32 graph is optimised
    once first, like the TF path."""
    from tfcpu.quantize._nncf import quantizer_result
    from tfcpu.runtime.backends._openvino_util import openvino_refusal

    refusal = openvino_refusal(model)  # before the optimiser and calibration spend minutes on it
    if refusal is not None:
        raise refusal
    prepared = optimise(prepare(plan, model, seed))
    result = quantizer_result(
        prepared.fp32,
        list(prepared.batches),
        precision=plan.precision,
        calibration=prepared.calibration,
        evaluate=plan.evaluator,
        tolerance=plan.relative_loss if plan.evaluator is not None else None,
        warnings=prepared.warnings,
        fast_int8=bool(prepared.topology.precisions["int8"].accelerated),
        remainder=plan.rest,
    )
    return replace(result, optimization=prepared.optimization)
