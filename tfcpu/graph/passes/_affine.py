"""Folding per-channel affine chains into the weights of the linear op before them.

Shared by `fold_old_batch_norms` and `fold_batch_norms`. A *linear op* is
``Conv2D``, ``DepthwiseConv2dNative`` or ``MatMul`` with constant weights. Its output
``z`` may be followed by a chain of single-consumer per-channel affine ops, each of which
maps ``x -> s * x + t`` channel by channel:

=========================================  =============================================
op                                          s, t (per output channel)
=========================================  =============================================
``BiasAdd(x, c)``, ``Add/AddV2(x, c)``      1, c
``Sub(x, c)``                               1, -c
``Mul(x, c)``                               c, 0
``RealDiv(x, c)``                           1/c, 0
``FusedBatchNorm[V2|V3](x, g, b, m, v)``    g / sqrt(v + eps), b - m * s  (is_training=false)
``BatchNormWithGlobalNormalization``        [gamma] / sqrt(v + eps), beta - m * s
=========================================  =============================================

Composing the chain gives ``y = A * z + B``. Because the linear op is linear in its weights
per output channel, ``A * conv(x, W) = conv(x, W * A)`` (``W * A`` scales the output-channel
axis: HWIO's O for Conv2D, ``in * multiplier`` for DepthwiseConv2dNative, the output column
of MatMul), so the chain is replaced by ``BiasAdd(conv(x, W * A), B)``: the scale goes into
the weights and the whole shift into ONE BiasAdd that keeps the name of the chain's last
node (consumers and protected outputs stay valid).

Stops/skips: the weights are not a constant (possibly behind Identity), the weights feed
other nodes too (shared), a node in the chain has other consumers or is a model output, a
constant is not per-channel for the layout (NHWC channel last, NCHW channel axis 1), a batch
norm is in training mode or its other outputs are read, data formats differ, or the dtype is
not floating point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tfcpu.graph._graphdef import (
    GraphIndex,
    const_array,
    control_inputs,
    data_inputs,
    parse_input,
    set_const_value,
    unique_name,
)
from tfcpu.graph.passes._base import Outcome, PassContext
from tfcpu.graph.passes._edit import drop_nodes, prune_dead

LINEAR_OPS = ("Conv2D", "DepthwiseConv2dNative", "MatMul")
FUSED_BN = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
OLD_BN = (*FUSED_BN, "BatchNormWithGlobalNormalization")
AFFINE_OPS = ("BiasAdd", "Add", "AddV2", "Sub", "Mul", "RealDiv", *OLD_BN)


class _Stop(Exception):
    """The chain ends here; ``reason`` is why (reported when the node was a target)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Linear:
    node: Any
    weights: Any  # the Const node holding the weights
    channels: int
    layout: str  # "NHWC" or "NCHW"
    rank: int
    dtype: Any = None
    path: list[str] = field(default_factory=list)  # weight Const plus Identity nodes in between


def _resolve_const(index: GraphIndex, text: str) -> tuple[Any, list[str]] | None:
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


def _const_value(index: GraphIndex, text: str, what: str) -> Any:
    found = _resolve_const(index, text)
    if found is None:
        raise _Stop(f"{what} is not a constant (run fold_constants first)")
    return const_array(found[0])


def _linear(index: GraphIndex, node: Any, ctx: PassContext) -> _Linear:
    import numpy as np

    if node.name in ctx.protected:
        raise _Stop("its output is a model output")
    data = data_inputs(node)
    if len(data) != 2:
        raise _Stop(f"{node.op} has {len(data)} inputs")
    found = _resolve_const(index, data[1])
    if found is None:
        raise _Stop("weights are not a constant")
    const, path = found
    for name in path:
        users = index.data_consumers(name)  # a control edge does not read the value
        if len(users) != 1:
            others = sorted({u.name for u, _ in users if u.name not in path and u.name != node.name})
            raise _Stop(f"weights {path[-1]!r} are shared with {', '.join(others[:3]) or 'other nodes'}")
    weights = const_array(const)
    if not np.issubdtype(weights.dtype, np.floating):
        raise _Stop(f"weights have dtype {weights.dtype}, not floating point")
    if node.op == "MatMul":
        if weights.ndim != 2:
            raise _Stop("MatMul weights are not a matrix")
        channels = weights.shape[0] if node.attr["transpose_b"].b else weights.shape[1]
        return _Linear(node, const, int(channels), "NHWC", 2, weights.dtype, path)
    layout = node.attr["data_format"].s.decode() or "NHWC"
    if layout not in ("NHWC", "NCHW") or weights.ndim != 4:
        raise _Stop(f"unsupported layout {layout} / weight rank {weights.ndim}")
    # A depthwise filter [h, w, in, multiplier] makes in * multiplier output channels.
    depthwise = node.op == "DepthwiseConv2dNative"
    channels = weights.shape[2] * weights.shape[3] if depthwise else weights.shape[3]
    return _Linear(node, const, int(channels), layout, 4, weights.dtype, path)


