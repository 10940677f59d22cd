"""Which layers drift most between the FP32 and the INT8 graph (issue 27).

When the INT8 outputs agree poorly with FP32 (cosine below `DRIFT_COSINE`), the quantiser compares
the intermediate tensors the two graphs share: every node of the FP32 graph whose name is still in
the INT8 graph, with a float output there too (INC keeps the names of the nodes it leaves in float
and of the dequantised outputs it rewires), is fetched from both on the same batches through the one
comparator. The tensors whose agreement is worst (lowest cosine, then largest relative error) are
named, with the fix: real calibration data, or keeping those layers in FP32 (the INT8 fallback:
``.evaluate(fn).tolerance(...)`` keeps compute nodes in FP32 one by one).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from tfcpu.graph.model import Model, TensorSpec

__all__ = ["DRIFT_COSINE", "Drift", "drift_warning", "layer_drift"]

log = logging.getLogger("tfcpu.quantize.quantizer")

#: Below this output cosine the quantiser names the layers that drift most.
DRIFT_COSINE = 0.99
#: At most this many shared tensors are compared (spread over the graph in order).
MAX_PROBES = 400
_SKIP = frozenset({"Const", "Placeholder", "Identity", "NoOp", "Shape", "Pack", "StridedSlice", "Reshape",
                   "ConcatV2", "Prod", "GatherV2", "Fill", "Range", "Cast", "ExpandDims", "Squeeze"})  # fmt: skip
_FLOAT = 1  # DT_FLOAT


@dataclass(frozen=True)
class Drift:
    """One shared tensor, FP32 vs INT8: its op, cosine and normwise max relative error."""

    tensor: str
    op: str
    cosine: float | None
    max_rel: float

    def line(self) -> str:
        cos = "-" if self.cosine is None else f"{self.cosine:.4f}"
        return f"{self.tensor} ({self.op}): cosine {cos}, max rel error {self.max_rel:.3g}"


def _float_out(node: Any) -> bool:
    for key in ("T", "dtype", "out_type"):
        if key in node.attr:
            return bool(node.attr[key].type == _FLOAT)
    return False


def _shared(fp32: Model, int8: Model) -> list[TensorSpec]:
    int8_nodes = {n.name: n for n in int8.graph_def.node}
    outputs = {s.node for s in fp32.outputs}
    found = []
    for node in fp32.graph_def.node:
        other = int8_nodes.get(node.name)
        if node.op in _SKIP or other is None or node.name in outputs:
            continue
        if "Quantize" in other.op or not (_float_out(node) and _float_out(other)):
            continue
        found.append(TensorSpec(f"{node.name}:0", "float32", None, node.op))
    if len(found) > MAX_PROBES:
        step = len(found) / MAX_PROBES
        found = [found[int(i * step)] for i in range(MAX_PROBES)]
    return found


def layer_drift(
    fp32: Model, int8: Model, batches: list[dict[str, Any]], *, in_child: bool, top: int = 5
) -> list[Drift]:
    """The ``top`` shared tensors whose INT8 values agree worst with FP32 on ``batches``."""
    from dataclasses import replace

    from tfcpu.quantize.quantizer import _agreement

    probes = _shared(fp32, int8)
    if not probes:
        return []
    comparison = _agreement(
        replace(fp32, outputs=tuple(probes)), replace(int8, outputs=tuple(probes)), batches, "int8", in_child=in_child
    )
    ops = {p.name: p.op for p in probes}
    items = [
        Drift(o.name, ops.get(o.name, ""), o.cosine, o.max_rel)
        for o in comparison.outputs
        if not o.degenerate and o.scale > 0
    ]
    items.sort(key=lambda d: (1.0 if d.cosine is None else d.cosine, -d.max_rel))
    return items[:top]


def drift_warning(cosine: float, drifts: list[Drift], *, synthetic: bool) -> str:
    """The warning a low agreement gives: the layers that drift most and what to do."""
    text = f"INT8 agrees poorly with FP32 (output cosine {cosine:.4f} < {DRIFT_COSINE})"
    if drifts:
        text += "; the layers that drift most: " + "; ".join(d.line() for d in drifts)
    fixes = []
    if synthetic:
        fixes.append("calibrate with real inputs (.calibrate(array or FILE.npz) / --calibration FILE.npz)")
    else:
        fixes.append("calibrate with more, or more representative, data")
    fixes.append(
        "keep the drifting layers in FP32 (the INT8 fallback: .evaluate(fn).tolerance(relative_loss) tries "
        "compute nodes in FP32 one by one), or .int8(algorithm='kl')"
    )
    return text + "; fix: " + ", or ".join(fixes)
