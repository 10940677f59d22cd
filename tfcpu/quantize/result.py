"""``QuantizationResult``: what the Quantizer produced, measured and decided — frozen, serialisable."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tfcpu._render import TextTable
from tfcpu.errors import ConfigError
from tfcpu.graph.model import Model, is_quantized_op
from tfcpu.quantize.calibration import Calibration

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.graph.optimizer import OptimizationResult

__all__ = [
    "BF16_CAST",
    "COMPUTE_OPS",
    "QUANTIZABLE_OPS",
    "OpTypeRow",
    "QuantizationResult",
    "Trial",
    "bf16_op_table",
    "bf16_ops",
    "int8_ops",
    "op_table",
]

_DT_BFLOAT16 = 14  # tensorflow.core.framework.types_pb2.DT_BFLOAT16, without importing TensorFlow
#: The key of ``quantized_ops`` that counts the Casts to bfloat16 a BF16 rewrite inserted.
BF16_CAST = "Cast->bfloat16"

# Ops INC 3.x turns into INT8 kernels; a graph without any of these has nothing worth quantising.
COMPUTE_OPS = (
    "Conv2D",
    "Conv3D",
    "DepthwiseConv2dNative",
    "MatMul",
    "BatchMatMul",
    "BatchMatMulV2",
    "Conv2DBackpropInput",
    "Conv3DBackpropInputV2",
)
# Ops INC can also quantise, but only next to a quantised compute op.
QUANTIZABLE_OPS = (
    *COMPUTE_OPS,
    "FusedBatchNorm",
    "FusedBatchNormV2",
    "FusedBatchNormV3",
    "MaxPool",
    "MaxPool3D",
    "AvgPool",
    "ConcatV2",
    "Einsum",  # listed so the report shows attention products that stay FP32
)


@dataclass(frozen=True)
class OpTypeRow:
    """For one quantisable op type: how many nodes the FP32 graph had, how many became INT8."""

    op: str
    total: int
    quantized: int
    kept_fp32: int

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "total": self.total, "quantized": self.quantized, "kept_fp32": self.kept_fp32}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OpTypeRow:
        try:
            return cls(str(data["op"]), int(data["total"]), int(data["quantized"]), int(data["kept_fp32"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError("not an op-type row", why=f"{type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class Trial:
    """One INT8 attempt of the accuracy-driven loop: the nodes kept in FP32 and the metric reached."""

    fp32_nodes: tuple[str, ...]
    metric: float | None
    accepted: bool

    def to_dict(self) -> dict[str, Any]:
        return {"fp32_nodes": list(self.fp32_nodes), "metric": self.metric, "accepted": self.accepted}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trial:
        try:
            metric = data["metric"]
            return cls(tuple(data["fp32_nodes"]), None if metric is None else float(metric), bool(data["accepted"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError("not a Trial record", why=f"{type(exc).__name__}: {exc}") from exc


def op_table(before: Any, after: Any) -> tuple[OpTypeRow, ...]:
    """Compare op histograms of the FP32 and the quantised GraphDef for quantisable op types.

    A node INC quantised is replaced by a ``Quantized*``/``_Quantized*`` node, so the plain op
    type's count drops; what is left of it ran in FP32.
    """
    count_before: dict[str, int] = {}
    for node in before.node:
        if node.op in QUANTIZABLE_OPS:
            count_before[node.op] = count_before.get(node.op, 0) + 1
    count_after: dict[str, int] = {}
    for node in after.node:
        if node.op in count_before:
            count_after[node.op] = count_after.get(node.op, 0) + 1
    rows = []
    for op in QUANTIZABLE_OPS:
        total = count_before.get(op, 0)
        if total:
            kept = min(total, count_after.get(op, 0))
            rows.append(OpTypeRow(op, total, total - kept, kept))
    return tuple(rows)


def int8_ops(graph_def: Any) -> dict[str, int]:
    """Histogram of the quantised op types (``Quantized*``, ``_Quantized*``...) in a GraphDef."""
    counts: dict[str, int] = {}
    for node in graph_def.node:
        if is_quantized_op(node.op):
            counts[node.op] = counts.get(node.op, 0) + 1
    return dict(sorted(counts.items()))


def _is_bf16(node: Any) -> bool:
    return "T" in node.attr and node.attr["T"].type == _DT_BFLOAT16


def bf16_ops(graph_def: Any) -> dict[str, int]:
    """The ops that compute in bfloat16 (their ``T`` attribute), read from the graph, plus `BF16_CAST`."""
    counts: dict[str, int] = {}
    for node in graph_def.node:
        if _is_bf16(node):
            counts[node.op] = counts.get(node.op, 0) + 1
    casts = sum(1 for n in graph_def.node if n.op == "Cast" and n.attr["DstT"].type == _DT_BFLOAT16)
    out = dict(sorted(counts.items()))
    if casts:
        out[BF16_CAST] = casts
    return out


def bf16_op_table(before: Any, after: Any) -> tuple[OpTypeRow, ...]:
    """Per op type that runs in bfloat16 after the rewrite: nodes in the FP32 graph, how many are BF16 now."""
    converted = {op: n for op, n in bf16_ops(after).items() if op != BF16_CAST}
    totals: dict[str, int] = {}
    for node in before.node:
        if node.op in converted:
            totals[node.op] = totals.get(node.op, 0) + 1
    rows = []
    for op, n in converted.items():
        total = max(totals.get(op, 0), n)
        rows.append(OpTypeRow(op, total, n, total - n))
    return tuple(sorted(rows, key=lambda r: (-r.quantized, r.op)))


@dataclass(frozen=True)
class QuantizationResult(TextTable):
    """The outcome of `tfcpu.Quantizer.run()`.

    Attributes:
        model: the quantised Model (same inputs/outputs as the input); the FP32 model
            unchanged when ``quantized`` is False.
        quantized: whether any op runs in INT8 (or the graph was rewritten to BF16).
        precision: ``"int8"``, ``"bf16"`` or ``"fp32"`` (nothing was quantised).
        op_types: per quantisable op type, quantised vs kept in FP32.
        quantized_ops: histogram of the INT8 op types in the new graph (BF16: the op types whose ``T``
            is bfloat16, and ``"Cast->bfloat16"``: the casts inserted), read from the graph.
        kept_fp32_nodes: nodes the accuracy-driven loop forced back to FP32.
        fp32_metric / int8_metric: the user's evaluation (higher is better), when given.
        top1_agreement: share of calibration samples whose arg-max agrees, FP32 vs INT8
            (rank-2 outputs with more than one class); None when not measured.
        max_abs_diff: largest absolute output difference on the calibration data.
        cosine: the lowest output cosine similarity with FP32 on the same data.
        matmul_flop_share: the share of MatMul/BatchMatMul/Einsum/Conv2D FLOPs that run in INT8
            (None when the graph has none, or when a function call the count cannot look into
            holds some), at the calibration batch's shapes.
        calibration: what the calibration used.
        optimized: whether the graph that was quantised came out of GraphOptimizer (here, or before).
        optimization: the GraphOptimizer run this call made (None when it made none: ``.optimize(False)``,
            or the model was already optimised, see ``Model.optimized_with``).
        requested: the precision the plan asked for (``precision`` says what the graph got).
        fast_int8_hardware: the CPU has VNNI or AMX (otherwise INT8 gains are smaller and model-dependent).
        trials: the attempts of the accuracy-driven loop.
        warnings: everything the user should know (also logged).
        seconds: wall time of run().
    """

    model: Model
    quantized: bool
    precision: str
    op_types: tuple[OpTypeRow, ...] = ()
    quantized_ops: dict[str, int] = field(default_factory=dict)
    kept_fp32_nodes: tuple[str, ...] = ()
    fp32_metric: float | None = None
    int8_metric: float | None = None
    tolerance: float | None = None
    top1_agreement: float | None = None
    max_abs_diff: float | None = None
    cosine: float | None = None
    matmul_flop_share: float | None = None
    calibration: Calibration | None = None
    optimized: bool = False
    fast_int8_hardware: bool = False
    onednn_enabled: bool | None = None
    inc_version: str | None = None
    trials: tuple[Trial, ...] = ()
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0
    optimization: OptimizationResult | None = None
    requested: str = "int8"

    @property
    def relative_loss(self) -> float | None:
        """(FP32 − INT8) / |FP32| of the user's metric, when both were measured."""
        if self.fp32_metric is None or self.int8_metric is None or self.fp32_metric == 0:
            return None
        return (self.fp32_metric - self.int8_metric) / abs(self.fp32_metric)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (the model as its signature and op histogram, not the weights)."""
        return {
            "model": self.model.to_dict(),
            "quantized": self.quantized,
            "precision": self.precision,
            "op_types": [r.to_dict() for r in self.op_types],
            "quantized_ops": dict(self.quantized_ops),
            "kept_fp32_nodes": list(self.kept_fp32_nodes),
            "fp32_metric": self.fp32_metric,
            "int8_metric": self.int8_metric,
            "relative_loss": self.relative_loss,
            "tolerance": self.tolerance,
            "top1_agreement": self.top1_agreement,
            "max_abs_diff": self.max_abs_diff,
            "cosine": self.cosine,
            "matmul_flop_share": self.matmul_flop_share,
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "optimized": self.optimized,
            "fast_int8_hardware": self.fast_int8_hardware,
            "onednn_enabled": self.onednn_enabled,
            "inc_version": self.inc_version,
            "trials": [t.to_dict() for t in self.trials],
            "warnings": list(self.warnings),
            "seconds": self.seconds,
            "optimization": None if self.optimization is None else self.optimization.to_dict(),
            "requested": self.requested,
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuantizationResult:
        """A loaded report from `to_dict` data. Its ``model`` is a `tfcpu.graph.model.ModelRecord`
        (signature and op histogram, ``graph_def`` None): a loaded report, not a runnable model.

        Args:
            data: what `to_dict` returned (after a JSON round trip).

        Raises:
            ConfigError: ``data`` is not a QuantizationResult record.
        """
        from tfcpu.graph._result import OptimizationResult

        def number(key: str) -> float | None:
            value = data[key]
            return None if value is None else float(value)

        try:
            calibration, optimization = data["calibration"], data["optimization"]
            return cls(
                model=Model.from_dict(data["model"]),
                quantized=bool(data["quantized"]),
                precision=str(data["precision"]),
                op_types=tuple(OpTypeRow.from_dict(r) for r in data["op_types"]),
                quantized_ops={str(k): int(v) for k, v in data["quantized_ops"].items()},
                kept_fp32_nodes=tuple(str(n) for n in data["kept_fp32_nodes"]),
                fp32_metric=number("fp32_metric"),
                int8_metric=number("int8_metric"),
                tolerance=number("tolerance"),
                top1_agreement=number("top1_agreement"),
                max_abs_diff=number("max_abs_diff"),
                cosine=number("cosine"),
                matmul_flop_share=number("matmul_flop_share") if "matmul_flop_share" in data else None,
                calibration=None if calibration is None else Calibration.from_dict(calibration),
                optimized=bool(data["optimized"]),
                fast_int8_hardware=bool(data["fast_int8_hardware"]),
                onednn_enabled=data["onednn_enabled"],
                inc_version=data["inc_version"],
                trials=tuple(Trial.from_dict(t) for t in data["trials"]),
                warnings=tuple(str(w) for w in data["warnings"]),
                seconds=float(data["seconds"]),
                optimization=None if optimization is None else OptimizationResult.from_dict(optimization),
                requested=str(data["requested"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError("not a QuantizationResult record", why=f"{type(exc).__name__}: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> QuantizationResult:
        return cls.from_dict(json.loads(text))

    # -- rendering ------------------------------------------------------------------------
    @property
    def _label(self) -> str:
        return "BF16" if self.requested == "bf16" else "INT8"

    @property
    def _columns(self) -> tuple[str, ...]:
        return ("op type", "nodes", self._label, "kept FP32")

    @property
    def _title(self) -> str:
        what = "BF16 conversion" if self.requested == "bf16" else "INT8 quantisation"
        return f"{what} of {self.model.source}"

    def _rows(self) -> list[list[Any]]:
        return [[r.op, r.total, r.quantized, r.kept_fp32] for r in self.op_types]

    def _lines(self) -> list[str]:
        lines = [f"precision: {self.precision} ({'quantised' if self.quantized else 'unchanged FP32 model'})"]
        if self.requested == "bf16" and self.quantized_ops.get(BF16_CAST):
            lines.append(f"casts to bfloat16 inserted: {self.quantized_ops[BF16_CAST]}")
        if self.calibration is not None:
            c = self.calibration
            lines.append(
                f"calibration: {c.source}, {c.batches} batches of {c.batch_size} ({c.samples} samples)"
                + (" — synthetic: accuracy numbers are meaningless" if c.synthetic else "")
            )
            lines.extend(f"synthetic calibration assumed {a}" for a in c.assumed)
        if self.fp32_metric is not None:
            loss = self.relative_loss
            int8 = "n/a" if self.int8_metric is None else f"{self.int8_metric:.4g}"
            text = f"metric: FP32 {self.fp32_metric:.4g} → INT8 {int8}"
            if loss is not None:
                text += f" (relative loss {loss:.2%}"
                text += f", tolerance {self.tolerance:.2%})" if self.tolerance is not None else ")"
            lines.append(text)
        if self.top1_agreement is not None:
            lines.append(f"top-1 agreement with FP32 on the calibration data: {self.top1_agreement:.2%}")
        if self.max_abs_diff is not None:
            lines.append(f"max abs output difference: {self.max_abs_diff:.4g}")
        if self.cosine is not None:
            lines.append(f"output cosine similarity with FP32: {self.cosine:.6f}")
        if self.matmul_flop_share is not None:
            lines.append(f"INT8 share of MatMul/Einsum/Conv FLOPs: {self.matmul_flop_share:.1%}")
        if self.kept_fp32_nodes:
            lines.append(f"kept in FP32 for accuracy: {', '.join(self.kept_fp32_nodes)}")
        optimised = "no"
        if self.optimized:
            optimised = "yes" if self.optimization is not None else "yes (before Quantizer.run; not again)"
        lines.append(f"graph optimised first: {optimised}; time {self.seconds:.1f} s")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return lines

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        from tfcpu._render import rich_table

        return Group(
            rich_table(self._title, self._columns, self._rows()),
            *(Text(line) for line in self._lines()),
        )

    def _repr_html_(self) -> str:
        import html

        from tfcpu._render import html_table

        body = "".join(f"<li>{html.escape(line)}</li>" for line in self._lines())
        return html_table(self._title, self._columns, self._rows()) + f"<ul>{body}</ul>"
