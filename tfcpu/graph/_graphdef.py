"""Small helpers over GraphDef protobufs shared by the loader and the passes.

Input strings in a NodeDef follow TensorFlow's convention: ``"node"`` is output 0,
``"node:2"`` output 2, ``"^node"`` a control dependency. Every helper here works on those
strings and never imports TensorFlow at module import time.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "GraphIndex",
    "InputRef",
    "called_functions",
    "const_array",
    "make_const",
    "parse_input",
    "reachable_functions",
    "topological_order",
]


@dataclass(frozen=True)
class InputRef:
    """One parsed NodeDef input string."""

    node: str
    index: int
    control: bool

    def __str__(self) -> str:
        if self.control:
            return f"^{self.node}"
        return self.node if self.index == 0 else f"{self.node}:{self.index}"


def parse_input(text: str) -> InputRef:
    """``"a"`` -> (a, 0, False); ``"a:3"`` -> (a, 3, False); ``"^a"`` -> (a, -1, True)."""
    if text.startswith("^"):
        return InputRef(text[1:], -1, True)
    node, sep, idx = text.rpartition(":")
    if sep and idx.isdigit():
        return InputRef(node, int(idx), False)
    return InputRef(text, 0, False)


class GraphIndex:
    """Name -> node and name -> consumers maps of one GraphDef (rebuild after edits)."""

    def __init__(self, graph_def: Any) -> None:
        self.graph_def = graph_def
        self.nodes: dict[str, Any] = {}
        self.consumers: dict[str, list[tuple[Any, InputRef]]] = {}
        for node in graph_def.node:
            self.nodes[node.name] = node
        for node in graph_def.node:
            for text in node.input:
                ref = parse_input(text)
                self.consumers.setdefault(ref.node, []).append((node, ref))

    def node(self, name: str) -> Any:
        return self.nodes[name]

    def data_consumers(self, name: str) -> list[tuple[Any, InputRef]]:
        return [(n, r) for n, r in self.consumers.get(name, []) if not r.control]

    def control_consumers(self, name: str) -> list[Any]:
        return [n for n, r in self.consumers.get(name, []) if r.control]

    def has_consumers(self, name: str) -> bool:
        return bool(self.consumers.get(name))

    def producer(self, text: str) -> Any | None:
        return self.nodes.get(parse_input(text).node)


def data_inputs(node: Any) -> list[str]:
    return [i for i in node.input if not i.startswith("^")]


def control_inputs(node: Any) -> list[str]:
    return [i for i in node.input if i.startswith("^")]


def set_inputs(node: Any, inputs: Iterable[str]) -> None:
    """Replace ``node.input``: data inputs first, control inputs after, duplicates dropped."""
    data: list[str] = []
    control: list[str] = []
    for text in inputs:
        if text.startswith("^"):
            if text not in control:
                control.append(text)
        else:
            data.append(text)
    data_nodes = {parse_input(t).node for t in data}
    control = [c for c in control if c[1:] not in data_nodes]
    del node.input[:]
    node.input.extend(data + control)


def topological_order(graph_def: Any) -> list[str] | None:
    """Node names in dependency order, or ``None`` when the graph has a cycle.

    Edges leaving ``NextIteration`` nodes (TF1 while loops) do not count as cycle edges.
    Inputs naming missing nodes are ignored here (validate them separately).
    """
    order = _kahn(graph_def, loop_edges=False)
    return order if len(order) == len({n.name for n in graph_def.node}) else None


def cycle_members(graph_def: Any) -> list[str]:
    """Names of nodes left over by a topological sort (on or behind a cycle)."""
    order = topological_order(graph_def)
    if order is None:
        done = set(_kahn(graph_def, loop_edges=True))
        return sorted(n.name for n in graph_def.node if n.name not in done)
    return []


def _kahn(graph_def: Any, *, loop_edges: bool) -> list[str]:
    """The nodes a topological sort reaches (all of them unless there is a cycle); ``loop_edges``:
    whether edges leaving ``NextIteration`` nodes count."""
    ops = {n.name: n.op for n in graph_def.node}
    indegree = {n.name: 0 for n in graph_def.node}
    out: dict[str, list[str]] = {}
    for node in graph_def.node:
        for text in node.input:
            src = parse_input(text).node
            if src not in ops or (not loop_edges and ops[src] in ("NextIteration", "RefNextIteration")):
                continue
            indegree[node.name] += 1
            out.setdefault(src, []).append(node.name)
    ready = [n for n, d in indegree.items() if d == 0]
    order: list[str] = []
    while ready:
        name = ready.pop()
        order.append(name)
        for dst in out.get(name, []):
            indegree[dst] -= 1
            if indegree[dst] == 0:
                ready.append(dst)
    return order


def const_bytes(node: Any) -> int:
    """The bytes the value of a ``Const`` node takes once expanded (its declared shape x its dtype).

    A Const may store one value for a whole shape (``float_val: 0.5`` for [10**6, 10**6]): a few
    bytes in the file, terabytes once TensorFlow or numpy expands it.
    """
    import math

    from tensorflow.python.framework import dtypes

    tensor = node.attr["value"].tensor
    dims = [max(int(d.size), 0) for d in tensor.tensor_shape.dim]
    try:
        size = dtypes.as_dtype(tensor.dtype).size
    except (TypeError, ValueError):
        size = 8
    return math.prod(dims) * max(int(size), 1)


def check_const_size(node: Any, where: str) -> None:
    """Refuse a ``Const`` whose expanded value needs more memory than the machine has, naming the node.

    Raises:
        ModelError: before anything is allocated.
    """
    import psutil

    from tfcpu.errors import ModelError

    need, total = const_bytes(node), psutil.virtual_memory().total
    if need > total:
        shape = [int(d.size) for d in node.attr["value"].tensor.tensor_shape.dim]
        raise ModelError(
            f"the constant {node.name!r} of shape {shape} needs {need / 2**30:,.1f} GiB, more than this "
            f"machine's {total / 2**30:,.1f} GiB of memory",
            where=f"{where}: {node.name}",
            why="its value is stored once and would be expanded to the whole shape",
            hint="the model file is corrupt or hostile: re-export it, or run it on a machine with enough memory",
        )


def check_const_sizes(graph_def: Any, where: str) -> None:
    """`check_const_size` for every Const of the graph and of its function library."""
    nodes = [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]
    for node in nodes:
        if node.op == "Const" and "value" in node.attr:
            check_const_size(node, where)


def const_array(node: Any) -> Any:
    """The numpy value of a ``Const`` node (TensorFlow's tensor_util, imported lazily).

    Raises:
        ModelError: the value would need more memory than the machine has (`check_const_size`).
    """
    from tensorflow.python.framework import tensor_util

    check_const_size(node, "<graph>")
    return tensor_util.MakeNdarray(node.attr["value"].tensor)


def make_const(graph_def: Any, name: str, value: Any, *, device: str = "") -> Any:
    """Append a ``Const`` node holding ``value`` (a numpy array) and return it."""
    from tensorflow.python.framework import tensor_util

    tensor = tensor_util.make_tensor_proto(value)
    node = graph_def.node.add()
    node.name = name
    node.op = "Const"
    node.device = device
    node.attr["dtype"].type = tensor.dtype
    node.attr["value"].tensor.CopyFrom(tensor)
    return node


def set_const_value(node: Any, value: Any) -> None:
    """Overwrite the value of a ``Const`` node in place."""
    from tensorflow.python.framework import tensor_util

    tensor = tensor_util.make_tensor_proto(value)
    node.attr["dtype"].type = tensor.dtype
    node.attr["value"].tensor.CopyFrom(tensor)


def const_elements(node: Any) -> int:
    """Number of elements of a Const node, read from its shape without decoding the data."""
    shape = node.attr["value"].tensor.tensor_shape
    count = 1
    for dim in shape.dim:
        count *= max(int(dim.size), 0)
    return count


def unique_name(existing: set[str] | dict[str, Any], base: str) -> str:
    if base not in existing:
        return base
    i = 1
    while f"{base}_{i}" in existing:
        i += 1
    return f"{base}_{i}"


def called_functions(node: Any, library: Container[str]) -> set[str]:
    """The functions of ``library`` that ``node`` calls: as its op, or through a function-valued
    attribute (``If``/``While`` branches, ``PartitionedCall``'s ``f``, a dataset's ``f``, lists of them)."""
    names = {str(node.op)}
    for value in node.attr.values():
        kind = value.WhichOneof("value")
        if kind == "func":
            names.add(str(value.func.name))
        elif kind == "list":
            names.update(str(f.name) for f in value.list.func)
    return {name for name in names if name in library}


def reachable_functions(roots: Iterable[str], bodies: Mapping[str, Any]) -> set[str]:
    """Every function of ``bodies`` (name -> FunctionDef) reachable from ``roots`` (included)."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen or name not in bodies:
            continue
        seen.add(name)
        for node in bodies[name].node_def:
            stack.extend(called_functions(node, bodies) - seen)
    return seen