def _per_channel(value: Any, lin: _Linear, what: str) -> Any:
    """Broadcast a constant to a (C,) vector, or stop if it is not per-channel for the layout."""
    import numpy as np

    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.floating):
        raise _Stop(f"{what} has dtype {array.dtype}")
    if array.ndim > lin.rank:
        raise _Stop(f"{what} of shape {array.shape} would broadcast the output to a higher rank")
    shape = (1,) * (lin.rank - array.ndim) + tuple(array.shape)
    axis = lin.rank - 1 if lin.layout == "NHWC" else 1
    for i, dim in enumerate(shape):
        if i != axis and dim != 1:
            raise _Stop(f"{what} of shape {array.shape} is not per-channel for {lin.layout}")
    if shape[axis] not in (1, lin.channels):
        raise _Stop(f"{what} has {shape[axis]} channels, the weights {lin.channels}")
    return np.broadcast_to(array.reshape(-1).astype(np.float64), (lin.channels,))


def _vector(value: Any, lin: _Linear, what: str) -> Any:
    """A batch-norm parameter or BiasAdd bias: a 1-D vector along the channel axis in any layout."""
    import numpy as np

    array = np.asarray(value)
    if array.ndim != 1 or array.shape[0] not in (1, lin.channels):
        raise _Stop(f"{what} has shape {array.shape}, expected ({lin.channels},)")
    if not np.issubdtype(array.dtype, np.floating):
        raise _Stop(f"{what} has dtype {array.dtype}")
    return np.broadcast_to(array.astype(np.float64), (lin.channels,))


def _step(index: GraphIndex, node: Any, source: str, lin: _Linear) -> tuple[Any, Any]:
    """(scale, shift) of one affine node whose data input is ``source``; scale may be None."""
    import numpy as np

    data = data_inputs(node)
    op = node.op
    if op in OLD_BN:
        if parse_input(data[0]) != parse_input(source):
            raise _Stop("the batch norm's input 0 is not the convolution")
        if any(r.index > 0 for _, r in index.data_consumers(node.name)):
            raise _Stop("batch-norm statistics outputs (y:1+) are read")
        if op in FUSED_BN:
            if node.attr["is_training"].b:
                raise _Stop("batch norm is in training mode (is_training=true)")
            layout = node.attr["data_format"].s.decode() or "NHWC"
            if lin.rank == 4 and layout != lin.layout:
                raise _Stop(f"batch norm layout {layout} differs from the convolution's {lin.layout}")
            gamma, beta, mean, var = (_const_value(index, t, f"{op} parameter") for t in data[1:5])
            eps = node.attr["epsilon"].f
        else:
            if lin.layout != "NHWC":
                raise _Stop("BatchNormWithGlobalNormalization is NHWC only")
            mean, var, beta, gamma = (_const_value(index, t, f"{op} parameter") for t in data[1:5])
            eps = node.attr["variance_epsilon"].f
            if not node.attr["scale_after_normalization"].b:
                gamma = np.ones_like(np.asarray(var))
        params = {"gamma": gamma, "beta": beta, "mean": mean, "var": var}
        vec = {k: _vector(v, lin, f"{op} {k}") for k, v in params.items()}
        scale = vec["gamma"] / np.sqrt(vec["var"] + float(eps))
        return scale, vec["beta"] - vec["mean"] * scale
    if len(data) != 2:
        raise _Stop(f"{op} has {len(data)} inputs")
    refs = [parse_input(t) for t in data]
    mine = parse_input(source)
    if refs[0] == mine:
        other, first = data[1], True
    elif refs[1] == mine and op in ("Add", "AddV2", "Mul"):
        other, first = data[0], False
    else:
        raise _Stop(f"{op} reads the convolution as its second operand")
    del first
    value = _const_value(index, other, f"{op} operand")
    if op == "BiasAdd":
        layout = node.attr["data_format"].s.decode() or "NHWC"
        if lin.rank == 4 and layout != lin.layout:
            raise _Stop(f"BiasAdd layout {layout} differs from the convolution's {lin.layout}")
        return None, _vector(value, lin, "BiasAdd bias")
    vec = _per_channel(value, lin, f"{op} operand")
    if op in ("Add", "AddV2"):
        return None, vec
    if op == "Sub":
        return None, -vec
    if op == "Mul":
        return vec, None
    if np.any(vec == 0):
        raise _Stop("RealDiv by a zero channel")
    return 1.0 / vec, None


