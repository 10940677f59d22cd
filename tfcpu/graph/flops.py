"""Multiply-add FLOPs of the MatMul-like ops of a graph, and the share that runs quantised.

``matmul_flops(graph_def, shapes)`` fixes every input to a concrete shape (e.g. batch 8 x
sequence 128), lets TensorFlow's shape inference propagate it, and counts per node

* ``MatMul``-like (any op whose type contains ``MatMul``, quantised or not, 2-D or batched):
  ``2 * prod(output shape) * K`` with ``K`` the contracted length of input 0 (its last axis, or
  the one before when ``transpose_a``/``adj_x`` is set);
* ``Einsum``: ``2 * prod(output shape) * prod(contracted dimensions)`` read off the equation;
* ``Conv2D``-like (type contains ``Conv2D``, only with ``include_conv=True``):
  ``2 * prod(output shape) * kh * kw * cin`` (with the filter's shape; depthwise: ``kh * kw``).

A node is *quantised* when its op type contains ``Quantized`` (INC's ``_QuantizedMatMul``,
``_QuantizedBatchMatMul``, ``_FusedQuantizedConv2D``...). `FlopShare` says how much of
the counted compute ran in INT8 (``share``), per op type.

Calls to library functions (``PartitionedCall``, Keras' XLA grouped convolutions) are counted
by what is inside them: the count inlines them first (`tfcpu.graph.passes.inline_functions`).
A call that cannot be inlined and holds counted ops is named in ``hidden``; ``share`` is then
``None``, because the FLOPs inside it are unknown and any share would be overstated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tfcpu.graph._graphdef import called_functions, reachable_functions

__all__ = ["FlopRow", "FlopShare", "matmul_flops"]


@dataclass(frozen=True)
class FlopRow:
    """One op type: how many nodes, their FLOPs, and whether it is a quantised op."""

    op: str
    nodes: int
    flops: int
    quantized: bool

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "nodes": self.nodes, "flops": self.flops, "quantized": self.quantized}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FlopRow:
        return cls(str(data["op"]), int(data["nodes"]), int(data["flops"]), bool(data["quantized"]))


@dataclass(frozen=True)
class FlopShare:
    """FLOPs of the counted ops, per op type, and the quantised share."""

    rows: tuple[FlopRow, ...]
    shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    hidden: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(r.flops for r in self.rows)

    @property
    def quantized(self) -> int:
        return sum(r.flops for r in self.rows if r.quantized)

    @property
    def share(self) -> float | None:
        """Quantised FLOPs / all counted FLOPs (0.0 for a graph with none); None when function
        calls that hold counted ops could not be looked into (``hidden``)."""
        if self.hidden:
            return None
        return self.quantized / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [r.to_dict() for r in self.rows],
            "shapes": {k: list(v) for k, v in self.shapes},
            "total": self.total,
            "quantized": self.quantized,
            "share": self.share,
            "hidden": list(self.hidden),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FlopShare:
        shapes = tuple((str(k), tuple(int(d) for d in v)) for k, v in data.get("shapes", {}).items())
        hidden = tuple(str(h) for h in data.get("hidden", ()))
        return cls(tuple(FlopRow.from_dict(r) for r in data["rows"]), shapes, hidden)


def _prod(values: Sequence[int | None]) -> int | None:
    out = 1
    for v in values:
        if v is None:
            return None
        out *= v
    return out


def _einsum_contracted(equation: str, shapes: list[tuple[int | None, ...] | None]) -> int | None:
    lhs, _, out = equation.replace(" ", "").partition("->")
    dims: dict[str, int | None] = {}
    for letters, shape in zip(lhs.split(","), shapes, strict=False):
        if shape is None or "." in letters or len(letters) != len(shape):
            return None
        dims.update(zip(letters, shape, strict=True))
    return _prod([dims[c] for c in dims if c not in out])


def _node_flops(node: Any, static: Mapping[str, Any]) -> int | None:
    from tfcpu.graph._graphdef import data_inputs
    from tfcpu.graph.passes._shapes import key

    ins = [static.get(key(t)) for t in data_inputs(node)]
    output = static.get(f"{node.name}:0")
    if output is None or output.shape is None or not ins or ins[0] is None or ins[0].shape is None:
        return None
    size = _prod(output.shape)
    if size is None:
        return None
    if node.op == "Einsum":
        contracted = _einsum_contracted(node.attr["equation"].s.decode(), [s.shape if s else None for s in ins])
        return None if contracted is None else 2 * size * contracted
    if "MatMul" in node.op:
        a = ins[0].shape
        transposed = node.attr["transpose_a"].b or node.attr["adj_x"].b
        k = a[-2] if transposed else a[-1]
        return None if k is None else 2 * size * k
    if "Conv2D" in node.op and len(ins) > 1 and ins[1] is not None and ins[1].shape is not None:
        kh, kw, cin = ins[1].shape[0], ins[1].shape[1], ins[1].shape[2]
        per = _prod([kh, kw]) if "Depthwise" in node.op else _prod([kh, kw, cin])
        return None if per is None else 2 * size * per
    return None


def _counted(op: str, include_conv: bool) -> bool:
    return op == "Einsum" or "MatMul" in op or (include_conv and "Conv2D" in op)


def matmul_flops(graph_def: Any, shapes: Mapping[str, Sequence[int]], *, include_conv: bool = False) -> FlopShare:
    """FLOPs of ``graph_def``'s MatMul/Einsum (and Conv) ops with inputs of ``shapes`` (``{"ids:0": (8, 128)}``).

    Args:
        graph_def: a frozen GraphDef (FP32, BF16 or INT8).
        shapes: concrete shape per input tensor (``"node"`` or ``"node:0"``); every Placeholder
            not named keeps its own (possibly partial) shape.
        include_conv: count ``Conv2D``-like ops too (off: the share of MatMul/Einsum FLOPs).
    """
    from tfcpu.graph.passes._shapes import infer
    from tfcpu.graph.passes.inline_functions import inline_calls

    fixed = type(graph_def)()
    fixed.CopyFrom(graph_def)
    wanted = {name.split(":")[0]: tuple(int(d) for d in dims) for name, dims in shapes.items()}
    for node in fixed.node:
        if node.op == "Placeholder" and node.name in wanted:
            shape = node.attr["shape"].shape
            del shape.dim[:]
            shape.unknown_rank = False
            for d in wanted[node.name]:
                shape.dim.add().size = d
    fixed, left = inline_calls(fixed, (), ())
    static = infer(fixed)
    rows: dict[str, list[int]] = {}
    for node in fixed.node:
        if not _counted(node.op, include_conv):
            continue
        flops = _node_flops(node, static)
        entry = rows.setdefault(node.op, [0, 0])
        entry[0] += 1
        entry[1] += flops or 0
    return FlopShare(
        tuple(FlopRow(op, n, f, "Quantized" in op) for op, (n, f) in sorted(rows.items())),
        tuple(sorted(wanted.items())),
        _hidden(fixed, [skip.node for skip in left], include_conv),
    )


def _hidden(graph_def: Any, calls: Sequence[str], include_conv: bool) -> tuple[str, ...]:
    """The calls left in ``graph_def`` whose functions (or functions they call) hold counted ops."""
    library = {f.signature.name: f for f in graph_def.library.function}

    def holds(call: Any) -> bool:
        reached = reachable_functions(called_functions(call, library), library)
        return any(_counted(node.op, include_conv) for name in reached for node in library[name].node_def)

    nodes = {n.name: n for n in graph_def.node}
    return tuple(c for c in calls if c in nodes and holds(nodes[c]))
