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
   calibration files (``.calibrate("cal.npy")``, a directory of ``.npy``) are read here;
2. optimises the graph with ``GraphOptimizer.default()`` — a visible step: unless ``.optimize(False)``,
   or the Model already came out of a GraphOptimizer (``Model.optimized_with``), in which case it is
   not optimised again. The OptimizationResult is kept in ``QuantizationResult.optimization``. On
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
``TF_ENABLE_ONEDNN_OPTS=1``. ``run`` asks the precision policy (`tfcpu.session.precision`):
if TensorFlow has not started yet, the policy sets that variable (logged); if it already started
without oneDNN, the graph is still quantised but cannot be executed in this process: an evaluation
is refused, and the agreement check runs the quantised graph in one fresh child process with oneDNN on
(so ``cosine``/``top1_agreement`` are measured on every CPU).

Builders store settings and do no I/O: ``.bf16()`` refuses a CPU without BF16 at once only when a
topology was given (``Quantizer(topology=...)``); otherwise the machine is read by ``run``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tfcpu.errors import ConfigError, QuantizationError, did_you_mean
from tfcpu.graph.model import FP32_NODES, NEEDS_ONEDNN, PRECISION, Model, copy_graph_def
from tfcpu.quantize.calibration import check_source, describe_source, is_file_source
from tfcpu.quantize.result import COMPUTE_OPS, QuantizationResult, int8_ops