def _targets_after(index: GraphIndex, node: Any, targets: tuple[str, ...]) -> list[str]:
    found: list[str] = []
    current = node
    for _ in range(16):
        users = index.data_consumers(current.name)
        if len(users) != 1 or users[0][0].op not in AFFINE_OPS:
            break
        current = users[0][0]
        if current.op in targets:
            found.append(current.name)
    return found


def fold_affine_chains(graph_def: Any, ctx: PassContext, targets: tuple[str, ...], out: Outcome) -> None:
    """Fold every chain after a linear op that contains at least one op in ``targets``."""
    import numpy as np

    index = GraphIndex(graph_def)
    reasons: dict[str, str] = {}
    folded_targets: set[str] = set()
    plans = []
    for node in list(graph_def.node):
        if node.op not in LINEAR_OPS:
            continue
        try:
            lin = _linear(index, node, ctx)
        except _Stop as stop:
            # Report the targets that follow (through affine ops); other convolutions are not our business.
            for target in _targets_after(index, node, targets):
                reasons.setdefault(target, f"{node.op} {node.name!r}: {stop.reason}")
            continue
        chain: list[Any] = []
        scale = np.ones(lin.channels)
        shift = np.zeros(lin.channels)
        current = node
        source = node.name
        while True:
            users = index.consumers.get(current.name, [])
            if current is not node and current.name in ctx.protected:
                break
            if len(users) != 1 or users[0][1].control or users[0][1].index != 0:
                if users and any(u.op in targets for u, _ in users) and len(users) > 1:
                    for u, _ in users:
                        if u.op in targets:
                            reasons.setdefault(u.name, f"{current.name!r} feeds {len(users)} nodes")
                break
            nxt = users[0][0]
            if nxt.op not in AFFINE_OPS:
                break
            try:
                s, t = _step(index, nxt, source, lin)
            except _Stop as stop:
                if nxt.op in targets:
                    reasons.setdefault(nxt.name, stop.reason)
                break
            if s is not None:
                scale, shift = scale * s, shift * s
            if t is not None:
                shift = shift + t
            chain.append(nxt)
            current = nxt
            source = nxt.name
        if not any(c.op in targets for c in chain):
            continue
        plans.append((lin, chain, scale, shift))

    names = set(index.nodes)
    removed: list[str] = []
    candidates: list[str] = []
    for lin, chain, scale, shift in plans:
        weights = const_array(lin.weights).astype(np.float64)
        if lin.node.op == "Conv2D":
            weights = weights * scale
        elif lin.node.op == "DepthwiseConv2dNative":
            _h, _w, cin, mult = weights.shape
            weights = weights * scale.reshape(cin, mult)
        elif lin.node.attr["transpose_b"].b:
            weights = weights * scale[:, None]
        else:
            weights = weights * scale
        set_const_value(lin.weights, weights.astype(lin.dtype))
        last = chain[-1]
        controls: list[str] = []
        chain_names = {c.name for c in chain}
        for c in chain:
            candidates.extend(parse_input(t).node for t in c.input)
            controls.extend(t for t in control_inputs(c) if t[1:] not in chain_names and t not in controls)
        bias_name = unique_name(names, f"{last.name}/folded_bias")
        names.add(bias_name)
        bias = graph_def.node.add()
        bias.name = bias_name
        bias.op = "Const"
        bias.device = last.device
        from tensorflow.python.framework import tensor_util

        proto = tensor_util.make_tensor_proto(shift.astype(lin.dtype))
        bias.attr["dtype"].type = proto.dtype
        bias.attr["value"].tensor.CopyFrom(proto)
        device = last.device
        name = last.name
        last.Clear()
        last.name = name
        last.op = "BiasAdd"
        last.device = device
        last.input.extend([lin.node.name, bias_name, *controls])
        last.attr["T"].type = lin.node.attr["T"].type
        last.attr["data_format"].s = lin.layout.encode()
        removed.extend(c.name for c in chain[:-1])
        folded_targets.update(c.name for c in chain if c.op in targets)
        out.changed.append(f"{lin.node.name} <- {', '.join(c.name for c in chain)}")
    drop_nodes(graph_def, removed)
    prune_dead(graph_def, [c for c in candidates if c not in removed], ctx.protected)
    for name, reason in reasons.items():
        if name not in folded_targets:
            out.skip(name, reason)
    for node in graph_def.node:
        if node.op in targets and node.op in OLD_BN and node.name not in reasons and node.name not in folded_targets:
            out.skip(node.name, "not after Conv2D/DepthwiseConv2dNative/MatMul (+ per-channel ops)")
