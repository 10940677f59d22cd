"""``fold_constants(ignore_errors=True, max_bytes=64 MiB)``: replace constant subgraphs by Const nodes.

Matches: every node whose op is stateless (per TensorFlow's op registry), is not a
placeholder, variable or TF1 control-flow op, and whose inputs (data and control) are all
constant. Only the *frontier* is materialised: constant tensors read by a non-constant node
or named as a model output.

Maths: the frontier tensors are evaluated by TensorFlow itself (one session run over the
constant subgraph, exactly the kernels the graph would run), so a folded value is bit-for-bit
what the original graph computes at run time. A frontier node read only through output 0 is
turned into a Const *with the same name* (names, protected outputs and ``^name`` edges stay
valid); other outputs get new Const nodes ``<node>/folded_<k>``. Constant nodes nobody reads
any more are deleted.

Skips (reported): a value larger than ``max_bytes`` (folding would grow the file), a dtype a
Const cannot hold (resource, variant), and, when ``ignore_errors`` is true, anything
TensorFlow fails to evaluate (with ``ignore_errors=False`` that raises PassError).
"""

from __future__ import annotations

import logging
from typing import Any

from tfcpu.errors import PassError
from tfcpu.graph._graphdef import GraphIndex, parse_input, topological_order, unique_name
from tfcpu.graph.passes._base import Outcome, PassContext, register_pass
from tfcpu.graph.passes._edit import prune_dead

logger = logging.getLogger(__name__)

_NEVER_FOLD = frozenset(
    {
        "Placeholder",
        "PlaceholderWithDefault",
        "PlaceholderV2",
        "VarHandleOp",
        "VariableV2",
        "Variable",
        "ReadVariableOp",
        "Enter",
        "RefEnter",
        "Exit",
        "RefExit",
        "Merge",
        "RefMerge",
        "Switch",
        "RefSwitch",
        "NextIteration",
        "LoopCond",
        "NoOp",
        "Assert",
        "Print",
        "PrintV2",
    }
)


def _foldable_op(op: str, cache: dict[str, bool]) -> bool:
    if op in cache:
        return cache[op]
    from tensorflow.python.framework import op_def_registry

    op_def = op_def_registry.get(op)
    ok = op not in _NEVER_FOLD and op_def is not None and not op_def.is_stateful and len(op_def.output_arg) > 0
    cache[op] = ok
    return ok


def _evaluate(graph_def: Any, fetches: list[str]) -> list[Any]:
    from tfcpu._lazy import import_tensorflow

    tf = import_tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
    # Grappler would otherwise fold the fetched subgraph itself before we run it; run plainly.
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    with tf.compat.v1.Session(graph=graph, config=config) as sess:
        return list(sess.run(fetches))


def _constant_nodes(graph_def: Any, index: GraphIndex, ctx: PassContext) -> tuple[list[str], dict[str, bool]]:
    """Topological order and, per node, whether its value is a constant."""
    order = topological_order(graph_def)
    if order is None:
        raise PassError("fold_constants needs an acyclic graph", why="the graph has a cycle")
    cache: dict[str, bool] = {}
    constant: dict[str, bool] = {}
    for name in order:
        node = index.nodes[name]
        constant[name] = node.op == "Const" or (
            name not in ctx.inputs
            and _foldable_op(node.op, cache)
            and bool(node.input)
            and all(constant.get(parse_input(t).node, False) for t in node.input)
        )
    return order, constant


def _frontier(
    order: list[str], constant: dict[str, bool], index: GraphIndex, ctx: PassContext
) -> list[tuple[str, int]]:
    """Constant, non-Const tensors read by non-constant nodes or named as outputs."""
    frontier: dict[tuple[str, int], None] = {}
    for name in order:
        if constant[name]:
            continue
        for text in index.nodes[name].input:
            ref = parse_input(text)
            if not ref.control and constant.get(ref.node) and index.nodes[ref.node].op != "Const":
                frontier[(ref.node, ref.index)] = None
    for name in ctx.outputs:
        if constant.get(name) and index.nodes[name].op != "Const":
            frontier[(name, 0)] = None
    return list(frontier)


def _subgraph(graph_def: Any, index: GraphIndex, keys: list[tuple[str, int]]) -> Any:
    """The nodes the frontier tensors depend on, as a GraphDef of their own."""
    sub = type(graph_def)()
    sub.versions.CopyFrom(graph_def.versions)
    sub.library.CopyFrom(graph_def.library)
    needed: set[str] = set()
    stack = [k[0] for k in keys]
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        stack.extend(parse_input(t).node for t in index.nodes[name].input)
    sub.node.extend(n for n in graph_def.node if n.name in needed)
    return sub


