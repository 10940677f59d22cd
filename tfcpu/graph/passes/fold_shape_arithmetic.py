"""``fold_shape_arithmetic``: fold shape computations that depend only on known dimensions.

Requires: nothing (runs after ``fold_constants``). Ensures: no ``Shape`` chain whose value
depends only on statically known dimensions; identity ``Transpose`` removed.
(``requires=()`` for the pass contract.)

A Keras ``Dense`` on a 3-D input, or a projection with an unknown batch, computes its
reshape targets at run time: ``Shape(x) -> GatherV2/StridedSlice -> Prod -> Pack/ConcatV2 ->
Reshape``. ``fold_constants`` cannot fold them (``Shape`` reads a placeholder-dependent
tensor), yet most of the arithmetic only touches dimensions TensorFlow's shape inference
already knows (the width, the heads).

Maths: an abstract interpretation over small integer vectors whose entries are a known
integer or *unknown*. ``Shape(x)`` is x's inferred static shape; ``StridedSlice`` (plain 1-D
slices, begin/end masks, shrink-axis), ``GatherV2`` (constant indices, axis 0), ``Prod``
(unknown if any factor is), ``Pack``, ``ConcatV2`` and integer ``Cast`` act on the entries as
they do on tensors. Because the inferred static shape is what the tensor has at run time
(TensorFlow checks feeds against the placeholder shapes), a value whose entries are all known
is that constant for every valid input: the node becomes a ``Const`` with the same name.
A ``Reshape`` whose target has exactly one unknown entry gets the constant target with ``-1``
there (``Reshape`` computes it from the element count, which is the same number). A
``Transpose`` whose permutation is ``0..n-1`` is the identity and its consumers read its input.

Skips (reported): Reshape targets with two or more unknown entries (kept: they need the run
time batch and sequence), Shape of a tensor of unknown rank.
"""

from __future__ import annotations

from typing import Any

from tfcpu.graph._graphdef import GraphIndex, data_inputs, make_const, unique_name
from tfcpu.graph.passes._affine_match import const_value
from tfcpu.graph.passes._base import Outcome, PassContext, register_pass
from tfcpu.graph.passes._edit import prune_dead, rewire
from tfcpu.graph.passes._shapes import Static, infer, key

Value = tuple[bool, tuple[int | None, ...]]  # (is_scalar, entries)


def _entries(values: dict[str, Value], index: GraphIndex, text: str) -> Value | None:
    if key(text) in values:
        return values[key(text)]
    array = const_value(index, text)
    if array is None or array.dtype.kind not in "iu" or array.ndim > 1:
        return None
    return (array.ndim == 0, tuple(int(v) for v in array.reshape(-1)))


def _slice(node: Any, vec: Value, index: GraphIndex) -> Value | None:
    ins = data_inputs(node)
    parts = [const_value(index, t) for t in ins[1:4]]
    if vec[0] or any(p is None or p.shape != (1,) for p in parts):
        return None
    if node.attr["ellipsis_mask"].i or node.attr["new_axis_mask"].i:
        return None
    begin, end, stride = (int(p[0]) for p in parts)  # type: ignore[index]
    if node.attr["shrink_axis_mask"].i & 1:
        items = vec[1]
        if not -len(items) <= begin < len(items):
            return None
        return (True, (items[begin],))
    start = None if node.attr["begin_mask"].i & 1 else begin
    stop = None if node.attr["end_mask"].i & 1 else end
    return (False, vec[1][start:stop:stride])


def _evaluate(node: Any, index: GraphIndex, values: dict[str, Value], static: dict[str, Static]) -> Value | None:
    """The abstract value of ``node``'s output 0, or None when it is not shape arithmetic."""
    ins = data_inputs(node)
    op = node.op
    if op == "Shape":
        shape = static.get(key(ins[0]), Static(None, 0)).shape
        return None if shape is None else (False, shape)
    args = [_entries(values, index, t) for t in ins]
    if op == "Cast" and args and args[0] is not None:
        return args[0]
    if op == "StridedSlice" and args and args[0] is not None:
        return _slice(node, args[0], index)
    if op == "GatherV2" and len(args) == 3 and args[0] is not None and not args[0][0]:
        indices, axis = const_value(index, ins[1]), const_value(index, ins[2])
        if indices is None or axis is None or int(axis) != 0 or node.attr["batch_dims"].i:
            return None
        items = args[0][1]
        picked = tuple(items[int(i)] for i in indices.reshape(-1))
        return (indices.ndim == 0, picked)
    if op == "Prod" and len(args) == 2 and args[0] is not None:
        product: int | None = 1
        for d in args[0][1]:
            product = None if product is None or d is None else product * d
        return (not node.attr["keep_dims"].b, (product,))
    if op == "Pack" and args and all(a is not None and a[0] for a in args) and node.attr["axis"].i == 0:
        return (False, tuple(a[1][0] for a in args if a is not None))
    if op == "ConcatV2" and len(args) >= 3 and all(a is not None and not a[0] for a in args[:-1]):
        return (False, tuple(d for a in args[:-1] if a is not None for d in a[1]))
    return None


