"""``fuse_layer_norm``: spell Keras 3's LayerNormalization the way TF's remapper fuses it.

Requires: ``fold_constants`` (gamma/beta must be Consts). Ensures: every matched LayerNorm reads
``x * m + (beta - mean * m)`` with ``m = Rsqrt(var + eps) * gamma``, 1-D gamma/beta and a
non-negative reduction axis.

TensorFlow 2.21 has ``_MklLayerNorm`` in oneDNN builds only (with ``TF_ENABLE_ONEDNN_OPTS=0`` no
kernel runs it), so a frozen graph must not name it. Its Grappler remapper rewrites the
*tf_keras* spelling into it at run time when oneDNN is on; Keras 3 writes the same maths as

    add_2 = x * m + (Neg(mean) * m + beta),   mean/variance = Mean(..., axis=[-1])

which it does not match (measured: 0 of 4 LayerNorms of the Keras 3 encoder fuse, 4 of 4 after
this pass). Measured too: the fused op computes with epsilon 1e-3 whatever the graph's epsilon
is (a LayerNorm with epsilon 1e-6 fused this way is off by ~1e-3 relative), so only
LayerNorms with Keras's default epsilon 1e-3 are rewritten. The pass rewrites them into
``AddV2(Mul(x, m), Sub(beta, Mul(mean, m)))``, stores gamma/beta of shape ``[1, .., 1, C]`` as
``[C]`` and the reduction axis ``-1`` as ``rank - 1``.

Maths: ``(-a) * b = -(a * b)`` and ``-(ab) + beta = beta - ab`` hold exactly in IEEE arithmetic
(negation is exact, addition commutes), broadcasting ``[C]`` against ``[..., C]`` equals
broadcasting ``[1, 1, C]``, and axis ``-1`` is axis ``rank - 1``: the result is bit-for-bit the
same, with or without oneDNN.

Skips (reported): an epsilon other than 1e-3, an Rsqrt chain that does not have this
structure (e.g. tf_keras's, which the remapper already fuses), an input of unknown rank.
"""

from __future__ import annotations

from typing import Any

from tfcpu.graph._graphdef import GraphIndex, const_array, data_inputs, make_const, parse_input, unique_name
from tfcpu.graph.passes._base import Outcome, PassContext, register_pass
from tfcpu.graph.passes._edit import prune_dead
from tfcpu.graph.passes._shapes import Static, infer, key


class _NoMatch(Exception):
    pass


def _one(index: GraphIndex, name: str, op: str) -> Any:
    users = [u for u, _ in index.data_consumers(name)]
    if len(users) != 1 or users[0].op != op:
        raise _NoMatch(f"{name} is not read by exactly one {op}")
    return users[0]


def _other(node: Any, name: str) -> str:
    ins = data_inputs(node)
    if len(ins) != 2 or name not in {parse_input(t).node for t in ins}:
        raise _NoMatch(f"{node.name} does not read {name}")
    return str(ins[1] if parse_input(ins[0]).node == name else ins[0])


def _vector(index: GraphIndex, text: str, what: str) -> Any:
    node = index.producer(text)
    if node is None or node.op != "Const":
        raise _NoMatch(f"{what} is not a constant")
    value = const_array(node)
    if value.ndim == 0 or any(d != 1 for d in value.shape[:-1]):
        raise _NoMatch(f"{what} of shape {value.shape} is not per-channel")
    return value.reshape(-1)


REMAPPER_EPSILON = 1e-3


def _epsilon(index: GraphIndex, rsqrt: Any) -> float | None:
    add = index.producer(data_inputs(rsqrt)[0])
    for text in data_inputs(add) if add is not None else []:
        node = index.producer(text)
        if node is not None and node.op == "Const" and const_array(node).size == 1:
            return float(const_array(node).reshape(-1)[0])
    return None


def _moments(index: GraphIndex, rsqrt: Any) -> tuple[Any, Any, str]:
    """(mean, variance, x) of ``Rsqrt(Mean(SquaredDifference(x, StopGradient(Mean(x)))) + eps)``."""
    add = index.producer(data_inputs(rsqrt)[0])
    if add is None or add.op not in ("AddV2", "Add"):
        raise _NoMatch("Rsqrt does not read var + eps")
    means = [index.producer(t) for t in data_inputs(add)]
    variance = next((m for m in means if m is not None and m.op == "Mean"), None)
    if variance is None:
        raise _NoMatch("no variance Mean")
    sqd = index.producer(data_inputs(variance)[0])
    if sqd is None or sqd.op != "SquaredDifference":
        raise _NoMatch("the variance is not Mean(SquaredDifference)")
    x, centre = data_inputs(sqd)
    stop = index.producer(centre)
    mean = index.producer(data_inputs(stop)[0]) if stop is not None and stop.op == "StopGradient" else stop
    if mean is None or mean.op != "Mean" or parse_input(data_inputs(mean)[0]) != parse_input(x):
        raise _NoMatch("the centre is not Mean(x)")
    return mean, variance, str(x)


