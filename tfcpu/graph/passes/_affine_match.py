"""Matching for `tfcpu.graph.passes._affine`: a linear op and the per-channel affine ops after it.

`linear()` reads the linear op (constant, unshared, floating-point weights, its layout
and channel count); `step()` reads one affine op as ``(scale, shift)`` per channel. Both
raise `Stop` with the reason a chain cannot be folded there, which the pass reports as
a skip. Nothing here edits the graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tfcpu.graph._graphdef import GraphIndex, const_array, data_inputs, parse_input
from tfcpu.graph.passes._base import PassContext

__all__ = [
    "AFFINE_OPS",
    "FUSED_BN",
    "LINEAR_OPS",
    "OLD_BN",
    "Linear",
    "Stop",
    "const_value",
    "linear",
    "resolve_const",
    "step",
]

LINEAR_OPS = ("Conv2D", "DepthwiseConv2dNative", "MatMul")
FUSED_BN = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
OLD_BN = (*FUSED_BN, "BatchNormWithGlobalNormalization")
AFFINE_OPS = ("BiasAdd", "Add", "AddV2", "Sub", "Mul", "RealDiv", *OLD_BN)


class Stop(Exception):
    """The chain ends here; ``reason`` is why (reported when the node was a target)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Linear:
    node: Any
    weights: Any  # the Const node holding the weights
    channels: int
    layout: str  # "NHWC" or "NCHW"
    rank: int
    dtype: Any = None
    path: list[str] = field(default_factory=list)  # weight Const plus Identity nodes in between


def resolve_const(index: GraphIndex, text: str) -> tuple[Any, list[str]] | None:
    """The Const behind ``text`` (following Identity nodes), and the names on the way."""
    path: list[str] = []
    node = index.producer(text)
    while node is not None and node.op == "Identity" and len(data_inputs(node)) == 1:
        path.append(node.name)
        node = index.producer(data_inputs(node)[0])
    if node is None or node.op != "Const":
        return None
    path.append(node.name)
    return node, path


def const_value(index: GraphIndex, text: str) -> Any | None:
    """The value (a numpy array) of the Const behind ``text`` (following Identity nodes), or None."""
    found = resolve_const(index, text)
    return None if found is None else const_array(found[0])


def _const_value(index: GraphIndex, text: str, what: str) -> Any:
    found = resolve_const(index, text)
    if found is None:
        raise Stop(f"{what} is not a constant (run fold_constants first)")
    return const_array(found[0])


def linear(index: GraphIndex, node: Any, ctx: PassContext) -> Linear:
    import numpy as np

    if node.name in ctx.protected:
        raise Stop("its output is a model output")
    data = data_inputs(node)
    if len(data) != 2:
        raise Stop(f"{node.op} has {len(data)} inputs")
    found = resolve_const(index, data[1])
    if found is None:
        raise Stop("weights are not a constant")
    const, path = found
    for name in path:
        users = index.data_consumers(name)  # a control edge does not read the value
        if len(users) != 1:
            others = sorted({u.name for u, _ in users if u.name not in path and u.name != node.name})
            raise Stop(f"weights {path[-1]!r} are shared with {', '.join(others[:3]) or 'other nodes'}")
    weights = const_array(const)
    if not np.issubdtype(weights.dtype, np.floating):
        raise Stop(f"weights have dtype {weights.dtype}, not floating point")
    if node.op == "MatMul":
        if weights.ndim != 2:
            raise Stop("MatMul weights are not a matrix")
        channels = weights.shape[0] if node.attr["transpose_b"].b else weights.shape[1]
        return Linear(node, const, int(channels), "NHWC", 2, weights.dtype, path)
    layout = node.attr["data_format"].s.decode() or "NHWC"
    if layout not in ("NHWC", "NCHW") or weights.ndim != 4:
        raise Stop(f"unsupported layout {layout} / weight rank {weights.ndim}")
    # A depthwise filter [h, w, in, multiplier] makes in * multiplier output channels.
    depthwise = node.op == "DepthwiseConv2dNative"
    channels = weights.shape[2] * weights.shape[3] if depthwise else weights.shape[3]
    return Linear(node, const, int(channels), layout, 4, weights.dtype, path)