def _fold_known(graph_def: Any, ctx: PassContext, values: dict[str, Value], static: dict[str, Static]) -> list[str]:
    import numpy as np
    from tensorflow.python.framework import dtypes

    changed = []
    for node in graph_def.node:
        value = values.get(f"{node.name}:0")
        if value is None or node.op == "Const" or node.name in ctx.protected or any(d is None for d in value[1]):
            continue
        dtype = dtypes.as_dtype(static[f"{node.name}:0"].dtype).as_numpy_dtype
        array = np.asarray(value[1][0] if value[0] else value[1], dtype=dtype)
        from tensorflow.python.framework import tensor_util

        proto = tensor_util.make_tensor_proto(array)
        device, name, was = node.device, node.name, node.op
        node.Clear()
        node.name, node.op, node.device = name, "Const", device
        node.attr["dtype"].type = proto.dtype
        node.attr["value"].tensor.CopyFrom(proto)
        changed.append(f"{name} ({was}) = {array.tolist()}")
    return changed


def _reshape_targets(graph_def: Any, values: dict[str, Value], static: dict[str, Static], out: Outcome) -> None:
    import numpy as np

    names = {n.name for n in graph_def.node}
    for node in list(graph_def.node):
        if node.op != "Reshape":
            continue
        value = values.get(key(data_inputs(node)[1]))
        if value is None or value[0] or all(d is not None for d in value[1]):
            continue
        unknown = sum(d is None for d in value[1])
        if unknown > 1 or any(d is not None and d <= 0 for d in value[1]):
            out.skip(node.name, f"target {['?' if d is None else d for d in value[1]]} has {unknown} run-time dims")
            continue
        dtype = np.int64 if static[key(data_inputs(node)[1])].dtype == 9 else np.int32
        target = np.asarray([-1 if d is None else d for d in value[1]], dtype=dtype)
        const_name = unique_name(names, f"{node.name}/shape_folded")
        names.add(const_name)
        make_const(graph_def, const_name, target, device=node.device)
        node.input[1] = const_name
        out.changed.append(f"{node.name} target = {target.tolist()}")


def _identity_transposes(graph_def: Any, ctx: PassContext, out: Outcome) -> list[str]:
    index = GraphIndex(graph_def)
    mapping: dict[str, str] = {}
    for node in graph_def.node:
        if node.op != "Transpose" or node.name in ctx.protected:
            continue
        perm = const_value(index, data_inputs(node)[1])
        if perm is not None and perm.ndim == 1 and perm.tolist() == list(range(perm.shape[0])):
            mapping[f"{node.name}:0"] = data_inputs(node)[0]
            out.changed.append(f"{node.name} (identity Transpose) removed")
    rewire(graph_def, mapping)
    return [k.split(":")[0] for k in mapping]


@register_pass(
    "fold_shape_arithmetic",
    "fold Shape/StridedSlice/GatherV2/Prod/Pack/ConcatV2 chains over known dims to constants (-1 for one unknown)",
)
def fold_shape_arithmetic(graph_def: Any, ctx: PassContext) -> Outcome:
    from tfcpu.graph._graphdef import topological_order

    out = Outcome()
    static = infer(graph_def)
    index = GraphIndex(graph_def)
    values: dict[str, Value] = {}
    for name in topological_order(graph_def) or []:
        node = index.nodes[name]
        if node.op == "Const" or name in ctx.inputs:
            continue
        value = _evaluate(node, index, values, static)
        if value is not None:
            values[f"{name}:0"] = value
        if node.op == "Shape" and value is None:
            out.skip(name, "the input's rank is unknown")
    _reshape_targets(graph_def, values, static, out)
    out.changed.extend(_fold_known(graph_def, ctx, values, static))
    removed = _identity_transposes(graph_def, ctx, out)
    candidates = [k.split(":")[0] for k in values] + removed
    prune_dead(graph_def, candidates, ctx.protected)
    return out
