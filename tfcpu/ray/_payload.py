"""``ModelPayload``: a Model as plain bytes and dicts, so an actor can receive it before TensorFlow starts.

A `Model` holds a ``GraphDef`` protobuf; unpickling one imports TensorFlow.
An actor must pin itself and set thread variables *before* TensorFlow starts, so models
travel to actors as a payload of serialized bytes and signature dicts, and become a Model
only after pinning (`ModelPayload.to_model()`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tfcpu.errors import ConfigError

if TYPE_CHECKING:
    from tfcpu.graph.model import Model

__all__ = ["ModelPayload"]


@dataclass(frozen=True)
class ModelPayload:
    """The serialized GraphDef and signature of a Model (picklable without TensorFlow)."""

    graph: bytes
    inputs: tuple[dict[str, Any], ...]
    outputs: tuple[dict[str, Any], ...]
    source: str = "<memory>"
    needs_onednn: bool = False  # read from the ops in the driver: an actor decides before TensorFlow starts

    @classmethod
    def from_model(cls, model: Model) -> ModelPayload:
        from tfcpu.graph.model import Model

        if not isinstance(model, Model):
            raise ConfigError(
                f"expected a tfcpu Model, got {type(model).__name__}",
                hint="load it first: model = tfcpu.load(path_or_keras_model)",
            )
        return cls(
            model.to_bytes(),
            tuple(s.to_dict() for s in model.inputs),
            tuple(s.to_dict() for s in model.outputs),
            model.source,
            model.needs_onednn,
        )

    @classmethod
    def coerce(cls, model: Any) -> ModelPayload:
        """A payload from a payload, a Model, or a path that `tfcpu.load()` reads."""
        if isinstance(model, ModelPayload):
            return model
        if isinstance(model, (str, os.PathLike)):
            from tfcpu.graph.load import load

            return cls.from_model(load(os.fspath(model)))
        return cls.from_model(model)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(str(s["name"]) for s in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(str(s["name"]) for s in self.outputs)

    def to_model(self) -> Model:
        """Parse the GraphDef (imports TensorFlow)."""
        from tfcpu._lazy import import_tensorflow
        from tfcpu.graph.model import Model, TensorSpec

        tf = import_tensorflow()
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(self.graph)
        return Model(
            graph_def,
            tuple(TensorSpec.from_dict(dict(s)) for s in self.inputs),
            tuple(TensorSpec.from_dict(dict(s)) for s in self.outputs),
            source=self.source,
        )
