"""``projections_to_matmul``: ``BatchMatMulV2``/``Einsum`` with a constant weight -> 2-D ``MatMul``.

Requires: ``fold_constants`` (the weight must be a Const). Ensures: no projection stays a
``BatchMatMulV2``/``Einsum`` with a constant weight.

oneDNN's fused MatMul and INC's INT8 MatMul only take a 2-D ``MatMul``; Keras writes the
attention projections as ``Einsum("abc,cde->abde")`` (q/k/v) and ``Einsum("abcd,cde->abe")``
(output), or as ``BatchMatMulV2(x[..., K], W[K, N])``.

Maths: for ``Einsum`` with subscripts ``x: F C``, ``W: P Q``, ``out: F G`` where ``F`` are the
free letters of x (a prefix of x, in order), ``C`` the contracted letters (x's suffix; every
letter of C appears in W and not in out) and ``G`` the free letters of W (in out's order),

    out[f, g] = sum_c x[f, c] W[c, g]  =  (X2 @ W2)[f, g]   with  X2 = reshape(x, [-1, |C|]),
    W2 = reshape(transpose(W, C + G), [|C|, |G|])

where ``|C|``, ``|G|`` are products of the dimensions; the result is reshaped to
``shape(x)[:len(F)] + dims(G)``. ``BatchMatMulV2(x, W)`` with a 2-D W broadcasts W over x's
leading dimensions, which is the same with ``C`` = x's last axis (``adj_y`` transposes W first;
``adj_x`` is skipped). The reshape targets are constants with ``-1`` when at most one leading
dimension is unknown, else ``ConcatV2(StridedSlice(Shape(x)), dims)``. W2 is computed here in
float64 then cast back: exact, it only moves numbers. A bias ``Add``/``AddV2``/``BiasAdd`` right
after the projection whose constant has the shape ``dims(G)`` (or is 1-D over the last one) moves
before the reshape as ``BiasAdd(MatMul, b.reshape(|G|))``: the same numbers in the same order.

Skips (reported): weight not constant, batch letters shared by x and W, repeated letters or
``...``, contracted letters not x's trailing axes, out not ``F`` then ``G``, ``adj_x``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tfcpu.graph._graphdef import GraphIndex, data_inputs, make_const, parse_input, unique_name
from tfcpu.graph.passes._affine_match import const_value
from tfcpu.graph.passes._base import Outcome, PassContext, register_pass
from tfcpu.graph.passes._edit import prune_dead
from tfcpu.graph.passes._shapes import Static, infer, key

__all__ = ["Projection", "parse_projection"]


@dataclass(frozen=True)
class Projection:
    """How to compute one projection as a 2-D MatMul."""

    free: int  # number of leading axes of x kept in the output
    weight_order: tuple[int, ...]  # transpose of W to (C..., G...)
    contracted: int  # |C| as a product
    out_dims: tuple[int, ...]  # dims(G)


class _NoMatch(Exception):
    pass


def parse_projection(equation: str, x_rank: int | None, w_shape: tuple[int, ...]) -> Projection:
    """The Projection of ``Einsum(equation)(x, W)``, or raise ``_NoMatch`` with the reason."""
    eq = equation.replace(" ", "")
    if "..." in eq or "->" not in eq or eq.count(",") != 1:
        raise _NoMatch(f"equation {equation!r} is not a two-operand einsum without '...'")
    lhs, out = eq.split("->")
    xs, ws = lhs.split(",")
    if any(len(set(s)) != len(s) for s in (xs, ws, out)):
        raise _NoMatch(f"equation {equation!r} repeats a letter")
    if len(ws) != len(w_shape) or (x_rank is not None and x_rank != len(xs)):
        raise _NoMatch("operand ranks do not match the equation")
    if set(xs) & set(ws) & set(out):
        raise _NoMatch("x and W share a batch letter (not a projection)")
    contracted = [c for c in xs if c in ws]
    free = [c for c in xs if c not in ws]
    if any(c in out for c in contracted) or xs != "".join(free + contracted):
        raise _NoMatch("the contracted letters are not x's trailing axes")
    kept = [c for c in ws if c not in xs]
    if not set(free) <= set(out) or out[: len(free)] != "".join(free) or sorted(out[len(free) :]) != sorted(kept):
        raise _NoMatch(f"output {out!r} is not x's free letters then W's")
    g = out[len(free) :]
    order = tuple(ws.index(c) for c in contracted + list(g))
    k = 1
    for c in contracted:
        k *= w_shape[ws.index(c)]
    return Projection(len(free), order, k, tuple(w_shape[ws.index(c)] for c in g))


def _projection(node: Any, index: GraphIndex, static: dict[str, Static]) -> tuple[Projection, Any]:
    import numpy as np

    ins = data_inputs(node)
    if len(ins) != 2:
        raise _NoMatch(f"{len(ins)} operands")
    weights = const_value(index, ins[1])
    if weights is None:
        raise _NoMatch("the second operand is not a constant weight")
    if not np.issubdtype(weights.dtype, np.floating):
        raise _NoMatch(f"weights have dtype {weights.dtype}")
    x_shape = static.get(key(ins[0]), Static(None, 0)).shape
    if node.op == "Einsum":
        proj = parse_projection(
            node.attr["equation"].s.decode(), None if x_shape is None else len(x_shape), weights.shape
        )
    else:
        if node.attr["adj_x"].b:
            raise _NoMatch("adj_x is set")
        if weights.ndim != 2 or x_shape is None or len(x_shape) < 2:
            raise _NoMatch("not x[..., K] @ W[K, N] with a 2-D weight")
        if node.attr["adj_y"].b:
            proj = Projection(len(x_shape) - 1, (1, 0), weights.shape[1], (weights.shape[0],))
        else:
            proj = Projection(len(x_shape) - 1, (0, 1), weights.shape[0], (weights.shape[1],))
    w2 = np.transpose(weights, proj.weight_order).reshape(proj.contracted, -1)
    return proj, w2


def _out_shape(
    graph_def: Any, names: set[str], base: str, x: str, proj: Projection, lead: Any, device: str, dtype: int
) -> str:
    """The output reshape target: a Const when at most one leading dim is unknown, else computed."""
    import numpy as np

    if lead is not None and sum(d is None for d in lead) <= 1:
        target = np.asarray([-1 if d is None else d for d in lead] + list(proj.out_dims), np.int32)
        name = unique_name(names, f"{base}/out_shape")
        names.add(name)
        make_const(graph_def, name, target, device=device)
        return name
    shape = _add(graph_def, names, f"{base}/x_shape", "Shape", [x], device)
    shape.attr["T"].type = dtype
    shape.attr["out_type"].type = 3  # int32
    parts = {
        "begin": np.asarray([0], np.int32),
        "end": np.asarray([proj.free], np.int32),
        "step": np.asarray([1], np.int32),
        "dims": np.asarray(proj.out_dims, np.int32),
        "axis": np.asarray(0, np.int32),
    }
    consts = {}
    for part, value in parts.items():
        consts[part] = unique_name(names, f"{base}/{part}")
        names.add(consts[part])
        make_const(graph_def, consts[part], value, device=device)
    lead_node = _add(
        graph_def, names, f"{base}/lead", "StridedSlice", [shape.name, consts["begin"], consts["end"], consts["step"]],
        device,
    )  # fmt: skip
    lead_node.attr["T"].type = 3
    lead_node.attr["Index"].type = 3
    concat = _add(graph_def, names, f"{base}/out_shape", "ConcatV2", [lead_node.name, consts["dims"], consts["axis"]],
                  device)  # fmt: skip
    concat.attr["T"].type = 3
    concat.attr["N"].i = 2
    concat.attr["Tidx"].type = 3
    return str(concat.name)


def _add(graph_def: Any, names: set[str], base: str, op: str, inputs: list[str], device: str) -> Any:
    node = graph_def.node.add()
    node.name = unique_name(names, base)
    names.add(node.name)
    node.op = op
    node.device = device
    node.input.extend(inputs)
    return node


def _bias_after(index: GraphIndex, node: Any, proj: Projection, ctx: PassContext) -> tuple[Any, Any] | None:
    """A single-consumer bias add right after ``node`` whose constant covers dims(G)."""
    import numpy as np

    users = index.consumers.get(node.name, [])
    if node.name in ctx.protected or len(users) != 1 or users[0][1].control or users[0][1].index != 0:
        return None
    user = users[0][0]
    if user.op not in ("Add", "AddV2", "BiasAdd"):
        return None
    other = [t for t in data_inputs(user) if parse_input(t).node != node.name]
    if len(other) != 1 or (user.op == "BiasAdd" and parse_input(data_inputs(user)[0]).node != node.name):
        return None
    found = const_value(index, other[0])
    if found is None:
        return None
    bias = np.asarray(found)
    shape = tuple(bias.shape)
    if shape == proj.out_dims or (len(shape) == 1 and proj.out_dims and shape[0] == proj.out_dims[-1] == int(
            np.prod(proj.out_dims))):  # fmt: skip
        return user, bias.reshape(-1)
    return None


def _rewrite(graph_def: Any, node: Any, proj: Projection, w2: Any, index: GraphIndex, ctx: PassContext,
             static: dict[str, Static], names: set[str]) -> str:  # fmt: skip
    import numpy as np

    x = data_inputs(node)[0]
    x_shape = static.get(key(x), Static(None, 0)).shape
    lead = None if x_shape is None else x_shape[: proj.free]
    dtype = node.attr["T"].type
    base = node.name
    label = node.attr["equation"].s.decode() if node.op == "Einsum" else node.op  # read before the node is reused
    w_name = unique_name(names, f"{base}/weight_2d")
    names.add(w_name)
    make_const(graph_def, w_name, w2, device=node.device)
    k_name = unique_name(names, f"{base}/in_shape")
    names.add(k_name)
    make_const(graph_def, k_name, np.asarray([-1, proj.contracted], np.int32), device=node.device)
    flat = _add(graph_def, names, f"{base}/x_2d", "Reshape", [x, k_name], node.device)
    flat.attr["T"].type = dtype
    flat.attr["Tshape"].type = 3
    matmul = _add(graph_def, names, f"{base}/matmul", "MatMul", [flat.name, w_name], node.device)
    matmul.attr["T"].type = dtype
    matmul.attr["transpose_a"].b = False
    matmul.attr["transpose_b"].b = False
    product = matmul.name
    target = node
    bias = _bias_after(index, node, proj, ctx)
    note = ""
    if bias is not None:
        user, vector = bias
        b_name = unique_name(names, f"{user.name}/bias_1d")
        names.add(b_name)
        make_const(graph_def, b_name, vector.astype(w2.dtype), device=node.device)
        added = _add(graph_def, names, f"{base}/bias_add", "BiasAdd", [matmul.name, b_name], node.device)
        added.attr["T"].type = dtype
        added.attr["data_format"].s = b"NHWC"
        product, target, note = added.name, user, f" + {user.name}"
    shape_name = _out_shape(graph_def, names, base, x, proj, lead, node.device, dtype)
    name, device = target.name, target.device
    controls = [t for t in node.input if t.startswith("^")]
    target.Clear()
    target.name, target.op, target.device = name, "Reshape", device
    target.input.extend([product, shape_name, *controls])
    target.attr["T"].type = dtype
    target.attr["Tshape"].type = 3
    return f"{base} ({label}){note} -> MatMul{' + BiasAdd' if note else ''}"


@register_pass(
    "projections_to_matmul",
    "rewrite BatchMatMulV2/Einsum projections with a constant weight as 2-D MatMul (+ BiasAdd) between reshapes",
    requires=("fold_constants",),
)
def projections_to_matmul(graph_def: Any, ctx: PassContext) -> Outcome:
    out = Outcome()
    static = infer(graph_def)
    index = GraphIndex(graph_def)
    names = set(index.nodes)
    candidates: list[str] = []
    for node in list(graph_def.node):
        if node.op not in ("Einsum", "BatchMatMulV2", "BatchMatMul"):
            continue
        try:
            proj, w2 = _projection(node, index, static)
        except _NoMatch as why:
            if const_value(index, data_inputs(node)[-1]) is not None:
                out.skip(node.name, str(why))
            continue
        old = node.name
        candidates.extend(parse_input(t).node for t in node.input)
        bias_user = _bias_after(index, node, proj, ctx)
        out.changed.append(_rewrite(graph_def, node, proj, w2, index, ctx, static, names))
        if bias_user is not None:  # the projection node itself is now dead: rename-free removal
            node.Clear()
            node.name, node.op = old, "NoOp"
            candidates.append(old)
            candidates.extend(parse_input(t).node for t in bias_user[0].input)
    prune_dead(graph_def, candidates, ctx.protected)
    return out