def _per_channel(value: Any, lin: Linear, what: str) -> Any:
    """Broadcast a constant to a (C,) vector, or stop if it is not per-channel for the layout."""
    import numpy as np

    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.floating):
        raise Stop(f"{what} has dtype {array.dtype}")
    if array.ndim > lin.rank:
        raise Stop(f"{what} of shape {array.shape} would broadcast the output to a higher rank")
    shape = (1,) * (lin.rank - array.ndim) + tuple(array.shape)
    axis = lin.rank - 1 if lin.layout == "NHWC" else 1
    for i, dim in enumerate(shape):
        if i != axis and dim != 1:
            raise Stop(f"{what} of shape {array.shape} is not per-channel for {lin.layout}")
    if shape[axis] not in (1, lin.channels):
        raise Stop(f"{what} has {shape[axis]} channels, the weights {lin.channels}")
    return np.broadcast_to(array.reshape(-1).astype(np.float64), (lin.channels,))


def _vector(value: Any, lin: Linear, what: str) -> Any:
    """A batch-norm parameter or BiasAdd bias: a 1-D vector along the channel axis in any layout."""
    import numpy as np

    array = np.asarray(value)
    if array.ndim != 1 or array.shape[0] not in (1, lin.channels):
        raise Stop(f"{what} has shape {array.shape}, expected ({lin.channels},)")
    if not np.issubdtype(array.dtype, np.floating):
        raise Stop(f"{what} has dtype {array.dtype}")
    return np.broadcast_to(array.astype(np.float64), (lin.channels,))


def _batch_norm_step(index: GraphIndex, node: Any, source: str, lin: Linear) -> tuple[Any, Any]:
    """(scale, shift) of a FusedBatchNorm* / BatchNormWithGlobalNormalization in inference mode."""
    import numpy as np

    data = data_inputs(node)
    op = node.op
    if parse_input(data[0]) != parse_input(source):
        raise Stop("the batch norm's input 0 is not the convolution")
    if any(r.index > 0 for _, r in index.data_consumers(node.name)):
        raise Stop("batch-norm statistics outputs (y:1+) are read")
    if op in FUSED_BN:
        if node.attr["is_training"].b:
            raise Stop("batch norm is in training mode (is_training=true)")
        layout = node.attr["data_format"].s.decode() or "NHWC"
        if lin.rank == 4 and layout != lin.layout:
            raise Stop(f"batch norm layout {layout} differs from the convolution's {lin.layout}")
        gamma, beta, mean, var = (_const_value(index, t, f"{op} parameter") for t in data[1:5])
        eps = node.attr["epsilon"].f
    else:
        if lin.layout != "NHWC":
            raise Stop("BatchNormWithGlobalNormalization is NHWC only")
        mean, var, beta, gamma = (_const_value(index, t, f"{op} parameter") for t in data[1:5])
        eps = node.attr["variance_epsilon"].f
        if not node.attr["scale_after_normalization"].b:
            gamma = np.ones_like(np.asarray(var))
    params = {"gamma": gamma, "beta": beta, "mean": mean, "var": var}
    vec = {k: _vector(v, lin, f"{op} {k}") for k, v in params.items()}
    scale = vec["gamma"] / np.sqrt(vec["var"] + float(eps))
    return scale, vec["beta"] - vec["mean"] * scale


def _binary_step(index: GraphIndex, node: Any, source: str, lin: Linear) -> tuple[Any, Any]:
    """(scale, shift) of BiasAdd/Add/AddV2/Sub/Mul/RealDiv with a constant per-channel operand."""
    import numpy as np

    data = data_inputs(node)
    op = node.op
    if len(data) != 2:
        raise Stop(f"{op} has {len(data)} inputs")
    refs = [parse_input(t) for t in data]
    mine = parse_input(source)
    if refs[0] == mine:
        other = data[1]
    elif refs[1] == mine and op in ("Add", "AddV2", "Mul"):
        other = data[0]
    else:
        raise Stop(f"{op} reads the convolution as its second operand")
    value = _const_value(index, other, f"{op} operand")
    if op == "BiasAdd":
        layout = node.attr["data_format"].s.decode() or "NHWC"
        if lin.rank == 4 and layout != lin.layout:
            raise Stop(f"BiasAdd layout {layout} differs from the convolution's {lin.layout}")
        return None, _vector(value, lin, "BiasAdd bias")
    vec = _per_channel(value, lin, f"{op} operand")
    if op in ("Add", "AddV2"):
        return None, vec
    if op == "Sub":
        return None, -vec
    if op == "Mul":
        return vec, None
    if np.any(vec == 0):
        raise Stop("RealDiv by a zero channel")
    return 1.0 / vec, None


def step(index: GraphIndex, node: Any, source: str, lin: Linear) -> tuple[Any, Any]:
    """(scale, shift) of one affine node whose data input is ``source``; either may be None."""
    if node.op in OLD_BN:
        return _batch_norm_step(index, node, source, lin)
    return _binary_step(index, node, source, lin)