def _match(index: GraphIndex, rsqrt: Any) -> dict[str, Any]:
    mean, variance, x = _moments(index, rsqrt)
    eps = _epsilon(index, rsqrt)
    if eps is None or abs(eps - REMAPPER_EPSILON) > 1e-9:
        raise _NoMatch(
            f"epsilon {eps}: TF 2.21's fused _MklLayerNorm computes with epsilon {REMAPPER_EPSILON} whatever the "
            "graph says (measured), so this LayerNorm stays as written to keep its numbers"
        )
    scale = _one(index, rsqrt.name, "Mul")
    gamma = _vector(index, _other(scale, rsqrt.name), "gamma")
    users = [u for u, _ in index.data_consumers(scale.name)]
    if len(users) != 2 or any(u.op != "Mul" for u in users):
        raise _NoMatch("Rsqrt * gamma is not read by two Muls (tf_keras's form, which the remapper fuses as it is?)")
    neg_side = [u for u in users if getattr(index.producer(_other(u, scale.name)), "op", "") == "Neg"]
    x_side = [u for u in users if parse_input(_other(u, scale.name)) == parse_input(x)]
    if len(neg_side) != 1 or len(x_side) != 1:
        raise _NoMatch("not x * m and Neg(mean) * m")
    neg = index.producer(_other(neg_side[0], scale.name))
    if neg is None or parse_input(data_inputs(neg)[0]).node != mean.name:
        raise _NoMatch("Neg does not read the mean")
    add_1 = _one(index, neg_side[0].name, "AddV2")
    beta = _vector(index, _other(add_1, neg_side[0].name), "beta")
    out = _one(index, add_1.name, "AddV2")
    if parse_input(_other(out, add_1.name)).node != x_side[0].name:
        raise _NoMatch("the last AddV2 does not add x * m")
    return {"rsqrt": rsqrt.name, "x": x, "mean": mean, "variance": variance, "scale": scale, "x_m": x_side[0],
            "out": out, "gamma": gamma, "beta": beta, "dead": [neg.name, neg_side[0].name, add_1.name]}  # fmt: skip


def _positive_axes(graph_def: Any, index: GraphIndex, m: dict[str, Any], rank: int, name: str) -> None:
    import numpy as np

    made: dict[tuple[int, ...], str] = {}
    for mean in (m["mean"], m["variance"]):
        axes = const_array(index.producer(data_inputs(mean)[1]))
        fixed = np.where(axes < 0, axes + rank, axes).astype(axes.dtype)
        if not np.array_equal(fixed, axes):
            wanted = tuple(int(a) for a in fixed.reshape(-1))
            if wanted not in made:
                made[wanted] = unique_name(index.nodes, name) if made else name
                make_const(graph_def, made[wanted], fixed, device=mean.device)
            mean.input[1] = made[wanted]


def _add(graph_def: Any, names: set[str], base: str, op: str, inputs: list[str], like: Any) -> Any:
    node = graph_def.node.add()
    node.name = unique_name(names, base)
    names.add(node.name)
    node.op, node.device = op, like.device
    node.input.extend(inputs)
    node.attr["T"].type = like.attr["T"].type
    return node


def _rewrite(graph_def: Any, index: GraphIndex, m: dict[str, Any], rank: int, names: set[str]) -> str:
    base = m["out"].name
    gamma_name, beta_name, axis_name = (unique_name(names, f"{base}/{s}") for s in ("gamma_1d", "beta_1d", "axis"))
    names.update((gamma_name, beta_name, axis_name))
    make_const(graph_def, gamma_name, m["gamma"], device=m["out"].device)
    make_const(graph_def, beta_name, m["beta"], device=m["out"].device)
    _positive_axes(graph_def, index, m, rank, axis_name)
    old_gamma = _other(m["scale"], m["rsqrt"])
    m["scale"].input[:] = [m["rsqrt"], gamma_name]
    mean_m = _add(graph_def, names, f"{base}/mean_x_scale", "Mul", [m["mean"].name, m["scale"].name], m["out"])
    sub = _add(graph_def, names, f"{base}/beta_minus", "Sub", [beta_name, mean_m.name], m["out"])
    m["x_m"].input[:] = [m["x"], m["scale"].name]
    controls = [t for t in m["out"].input if t.startswith("^")]
    del m["out"].input[:]
    m["out"].input.extend([m["x_m"].name, sub.name, *controls])
    for name in m["dead"]:
        node = index.nodes[name]
        node.Clear()
        node.name, node.op = name, "NoOp"
    return old_gamma


@register_pass(
    "fuse_layer_norm",
    "spell Keras 3's decomposed LayerNorm as tf_keras does, which TF's remapper fuses into _MklLayerNorm",
    requires=("fold_constants",),
)
def fuse_layer_norm(graph_def: Any, ctx: PassContext) -> Outcome:
    out = Outcome()
    static = infer(graph_def)
    index = GraphIndex(graph_def)
    names = set(index.nodes)
    candidates: list[str] = []
    for rsqrt in [n for n in graph_def.node if n.op == "Rsqrt"]:
        try:
            m = _match(index, rsqrt)
        except _NoMatch as why:
            out.skip(rsqrt.name, str(why))
            continue
        shape = static.get(key(m["x"]), Static(None, 0)).shape
        if shape is None or m["out"].name in ctx.inputs:
            out.skip(rsqrt.name, "the LayerNorm input has an unknown rank")
            continue
        old_axes = parse_input(data_inputs(m["mean"])[1]).node
        old_gamma = _rewrite(graph_def, index, m, len(shape), names)
        candidates.extend([*m["dead"], parse_input(old_gamma).node, old_axes])
        out.changed.append(f"{m['out'].name}: LayerNorm in tf_keras's spelling")
    prune_dead(graph_def, candidates, ctx.protected)
    return out
