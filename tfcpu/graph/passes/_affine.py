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

Structure: `._affine_match` reads a linear op and each affine step (or raises ``Stop``
with the skip reason); `plan_chain()` turns one chain into an `AffinePlan` (or
records why not); `apply_plan()` rewrites the graph with ``make_const``. Matching
finishes for the whole graph before anything is rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tfcpu.graph._graphdef import (
    GraphIndex,
    const_array,
    control_inputs,
    make_const,
    parse_input,
    set_const_value,
    unique_name,
)
from tfcpu.graph.passes._affine_match import AFFINE_OPS, FUSED_BN, LINEAR_OPS, OLD_BN, Linear, Stop, linear, step
from tfcpu.graph.passes._base import Outcome, PassContext
from tfcpu.graph.passes._edit import drop_nodes, prune_dead

__all__ = ["AFFINE_OPS", "FUSED_BN", "LINEAR_OPS", "OLD_BN", "AffinePlan", "fold_affine_chains", "plan_chain"]


@dataclass(frozen=True)
class AffinePlan:
    """What folding one chain does: the linear op, the chain after it, and ``y = scale * z + shift``."""

    lin: Linear
    chain: tuple[Any, ...]
    scale: Any
    shift: Any


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


def _next_affine(index: GraphIndex, current: Any, first: Any, ctx: PassContext, targets: tuple[str, ...],
                 reasons: dict[str, str]) -> Any:  # fmt: skip
    """The single affine consumer that continues the chain after ``current``, or None."""
    users = index.consumers.get(current.name, [])
    if current is not first and current.name in ctx.protected:
        return None
    if len(users) != 1 or users[0][1].control or users[0][1].index != 0:
        if len(users) > 1:
            for user, _ in users:
                if user.op in targets:
                    reasons.setdefault(user.name, f"{current.name!r} feeds {len(users)} nodes")
        return None
    nxt = users[0][0]
    return nxt if nxt.op in AFFINE_OPS else None


def plan_chain(
    index: GraphIndex, node: Any, ctx: PassContext, targets: tuple[str, ...], reasons: dict[str, str]
) -> AffinePlan | None:
    """Match the chain after linear op ``node``: a plan, or None with skip reasons added to ``reasons``."""
    import numpy as np

    try:
        lin = linear(index, node, ctx)
    except Stop as stop:
        # Report the targets that follow (through affine ops); other convolutions are not our business.
        for target in _targets_after(index, node, targets):
            reasons.setdefault(target, f"{node.op} {node.name!r}: {stop.reason}")
        return None
    chain: list[Any] = []
    scale, shift = np.ones(lin.channels), np.zeros(lin.channels)
    current = node
    while (nxt := _next_affine(index, current, node, ctx, targets, reasons)) is not None:
        try:
            s, t = step(index, nxt, current.name, lin)
        except Stop as stop:
            if nxt.op in targets:
                reasons.setdefault(nxt.name, stop.reason)
            break
        if s is not None:
            scale, shift = scale * s, shift * s
        if t is not None:
            shift = shift + t
        chain.append(nxt)
        current = nxt
    if not any(c.op in targets for c in chain):
        return None
    return AffinePlan(lin, tuple(chain), scale, shift)


def _scaled_weights(plan: AffinePlan) -> Any:
    import numpy as np

    lin, scale = plan.lin, plan.scale
    weights = const_array(lin.weights).astype(np.float64)
    if lin.node.op == "Conv2D":
        return weights * scale
    if lin.node.op == "DepthwiseConv2dNative":
        _h, _w, cin, mult = weights.shape
        return weights * scale.reshape(cin, mult)
    if lin.node.attr["transpose_b"].b:
        return weights * scale[:, None]
    return weights * scale


def apply_plan(graph_def: Any, plan: AffinePlan, names: set[str]) -> list[str]:
    """Scale the weights, turn the chain's last node into ``BiasAdd(linear, shift)``; the inputs to prune."""
    lin, chain = plan.lin, plan.chain
    set_const_value(lin.weights, _scaled_weights(plan).astype(lin.dtype))
    last = chain[-1]
    candidates: list[str] = []
    controls: list[str] = []
    chain_names = {c.name for c in chain}
    for c in chain:
        candidates.extend(parse_input(t).node for t in c.input)
        controls.extend(t for t in control_inputs(c) if t[1:] not in chain_names and t not in controls)
    bias_name = unique_name(names, f"{last.name}/folded_bias")
    names.add(bias_name)
    make_const(graph_def, bias_name, plan.shift.astype(lin.dtype), device=last.device)
    device, name = last.device, last.name
    last.Clear()
    last.name = name
    last.op = "BiasAdd"
    last.device = device
    last.input.extend([lin.node.name, bias_name, *controls])
    last.attr["T"].type = lin.node.attr["T"].type
    last.attr["data_format"].s = lin.layout.encode()
    return candidates


def fold_affine_chains(graph_def: Any, ctx: PassContext, targets: tuple[str, ...], out: Outcome) -> None:
    """Fold every chain after a linear op that contains at least one op in ``targets``."""
    index = GraphIndex(graph_def)
    reasons: dict[str, str] = {}
    plans = [
        p for n in list(graph_def.node) if n.op in LINEAR_OPS and (p := plan_chain(index, n, ctx, targets, reasons))
    ]
    names = set(index.nodes)
    removed: list[str] = []
    candidates: list[str] = []
    folded_targets: set[str] = set()
    for plan in plans:
        candidates.extend(apply_plan(graph_def, plan, names))
        removed.extend(c.name for c in plan.chain[:-1])
        folded_targets.update(c.name for c in plan.chain if c.op in targets)
        out.changed.append(f"{plan.lin.node.name} <- {', '.join(c.name for c in plan.chain)}")
    drop_nodes(graph_def, removed)
    prune_dead(graph_def, [c for c in candidates if c not in removed], ctx.protected)
    for name, reason in reasons.items():
        if name not in folded_targets:
            out.skip(name, reason)
    for node in graph_def.node:
        if node.op in targets and node.op in OLD_BN and node.name not in reasons and node.name not in folded_targets:
            out.skip(node.name, "not after Conv2D/DepthwiseConv2dNative/MatMul (+ per-channel ops)")
