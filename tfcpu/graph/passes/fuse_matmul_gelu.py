"""``fuse_matmul_gelu``: put MatMul + BiasAdd (+ GELU) in the form oneDNN's fused MatMul takes.

Requires: ``projections_to_matmul`` and ``fold_shape_arithmetic`` (it reads static shapes).
Ensures: every ``MatMul -> [Reshape] -> bias -> GELU`` reads ``MatMul -> BiasAdd -> GELU ->
[Reshape]`` with the GELU in the op pattern of TensorFlow's Grappler remapper.


TensorFlow's remapper (with oneDNN on) rewrites ``MatMul -> BiasAdd -> GELU`` into one
``_FusedMatMul(fused_ops=[BiasAdd, GeluExact|GeluApproximate])`` at run time, but only when
the nodes are adjacent and the GELU is spelled exactly as it expects: ``Mul(Mul(AddV2(Erf(
Mul(y, 1/sqrt 2)), 1), 1/2), y)`` for the exact form (Keras 3 writes ``0.5 y erfc(-y / sqrt 2)``,
which it does not match), and, for the tanh form, the nodes ``tf.nn.gelu(approximate=True)``
writes *in its "Gelu" name scope* (measured on TF 2.21: the same ops under other names, or
re-spelled by hand, are not fused, so this pass keeps that chain and its names and only moves
the Reshape; measured, the tanh fusion then also needs the BiasAdd's name to sort before the
GELU's nodes, as Keras layer names do: the tf_keras encoder's 2 tanh GELUs fuse). A Dense on a
3-D input puts a Reshape between the MatMul and its bias, which stops both. The fused op itself
is not emitted: INC's INT8 rewrite and the oneDNN-off runtime both need the plain ops.

Maths: (1) a bias over the last axis commutes with a Reshape that keeps the last axis:
``Reshape(z, s) + b = Reshape(z + b, s)`` when ``s[-1] = z.shape[-1] = len(b)``; (2) a GELU is an
element-wise function, so it commutes with any Reshape; (3) ``erfc(-t) = 1 + erf(t)`` and
the tanh chain is kept as written. The GELU subgraph is found as the largest set of element-wise ops (Mul, Add,
AddV2, Sub, RealDiv, Neg, Erf, Erfc, Tanh, Pow, Square) reached from the BiasAdd whose other
operands are scalar constants and that ends in one node; it is a function f of one variable,
evaluated on 241 points of [-6, 6] and accepted when it equals the exact (or tanh) GELU there
within 1e-6 (an element-wise chain of these ops with constant operands is analytic, and the
two forms differ by up to 2e-4 on that grid, so the test tells them apart).

Skips (reported): a GELU-like chain that matches neither form, a bias that is not over the
last axis, a Reshape whose last dimension is not the MatMul's.
"""

from __future__ import annotations

import math
from typing import Any

from tfcpu.graph._graphdef import GraphIndex, const_array, data_inputs, make_const, parse_input, unique_name
from tfcpu.graph.passes._affine_match import const_value
from tfcpu.graph.passes._base import Outcome, PassContext, register_pass
from tfcpu.graph.passes._edit import prune_dead
from tfcpu.graph.passes._shapes import Static, infer, key

ELEMENTWISE = ("Mul", "Add", "AddV2", "Sub", "RealDiv", "Neg", "Erf", "Erfc", "Tanh", "Pow", "Square")
SQRT_HALF = 1.0 / math.sqrt(2.0)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu_exact(t: Any) -> Any:
    import numpy as np

    return 0.5 * t * (1.0 + np.vectorize(math.erf)(t * SQRT_HALF))


def gelu_tanh(t: Any) -> Any:
    import numpy as np

    return 0.5 * t * (1.0 + np.tanh(SQRT_2_OVER_PI * (t + 0.044715 * t**3)))


def _scalar(index: GraphIndex, text: str) -> float | None:
    value = const_value(index, text)
    if value is None:
        return None
    return float(value.reshape(-1)[0]) if value.size == 1 and value.dtype.kind == "f" else None


def _apply(op: str, args: list[Any]) -> Any:
    import numpy as np

    unary: dict[str, Any] = {"Neg": np.negative, "Tanh": np.tanh, "Square": np.square, "Erf": np.vectorize(math.erf),
             "Erfc": np.vectorize(math.erfc)}  # fmt: skip
    if op in unary:
        return unary[op](args[0])
    a, b = args
    binary: dict[str, Any] = {"Mul": np.multiply, "Add": np.add, "AddV2": np.add, "Sub": np.subtract,
                              "RealDiv": np.divide, "Pow": np.power}  # fmt: skip
    return binary[op](a, b)