if TYPE_CHECKING:
    from tfcpu.graph.compare import Comparison  # pragma: no cover
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

    Attributes:
        topology: the machine to plan for (default: ``Topology.detect()`` when `run()` starts);
            inject a captured one in tests.
        target: the runtime the quantised graph is for; ``"tensorflow"`` (INC for INT8, Grappler
            for BF16). `run()` dispatches on ``(target, precision)``.
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
    target: str = "tensorflow"
    rest: str = "fp32"
    check_inputs: Any = field(default=None, compare=False, repr=False)

    # -- precision ------------------------------------------------------------------------
    def int8(self, per_channel: bool = True, symmetric: bool = True, algorithm: str = "minmax") -> Quantizer:
        """Static post-training INT8 through Intel Neural Compressor 3.x.

        Args:
            per_channel: one weight scale per output channel (more accurate) or per tensor.
            symmetric: symmetric ranges for weights and activations.
            algorithm: activation range calibration: ``"minmax"`` or ``"kl"`` (KL divergence).
        """
        if algorithm not in _ALGORITHMS:
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

    def remainder(self, precision: str = "bf16") -> Quantizer:
        """What the compute INT8 leaves in float runs in: ``"fp32"`` (default) or ``"bf16"``.

        INC quantises the projections and MLPs of a transformer, not its attention products (two
        activations, no weight: 7.7 % of the FLOPs of the default encoder), and in TensorFlow those
        ``Einsum``/``BatchMatMul`` ops then took 19 % of the INT8 graph's time (profiled on a Zen 5).
        ``remainder("bf16")`` runs oneDNN's BF16 rewrite on the INT8 graph: the remaining float
        MatMul/Einsum/Conv ops and what follows them (Softmax, the mask's Select) run in BF16, the
        quantised ops are left as they are. On the OpenVINO target the compiled model's inference
        precision becomes bf16 for the layers NNCF left in float. Only where the CPU has AVX512_BF16
        or AMX_BF16 (refused elsewhere, like `bf16()`).
        """
        if precision not in ("fp32", "bf16"):
            raise ConfigError(
                f"unknown remainder precision {precision!r}",
                where="Quantizer.remainder",
                hint=did_you_mean(precision, ("fp32", "bf16")) or "use 'fp32' or 'bf16'",
            )
        if precision == "bf16" and self.topology is not None:
            from tfcpu.session.precision import check_precision

            check_precision("bf16", self.topology)
        return replace(self, rest=precision)

    def bf16(self) -> Quantizer:
        """BF16 through oneDNN auto mixed precision — only where the CPU has AVX512_BF16 or AMX.

        Without them BF16 is emulated and slower than FP32 (measured 15 vs 25 img/s on a
        ResNet-50), so the plan is refused with a ConfigError: here when a topology was given,
        otherwise by `run()` (a builder does not read the machine).
        """
        if self.topology is not None:
            from tfcpu.session.precision import check_precision

            check_precision("bf16", self.topology)
        return replace(self, precision="bf16")

    # -- data and accuracy ------------------------------------------------------------------
    def calibrate(self, data: Any, batches: int = 10, batch_size: int | None = None) -> Quantizer:
        """Calibration data: a numpy array (or dict of arrays), a sequence/iterator of batches,
        a ``tf.data.Dataset``, a callable returning batches, a ``.npy`` file or a directory of
        ``.npy`` batches (a ``str`` or ``os.PathLike``; read by `run()`, with the same loader
        as ``tfcpu quantize --calibration``), or ``"synthetic"``.

        Args:
            data: the calibration source (see above).
            batches: at most this many batches are used.
            batch_size: how an array is cut into batches (default 32; 8 for synthetic data).

        Shapes and dtypes are checked against the model's inputs when `run()` starts,
        before INC does anything.
        """
        if data is None:
            raise ConfigError("calibration data is None", where="Quantizer.calibrate", hint='pass data or "synthetic"')
        if is_file_source(data):
            check_source(data, where="Quantizer.calibrate")
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
        """Run ``GraphOptimizer.default()`` before quantising (default True).

        A Model that already came out of a GraphOptimizer (``Model.optimized_with``) is never
        optimised a second time; the result says so.

        Args:
            enabled: False quantises the graph as it is.
        """
        return replace(self, optimize_first=bool(enabled))

    def backend(self, name: str) -> Quantizer:
        """Quantise for the runtime ``name`` (a key of `tfcpu.quantize.targets.TARGETS`): TensorFlow
        (INC graph, the default) or OpenVINO (NNCF; an OpenVINO IR model)."""
        from tfcpu.quantize.targets import get_target

        return replace(self, target=get_target(name).name)

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
            "target": self.target,
            "remainder": self.rest,
        }

    def explain(self) -> str:
        d = self.to_dict()
        return "\n".join(f"{k}: {v}" for k, v in d.items())

    # -- running ------------------------------------------------------------------------
    def run(self, model: Model, *, seed: int = 0, check_inputs: Any = None) -> QuantizationResult:
        """Quantise ``model`` (never modified) and return a `QuantizationResult`.

        The terminal call: the machine is read here (``Topology.detect()`` unless a topology was
        given), calibration files are read here, and oneDNN is decided by the precision policy
        (`tfcpu.session.precision`). The stages run in ``tfcpu.quantize._pipeline``.

        Args:
            model: the FP32 Model; returned unchanged (the same object) when there is nothing to do.
            seed: seed of synthetic calibration batches.
            check_inputs: sample inputs for the optimiser's numerical check and the agreement check
                when there is no real calibration data: a dict of arrays by input name or a ``.npz``
                file keyed by input name (see `tfcpu.GraphOptimizer.run`). Real calibration data
                serves as check inputs without it.

        Raises:
            ConfigError: not a Model, no calibration data for INT8, bad calibration data, or a
                precision this CPU does not accelerate (BF16 without AVX512_BF16/AMX_BF16).
            QuantizationError: INC or the BF16 rewrite failed, or the evaluation cannot run here.
        """

        if not isinstance(model, Model):
            raise ConfigError(
                f"Quantizer.run needs a tfcpu Model, got {type(model).__name__}", hint="load it with tfcpu.load(...)"
            )
        from tfcpu import formats
        from tfcpu.quantize.targets import get_target

        target = get_target(self.target, where="Quantizer.run")
        refusal = target.refusal(formats.for_model(model), self.precision, where=model.source)
        if refusal is not None:  # before any work (issue 23)
            raise refusal
        if self.calibration is None and self.precision == "int8":
            raise ConfigError(
                "no calibration data",
                where="Quantizer.run",
                hint='call .calibrate(data) first (or .calibrate("synthetic") for speed tests only)',
            )
        if self.rest != "fp32" and self.precision != "int8":
            raise ConfigError(
                f"remainder({self.rest!r}) is an INT8 option",
                where="Quantizer.remainder",
                why=f"the plan's precision is {self.precision}: there is no INT8 part to leave a remainder",
                hint="drop .remainder(...) or use .int8()",
            )
        if "bf16" in (self.rest, self.precision):  # refused before INC, NNCF or OpenVINO run, on both targets
            from tfcpu.session.precision import check_precision
            from tfcpu.topology import Topology

            check_precision("bf16", self.topology or Topology.detect())
        pipeline = target.pipeline(self.precision)
        plan = self if check_inputs is None else replace(self, check_inputs=check_inputs)
        return pipeline(plan, model, seed)

    # -- helpers (used by the pipeline) ---------------------------------------------------
    def _quantize(self, fp32: Model, batches: list[dict[str, Any]], kept: tuple[str, ...]) -> Model:
        from tfcpu.quantize._inc import IncSettings, quantize_graph

        settings = IncSettings(
            per_channel=self.per_channel,
            symmetric=self.symmetric,
            algorithm=self.algorithm,
            smooth_quant_alpha=self.smooth_quant_alpha,
            fp32_nodes=kept,
        )
        # INC rewrites the GraphDef it is given: it gets a copy, never the Model's own.
        graph_def = quantize_graph(
            copy_graph_def(fp32.graph_def), fp32.input_names, fp32.output_names, batches, settings, source=fp32.source
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
            metadata={**fp32.metadata, PRECISION: "int8", FP32_NODES: list(kept), NEEDS_ONEDNN: True},
        )

    def _evaluate(self, model: Model, label: str) -> float:
        if self.evaluator is None:
            raise QuantizationError(f"no evaluation function to measure the {label} model", where="Quantizer")
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


