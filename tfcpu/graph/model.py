"""The frozen ``Model`` value object handed between stages: a GraphDef plus its signature.

A Model never changes after construction. Its GraphDef is copied once on entry (so what the
caller passed in can change without changing the Model) and must be treated as read-only by
every consumer; stages that rewrite a graph, or hand it to code that might (INC, TensorFlow),
pass `copy_graph_def()` of it and build a new Model. ``metadata`` is a read-only mapping.

Metadata keys tfcpu's stages set (`OPTIMIZED`, `PRECISION`, `NEEDS_ONEDNN`,
`FP32_NODES`) are named here, so a stage reads what an earlier one wrote without a
string of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfcpu._codec import Serializable

if TYPE_CHECKING:  # pragma: no cover
    from tensorflow.core.framework.graph_pb2 import GraphDef

__all__ = [
    "FP32_NODES",
    "NEEDS_ONEDNN",
    "OPTIMIZED",
    "PRECISION",
    "SIGNATURE_KEYS",
    "Metadata",
    "Model",
    "ModelRecord",
    "TensorSpec",
    "copy_graph_def",
    "tensor_name",
]

#: Set by ``GraphOptimizer.run`` on the Model it returns: the passes that ran (a tuple of their
#: descriptions). A Model carrying it is "already optimised": ``Quantizer.run`` does not optimise it again.
OPTIMIZED = "optimized_with"
#: ``"int8"`` / ``"bf16"``: set by the Quantizer on the Model it returns.
PRECISION = "precision"
#: True when the graph only runs with oneDNN on (BF16 rewrites carry no Quantized op to tell).
NEEDS_ONEDNN = "needs_onednn"
#: The nodes the Quantizer's accuracy loop kept in FP32.
FP32_NODES = "fp32_nodes"
#: ``"bf16"`` when the compute an INT8 graph left in float runs in BF16 (``Quantizer.remainder``).
REMAINDER = "remainder"
#: The keys of the SavedModel signature a Model was loaded from: ``{"inputs": {tensor: key},
#: "outputs": {tensor: key}}``; a SavedModel export (`tfcpu.formats.savedmodel`) keeps them.
SIGNATURE_KEYS = "signature_keys"
#: The artefact format of a Model that does not hold a GraphDef (`tfcpu.formats`).
FORMAT = "format"


def copy_graph_def(graph_def: Any) -> Any:
    """A deep copy of a GraphDef (same protobuf class; does not import TensorFlow); None stays None
    (a signature-only Model, as tests and the input generator use)."""
    if graph_def is None:
        return None
    out = type(graph_def)()
    out.CopyFrom(graph_def)
    return out


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return Metadata(value)
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, set | frozenset):
        return frozenset(value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list | frozenset | set):
        return [_thaw(v) for v in value]
    return value


class Metadata(Mapping[str, Any]):
    """A read-only mapping (nested lists become tuples); ``.get``, ``in``, ``{**m}`` work as on a dict."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = {str(k): _freeze(v) for k, v in (data or {}).items()}

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Metadata({self._data!r})"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (tuples become lists)."""
        result: dict[str, Any] = _thaw(self)
        return result


def is_quantized_op(op: str) -> bool:
    """``QuantizedConv2DWithBiasAndReluAndRequantize``, ``_QuantizedMatMul``, ``_FusedQuantizedConv2D``..."""
    return "Quantized" in op


def tensor_name(name: str) -> str:
    """Normalise ``"x"`` to ``"x:0"``; keep ``"x:1"`` and strip a control prefix ``"^x"``."""
    name = name.lstrip("^")
    return name if ":" in name else f"{name}:0"


@dataclass(frozen=True)
class TensorSpec(Serializable):
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