def _chain(index: GraphIndex, source: str, ctx: PassContext) -> tuple[list[Any], Any] | None:
    """(members in order, sink) of the element-wise single-variable chain read from ``source``."""
    members: dict[str, Any] = {}
    grown = True
    while grown:
        grown = False
        for name in [source, *members]:
            for user, ref in index.data_consumers(name):
                if user.name in members or user.op not in ELEMENTWISE or user.name in ctx.inputs:
                    continue
                ok = all(
                    parse_input(t).node in members or parse_input(t).node == source or _scalar(index, t) is not None
                    for t in data_inputs(user)
                )
                if ok and ref.index == 0:
                    members[user.name] = user
                    grown = True
    if not members:
        return None
    sinks = [m for m in members.values() if m.name in ctx.protected or any(
        u.name not in members for u, _ in index.consumers.get(m.name, []))]  # fmt: skip
    if len(sinks) != 1:
        return None
    order: list[Any] = []
    done = {source}
    pending = list(members.values())
    while pending:
        ready = [m for m in pending if all(parse_input(t).node in done or parse_input(t).node not in members
                                           for t in data_inputs(m))]  # fmt: skip
        if not ready:
            return None
        for m in ready:
            order.append(m)
            done.add(m.name)
            pending.remove(m)
    return order, sinks[0]


def _identify(index: GraphIndex, source: str, order: list[Any], sink: Any) -> str | None:
    """ "exact", "tanh" or None: what function of ``source`` the chain computes."""
    import numpy as np

    grid = np.linspace(-6.0, 6.0, 241)
    values: dict[str, Any] = {source: grid}
    for node in order:
        args = []
        for text in data_inputs(node):
            name = parse_input(text).node
            args.append(values[name] if name in values else _scalar(index, text))
        values[node.name] = _apply(node.op, args)
    f = values[sink.name]
    kinds = {n.op for n in order}
    for name, reference, marker in (("exact", gelu_exact, {"Erf", "Erfc"}), ("tanh", gelu_tanh, {"Tanh"})):
        if kinds & marker and np.all(np.abs(f - reference(grid)) <= 1e-6 * (1.0 + np.abs(f))):
            return name
    return None


def _linear_source(index: GraphIndex, node: Any) -> tuple[Any, Any | None] | None:
    """(BiasAdd after a MatMul, Reshape after it or None) when ``node`` is one of them."""
    if node.op == "BiasAdd":
        producer = index.producer(data_inputs(node)[0])
        if producer is not None and producer.op == "MatMul":
            return node, None
    if node.op == "Reshape":
        inner = index.producer(data_inputs(node)[0])
        if inner is not None and inner.op == "BiasAdd":
            found = _linear_source(index, inner)
            if found is not None and found[1] is None and len(index.data_consumers(inner.name)) == 1:
                return inner, node
    return None


class _Builder:
    def __init__(self, graph_def: Any, names: set[str], base: str, device: str, dtype: int) -> None:
        self.graph_def, self.names, self.base, self.device, self.dtype = graph_def, names, base, device, dtype

    def const(self, label: str, value: float) -> str:
        import numpy as np

        name = unique_name(self.names, f"{self.base}/{label}")
        self.names.add(name)
        make_const(self.graph_def, name, np.asarray(value, np.float32), device=self.device)
        return name

    def op(self, label: str, op: str, *inputs: str) -> str:
        node = self.graph_def.node.add()
        node.name = unique_name(self.names, f"{self.base}/{label}")
        self.names.add(node.name)
        node.op, node.device = op, self.device
        node.input.extend(inputs)
        node.attr["T"].type = self.dtype
        return str(node.name)


def _canonical(b: _Builder, y: str, kind: str) -> tuple[str, str]:
    """The two inputs of the exact GELU's last ``Mul`` on ``y``, in the form the remapper fuses."""
    one, half = b.const("one", 1.0), b.const("one_half", 0.5)
    scaled = b.op("y_x_sqrt_one_half", "Mul", y, b.const("sqrt_one_half", SQRT_HALF))
    plus = b.op("plus_one", "AddV2", b.op("erf", "Erf", scaled), one)
    return b.op("times_one_half", "Mul", plus, half), y


def _sink_bias(graph_def: Any, static: dict[str, Static], ctx: PassContext, out: Outcome) -> list[str]:
    """MatMul -> Reshape(s) -> BiasAdd(b)  =>  MatMul -> BiasAdd(b) -> Reshape(s) (same names at the end)."""
    index = GraphIndex(graph_def)
    names = set(index.nodes)
    dead: list[str] = []
    for node in list(graph_def.node):
        if node.op not in ("BiasAdd", "Add", "AddV2") or node.name in ctx.inputs:
            continue
        ins = data_inputs(node)
        reshape = index.producer(ins[0])
        if reshape is None or reshape.op != "Reshape" or len(index.data_consumers(reshape.name)) != 1:
            continue
        matmul = index.producer(data_inputs(reshape)[0])
        bias = index.producer(ins[1])
        if matmul is None or matmul.op != "MatMul" or bias is None or bias.op != "Const":
            continue
        n = static.get(f"{matmul.name}:0", Static(None, 0)).shape
        s = static.get(f"{reshape.name}:0", Static(None, 0)).shape
        vector = const_array(bias)
        if not n or not s or n[-1] is None or s[-1] != n[-1] or vector.ndim != 1 or vector.shape[0] != n[-1]:
            out.skip(node.name, "the Reshape before the bias does not keep the MatMul's last axis")
            continue
        added = graph_def.node.add()
        added.name = unique_name(names, f"{matmul.name}/bias_add")
        names.add(added.name)
        added.op, added.device = "BiasAdd", node.device
        added.input.extend([matmul.name, ins[1]])
        added.attr["T"].type = node.attr["T"].type
        added.attr["data_format"].s = b"NHWC"
        target_shape = data_inputs(reshape)[1]
        name, device, controls = node.name, node.device, [t for t in node.input if t.startswith("^")]
        node.Clear()
        node.name, node.op, node.device = name, "Reshape", device
        node.input.extend([added.name, target_shape, *controls])
        node.attr["T"].type = added.attr["T"].type
        node.attr["Tshape"].type = reshape.attr["Tshape"].type
        dead.append(reshape.name)
        out.changed.append(f"{name}: bias moved before the reshape of {matmul.name}")
    return dead