_int8_ops = int8_ops  # the name earlier callers import


def _agreement(
    fp32: Model, candidate: Model, batches: list[dict[str, Any]], label: str, *, in_child: bool = False
) -> Comparison:
    """FP32 against the quantised/BF16 model on the same batches, through the one comparator.

    ``in_child``: this process runs TensorFlow with oneDNN off, where the candidate's oneDNN-only
    kernels cannot run (TensorFlow's placeholder kernels would fail with "Missing 0-th output"); the
    candidate then runs in one fresh child process with oneDNN on (`_outputs_in_child`), the FP32
    reference here.
    """
    from tfcpu.graph.compare import compare_outputs, concat_outputs
    from tfcpu.runtime.runner import Runner

    if in_child:
        batches = _same_shapes(batches)
    with Runner(fp32, name="fp32") as ref:
        want = concat_outputs(ref.run(batch) for batch in batches)
    if in_child:
        got = _outputs_in_child(candidate, batches)
    else:
        with Runner(candidate, name=label) as new:
            got = concat_outputs(new.run(batch) for batch in batches)
    return compare_outputs(want, got, label=f"fp32 vs {label}")


def _same_shapes(batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The batches that can be stacked with the first one (same input names and per-item shapes)."""

    def key(batch: dict[str, Any]) -> tuple[tuple[str, tuple[int, ...]], ...]:
        return tuple(sorted((name, tuple(value.shape[1:])) for name, value in batch.items()))

    first = key(batches[0])
    return [b for b in batches if key(b) == first]


def _outputs_in_child(model: Model, batches: list[dict[str, Any]]) -> dict[str, Any]:
    """``model``'s outputs on ``batches`` (in order), computed in one fresh child process with oneDNN on.

    The child is tfcpu's multi-instance worker (`tfcpu.runtime.multi.run_instances`, one instance
    on this machine's usable CPUs, the batches as one dataset shard), so it runs exactly what
    ``Runner(model).multi_instance(...)`` runs. oneDNN is forced on there: the graph cannot run
    without it, whatever this process was started with.

    Raises:
        InstanceError: the child failed (its cause first).
    """
    import numpy as np

    from tfcpu.plan import InstancePlan
    from tfcpu.runtime.backends import BenchmarkOptions
    from tfcpu.runtime.multi import InstanceSettings, run_instances

    data = {name: np.concatenate([b[name] for b in batches]) for name in batches[0]}
    size = int(next(iter(batches[0].values())).shape[0])
    result = run_instances(
        model,
        InstancePlan.for_topology(instances=1),
        BenchmarkOptions(batch_size=size, warmup=0),
        data=data,
        settings=InstanceSettings(onednn=True, collect_outputs=True, strict=True),
    )
    outputs = result.outputs or {}
    missing = [name for name in model.output_names if outputs.get(name) is None]
    if missing:
        raise QuantizationError(
            "the agreement check's child process returned no outputs",
            where=model.source,
            why=f"no values for {', '.join(missing)}",
        )
    return {name: outputs[name] for name in model.output_names}