@dataclass(frozen=True)
class Model:
    """A frozen inference graph and its signature.

    Attributes:
        graph_def: a ``tf.compat.v1.GraphDef`` with every variable frozen to a constant.
            Read-only by contract.
        inputs: feedable tensors (usually Placeholders), in signature order.
        outputs: fetched tensors, in signature order.
        source: where the model came from (path or description), for messages.
        metadata: what earlier stages recorded (read-only; keys such as `OPTIMIZED`).
    """

    graph_def: GraphDef
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    source: str = "<memory>"
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        # Copied on entry: the caller keeps its GraphDef, the Model owns one nobody else holds.
        object.__setattr__(self, "graph_def", copy_graph_def(self.graph_def))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "metadata", Metadata(self.metadata))

    @property
    def optimized_with(self) -> tuple[str, ...] | None:
        """The GraphOptimizer passes this Model came out of (`OPTIMIZED`), or None if it did not."""
        steps = self.metadata.get(OPTIMIZED)
        return None if steps is None else tuple(str(s) for s in steps)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    @property
    def runnable(self) -> bool:
        """Whether this Model holds an artefact a backend can run (a `ModelRecord` does not)."""
        return True

    @property
    def format(self) -> str:
        """The artefact format this Model holds, a key of `tfcpu.formats.FORMATS` (``"graphdef"``)."""
        return str(self.metadata.get(FORMAT) or "graphdef")

    @property
    def preferred_backend(self) -> str:
        """The runner backend this model's format runs on unless told otherwise (`tfcpu.formats`)."""
        from tfcpu import formats

        return formats.for_model(self).backend

    @property
    def node_count(self) -> int:
        return len(self.graph_def.node)

    @property
    def needs_onednn(self) -> bool:
        """Whether the graph only runs with oneDNN on: INT8 graphs (``*Quantized*`` kernels exist only
        in oneDNN builds) and graphs the Quantizer rewrote to BF16. Stock TensorFlow turns oneDNN on
        by itself only on CPUs with VNNI/BF16/AMX; elsewhere set ``TF_ENABLE_ONEDNN_OPTS=1`` before
        TensorFlow is imported (tfcpu's fresh-process runners do)."""
        if self.metadata.get(NEEDS_ONEDNN):
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

    def save(self, path: str | os.PathLike[str], *, format: str | None = None, serving: bool = False) -> Path:
        """Write the model atomically in the format ``path`` names (or ``format``), through `tfcpu.formats`.

        ``model.pb``/``model.pbtxt`` write the frozen GraphDef (its signature is inferred again when
        loaded); a directory writes a SavedModel with the Model's signature, which
        ``tf.saved_model.load``, ``keras.layers.TFSMLayer`` and TF Serving read.

        Args:
            path: the file or directory to write.
            format: a key of `tfcpu.formats.FORMATS` (``"graphdef"``, ``"savedmodel"``, ...), when the
                path does not say it.
            serving: SavedModel only: write TF Serving's layout, ``path/<version>/``.

        Returns:
            What was written (for ``serving``, the version directory).

        Raises:
            ModelError: the format cannot hold this model, or the output cannot be written.
        """
        from tfcpu import formats
        from tfcpu.errors import ConfigError, ModelError

        target = Path(path)
        try:
            fmt = formats.for_output(self, target, format)
        except ConfigError as exc:
            raise ModelError(exc.what, where=exc.where, why=exc.why, hint=exc.hint) from None
        options = {"serving": True} if serving else {}
        if serving and not fmt.directory:
            raise ModelError("TF Serving's layout is a SavedModel directory", where=str(target),
                             hint="give a directory (or format='savedmodel') with serving=True")  # fmt: skip
        return fmt.save(self, target, **options)

    def to_dict(self) -> dict[str, Any]:
        """The signature and op histogram (not the weights) as JSON-ready data."""
        return {
            "source": self.source,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "nodes": self.node_count,
            "op_counts": self.op_counts(),
            "metadata": _thaw(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelRecord:
        """A `ModelRecord` from `to_dict` data: the signature and op histogram of a loaded report.

        Args:
            data: what `to_dict` returned (after a JSON round trip).

        Raises:
            ConfigError: ``data`` is not a Model record.
        """
        from tfcpu.errors import ConfigError

        try:
            return ModelRecord(
                graph_def=None,
                inputs=tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
                outputs=tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
                source=str(data["source"]),
                metadata=data.get("metadata") or {},
                counts={str(k): int(v) for k, v in data["op_counts"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError("not a Model record", why=f"{type(exc).__name__}: {exc}") from exc

    def __rich__(self) -> Any:
        return self.summary().__rich__()

    def _repr_html_(self) -> str:
        return str(self.summary()._repr_html_())


@dataclass(frozen=True)
class ModelRecord(Model):
    """A Model read back from a result's JSON: its signature, op histogram and metadata, no graph
    (``graph_def`` is None). A loaded report, not a runnable model: load the saved graph to run it.

    Attributes:
        counts: how many nodes of each op type the graph had (what `op_counts` returns).
    """

    counts: Mapping[str, int] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "counts", Metadata(self.counts))

    @property
    def runnable(self) -> bool:
        return False

    @property
    def node_count(self) -> int:
        return sum(self.counts.values())

    @property
    def needs_onednn(self) -> bool:
        return bool(self.metadata.get(NEEDS_ONEDNN)) or any(is_quantized_op(op) for op in self.counts)

    def op_counts(self) -> dict[str, int]:
        return dict(sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def to_bytes(self) -> bytes:
        from tfcpu.errors import ModelError

        raise ModelError(
            "a model read back from a report has no graph",
            where=self.source,
            hint="load the saved model file (tfcpu.load(path)) to run or save it",
        )