def _move_reshape_after(
    graph_def: Any,
    index: GraphIndex,
    order: list[Any],
    sink: Any,
    bias_add: Any,
    reshape: Any,
    ctx: PassContext,
    out: Outcome,
) -> None:
    """Keep the (tf.nn.gelu) chain and its names; read the BiasAdd, reshape after the sink."""
    from tfcpu.graph._graphdef import set_inputs
    from tfcpu.graph.passes._edit import rewire

    if sink.name in ctx.protected:
        out.skip(sink.name, "the GELU is a model output: its reshape cannot move after it")
        return
    names = set(index.nodes)
    back = graph_def.node.add()
    back.name = unique_name(names, f"{sink.name}/reshape_back")
    back.op, back.device = "Reshape", sink.device
    rewire(graph_def, {f"{sink.name}:0": back.name})
    back.input.extend([sink.name, data_inputs(reshape)[1]])
    back.attr["T"].type = bias_add.attr["T"].type
    back.attr["Tshape"].type = reshape.attr["Tshape"].type
    for member in order:
        set_inputs(member, [bias_add.name if parse_input(t).node == reshape.name else t for t in member.input])
    out.changed.append(f"{sink.name}: GELU (tanh) reads {bias_add.name}; the reshape moved after it")


def _respell_exact(
    graph_def: Any,
    names: set[str],
    order: list[Any],
    sink: Any,
    bias_add: Any,
    reshape: Any | None,
    static: dict[str, Static],
) -> None:
    """Replace the chain by the remapper's exact-GELU pattern on the BiasAdd; the sink keeps its name."""
    b = _Builder(graph_def, names, sink.name, sink.device, bias_add.attr["T"].type)
    left, right = _canonical(b, bias_add.name, "exact")
    op = "Mul"
    if reshape is not None:  # GELU on the 2-D product, then the original reshape
        left, right, op = b.op("gelu_2d", op, left, right), data_inputs(reshape)[1], "Reshape"
    name, device = sink.name, sink.device
    sink.Clear()
    sink.name, sink.op, sink.device = name, op, device
    sink.input.extend([left, right])
    sink.attr["T"].type = bias_add.attr["T"].type
    if op == "Reshape":
        sink.attr["Tshape"].type = static.get(key(right), Static(None, 3)).dtype


@register_pass(
    "fuse_matmul_gelu",
    "put MatMul + BiasAdd (+ exact/tanh GELU) in the adjacent form TensorFlow's remapper fuses into _FusedMatMul",
    requires=("projections_to_matmul",),
)
def fuse_matmul_gelu(graph_def: Any, ctx: PassContext) -> Outcome:
    out = Outcome()
    static = infer(graph_def)
    dead = _sink_bias(graph_def, static, ctx, out)
    prune_dead(graph_def, dead, ctx.protected)
    index = GraphIndex(graph_def)
    names = set(index.nodes)
    candidates: list[str] = []
    for node in list(graph_def.node):
        found = _linear_source(index, node)
        if found is None:
            continue
        bias_add, reshape = found
        source = node.name
        chain = _chain(index, source, ctx)
        if chain is None or not {m.op for m in chain[0]} & {"Erf", "Erfc", "Tanh"}:
            continue
        order, sink = chain
        kind = _identify(index, source, order, sink)
        if kind is None:
            out.skip(sink.name, "an Erf/Tanh chain after a MatMul that is neither the exact nor the tanh GELU")
            continue
        if kind == "tanh":
            if reshape is None:
                continue  # already adjacent; Grappler fuses tf.nn.gelu's own spelling as written
            _move_reshape_after(graph_def, index, order, sink, bias_add, reshape, ctx, out)
            candidates.append(reshape.name)
        else:
            _respell_exact(graph_def, names, order, sink, bias_add, reshape, static)
            candidates.extend(parse_input(t).node for m in order for t in m.input)
            out.changed.append(f"{sink.name}: GELU (exact) after {bias_add.name} in the remapper's form")
        index = GraphIndex(graph_def)
    prune_dead(graph_def, [c for c in candidates if c in {n.name for n in graph_def.node}], ctx.protected)
    return out
