"""The frozen ``Model`` value object handed between stages: a GraphDef plus its signature.

A Model never changes after construction. Its GraphDef is copied once on entry and must be
treated as read-only by every consumer; stages that rewrite a graph copy it first and
build a new Model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from tensorflow.core.framework.graph_pb2 import GraphDef

__all__ = ["Model", "TensorSpec", "tensor_name"]


def is_quantized_op(op: str) -> bool:
    """``QuantizedConv2DWithBiasAndReluAndRequantize``, ``_QuantizedMatMul``, ``_FusedQuantizedConv2D``..."""
    return "Quantized" in op


def tensor_name(name: str) -> str:
    """Normalise ``"x"`` to ``"x:0"``; keep ``"x:1"`` and strip a control prefix ``"^x"``."""
    name = name.lstrip("^")
    return name if ":" in name else f"{name}:0"


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: tensor name (``node:index``), dtype name, shape.

    ``shape`` is ``None`` when the rank is unknown; unknown dimensions are ``None``.
    ``op`` is the type of the producing node (``Placeholder``, ``Softmax`` ...).
    """

    name: str
    dtype: str
    shape: tuple[int | None, ...] | None
    op: str = ""

    @property
    def node(self) -> str:
        return self.name.rsplit(":", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": None if self.shape is None else list(self.shape),
            "op": self.op,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        shape = data.get("shape")
        return cls(data["name"], data["dtype"], None if shape is None else tuple(shape), data.get("op", ""))


@dataclass(frozen=True)
class Model:
    """A frozen inference graph and its signature.

    Attributes:
        graph_def: a ``tf.compat.v1.GraphDef`` with every variable frozen to a constant.
            Read-only by contract.
        inputs: feedable tensors (usually Placeholders), in signature order.
        outputs: fetched tensors, in signature order.
        source: where the model came from (path or description), for messages.
    """

    graph_def: GraphDef
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    source: str = "<memory>"
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    @property
    def node_count(self) -> int:
        return len(self.graph_def.node)

    @property
    def needs_onednn(self) -> bool:
        """Whether the graph only runs with oneDNN on: INT8 graphs (``*Quantized*`` kernels exist only
        in oneDNN builds) and graphs the Quantizer rewrote to BF16. Stock TensorFlow turns oneDNN on
        by itself only on CPUs with VNNI/BF16/AMX; elsewhere set ``TF_ENABLE_ONEDNN_OPTS=1`` before
        TensorFlow is imported (tfcpu's fresh-process runners do)."""
        if self.metadata.get("needs_onednn"):
            return True
        return any(is_quantized_op(node.op) for node in self.graph_def.node)

    def op_counts(self) -> dict[str, int]:
        """How many nodes of each op type the main graph holds."""
        counts: dict[str, int] = {}
        for node in self.graph_def.node:
            counts[node.op] = counts.get(node.op, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def to_bytes(self) -> bytes:
        return bytes(self.graph_def.SerializeToString(deterministic=True))

    def summary(self) -> Any:
        """A `GraphSummary`: inputs, outputs, parameters, op histogram."""
        from tfcpu.graph.summary import summarize

        return summarize(self)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the GraphDef atomically: binary for ``.pb``, text for ``.pbtxt``.

        The signature is not stored in a GraphDef; `tfcpu.load()` infers it again
        (Placeholders and sinks), or pass ``inputs=``/``outputs=`` when loading.
        """
        from tfcpu._io import atomic_write_bytes, atomic_write_text
        from tfcpu.errors import ModelError

        target = Path(path)
        suffix = target.suffix.lower()
        if suffix == ".pb":
            return atomic_write_bytes(target, self.to_bytes())
        if suffix == ".pbtxt":
            from google.protobuf import text_format

            return atomic_write_text(target, text_format.MessageToString(self.graph_def))
        raise ModelError(
            "cannot tell the format from the file name", where=str(target), hint="use a .pb or .pbtxt suffix"
        )

    def to_dict(self) -> dict[str, Any]:
        """The signature and op histogram (not the weights) as JSON-ready data."""
        return {
            "source": self.source,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "nodes": self.node_count,
            "op_counts": self.op_counts(),
        }

    def __rich__(self) -> Any:
        return self.summary().__rich__()

    def _repr_html_(self) -> str:
        return str(self.summary()._repr_html_())