def _values(sub: Any, keys: list[tuple[str, int]], ignore_errors: bool, out: Outcome) -> dict[tuple[str, int], Any]:
    """Evaluate the frontier in one run; on failure one by one, to skip (or raise on) the culprits."""
    values: dict[tuple[str, int], Any] = {}
    fetch_names = [f"{n}:{k}" for n, k in keys]
    try:
        return dict(zip(keys, _evaluate(sub, fetch_names), strict=True))
    except Exception as exc:  # noqa: BLE001 - TF raises many types; retry one by one to find the culprits
        logger.debug("fold_constants: batch evaluation failed (%s); evaluating one by one", exc)
    for key, fetch in zip(keys, fetch_names, strict=True):
        try:
            values[key] = _evaluate(sub, [fetch])[0]
        except Exception as one:
            if not ignore_errors:
                raise PassError(
                    "fold_constants could not evaluate a constant subgraph",
                    where=fetch,
                    why=f"{type(one).__name__}: {str(one).splitlines()[0] if str(one) else ''}",
                    hint="use fold_constants(ignore_errors=True) to leave such nodes as they are",
                ) from one
            out.skip(key[0], f"TensorFlow could not evaluate it: {type(one).__name__}")
    return values


def _protos(values: dict[tuple[str, int], Any], max_bytes: int, out: Outcome) -> dict[tuple[str, int], Any]:
    import numpy as np
    from tensorflow.python.framework import tensor_util

    protos: dict[tuple[str, int], Any] = {}
    for key, value in values.items():
        array = np.asarray(value)
        if array.nbytes > max_bytes:
            out.skip(key[0], f"folded value has {array.nbytes} bytes > max_bytes={max_bytes}")
            continue
        try:
            protos[key] = tensor_util.make_tensor_proto(array)
        except Exception as exc:  # noqa: BLE001 - make_tensor_proto raises several types
            out.skip(key[0], f"a Const cannot hold its value ({type(exc).__name__}: dtype {array.dtype})")
    return protos


def _write_consts(
    graph_def: Any, index: GraphIndex, protos: dict[tuple[str, int], Any], multi: set[str], out: Outcome
) -> dict[str, str]:
    """Turn frontier nodes into Consts (same name) or add ``<node>/folded_<k>``; the tensor renames."""
    mapping: dict[str, str] = {}
    names = set(index.nodes)
    for (name, k), proto in protos.items():
        node = index.nodes[name]
        if k == 0 and name not in multi:
            device = node.device
            node.Clear()
            node.name = name
            node.op = "Const"
            node.device = device
            target = node
        else:
            new_name = unique_name(names, f"{name}/folded_{k}")
            names.add(new_name)
            target = graph_def.node.add()
            target.name = new_name
            target.op = "Const"
            target.device = node.device
            mapping[f"{name}:{k}"] = new_name
        target.attr["dtype"].type = proto.dtype
        target.attr["value"].tensor.CopyFrom(proto)
        out.changed.append(name if target.name == name else f"{name}:{k}")
    return mapping


def _remap(graph_def: Any, constant: dict[str, bool], mapping: dict[str, str]) -> None:
    for consumer in graph_def.node:
        if constant.get(consumer.name) and consumer.op != "Const":
            continue
        for i, text in enumerate(consumer.input):
            ref = parse_input(text)
            if not ref.control and f"{ref.node}:{ref.index}" in mapping:
                consumer.input[i] = mapping[f"{ref.node}:{ref.index}"]


@register_pass(
    "fold_constants",
    "evaluate constant subgraphs with TensorFlow and store the results as Const nodes",
    ignore_errors=True,
    max_bytes=64 * 1024 * 1024,
)
def fold_constants(graph_def: Any, ctx: PassContext, ignore_errors: bool, max_bytes: int) -> Outcome:
    out = Outcome()
    index = GraphIndex(graph_def)
    order, constant = _constant_nodes(graph_def, index, ctx)
    keys = _frontier(order, constant, index, ctx)
    if not keys:
        return out
    values = _values(_subgraph(graph_def, index, keys), keys, ignore_errors, out)
    multi = {n for (n, k) in keys if k > 0}
    multi |= {r.node for _, refs in index.consumers.items() for _, r in refs if r.index > 0}
    mapping = _write_consts(graph_def, index, _protos(values, max_bytes, out), multi, out)
    if mapping:
        _remap(graph_def, constant, mapping)
    prune_dead(graph_def, [n for n, c in constant.items() if c], ctx.protected)
    return out
