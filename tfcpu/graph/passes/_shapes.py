"""Static shapes and dtypes of every tensor, from TensorFlow's own shape inference.

Shared by the transformer passes. ``infer(graph_def)`` imports the graph once into a fresh
``tf.Graph`` (TensorFlow runs each op's C++ shape function on import) and returns, per tensor
``"node:k"``, its `Static` shape (``None`` per unknown dimension, ``None`` for an unknown
rank) and dtype enum. Nothing is executed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Static", "infer"]


@dataclass(frozen=True)
class Static:
    """What shape inference knows of one tensor."""

    shape: tuple[int | None, ...] | None
    dtype: int  # a DataType enum value

    @property
    def known(self) -> bool:
        return self.shape is not None and all(d is not None for d in self.shape)


def infer(graph_def: Any) -> dict[str, Static]:
    """``{"node:k": Static}`` for every output of every node of ``graph_def``."""
    from tfcpu._lazy import import_tensorflow
    from tfcpu.graph.passes.strip_attrs import for_installed_tensorflow

    tf = import_tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(for_installed_tensorflow(graph_def), name="")
    out: dict[str, Static] = {}
    for op in graph.get_operations():
        for k, tensor in enumerate(op.outputs):
            rank = tensor.shape.rank
            shape = None if rank is None else tuple(tensor.shape.as_list())
            out[f"{op.name}:{k}"] = Static(shape, int(tensor.dtype.as_datatype_enum))
    return out


def key(text: str) -> str:
    """``"a"`` -> ``"a:0"``; ``"a:2"`` stays (data inputs only)."""
    from tfcpu.graph._graphdef import parse_input

    ref = parse_input(text)
    return f"{ref.node}:{ref.index}"
