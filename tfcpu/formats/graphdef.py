"""The ``graphdef`` format: a frozen TensorFlow GraphDef, binary (``.pb``) or text (``.pbtxt``).

The signature is not stored in a GraphDef: `load_graphdef` infers it (Placeholders in, sinks out)
unless names are given, and `save_graphdef` writes the graph alone, atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfcpu.errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.graph.model import Model

__all__ = ["load_graphdef", "save_graphdef"]


def load_graphdef(path: Path, inputs: tuple[str, ...] | None, outputs: tuple[str, ...] | None) -> Model:
    """Read, check, scan and wrap the GraphDef file ``path`` (see `tfcpu.graph.load`)."""
    from tfcpu.graph.load import _from_graph_def, _read_graph_def

    return _from_graph_def(_read_graph_def(path), inputs, outputs, str(path), check_versions=True)


def save_graphdef(model: Model, path: Path) -> Path:
    """Write ``model``'s GraphDef atomically: binary for ``.pb``, text for ``.pbtxt``.

    Raises:
        ModelError: an unknown suffix, or the file cannot be written (permissions, space).
    """
    from tfcpu._io import atomic_write_bytes, atomic_write_text

    suffix = path.suffix.lower()
    if suffix not in (".pb", ".pbtxt"):
        raise ModelError(
            "cannot tell the format from the file name", where=str(path), hint="use a .pb or .pbtxt suffix"
        )
    try:
        if suffix == ".pb":
            return atomic_write_bytes(path, model.to_bytes())
        from google.protobuf import text_format

        return atomic_write_text(path, text_format.MessageToString(_graph(model)))
    except OSError as exc:  # permission, missing directory, disk full: the user's to fix
        raise ModelError(
            "cannot write the model",
            where=str(path),
            why=f"{type(exc).__name__}: {exc.strerror or exc}",
            hint="write to a directory you can write to, with free space (check -o / the path)",
        ) from exc


def _graph(model: Model) -> Any:
    return model.graph_def
