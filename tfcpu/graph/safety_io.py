"""The safety scan for a SavedModel directory, before TensorFlow reads it.

``tf.saved_model.load`` runs the SavedModel's restore functions and table initialisers while
it loads, so `tfcpu.load()` parses ``saved_model.pb`` itself first (size checked before
reading), scans every meta graph and its function library with `tfcpu.graph.safety`, and
only then lets TensorFlow load it. The frozen signature is scanned again, fully, afterwards.

Every SavedModel carries TensorFlow's own checkpoint machinery (``SaveV2``, ``RestoreV2``,
``MergeV2Checkpoints``, ``ShardedFilename``, fed with paths inside the SavedModel directory by
TensorFlow's loader), so those op types are not refused in this pre-scan; they cannot reach the
frozen inference graph (the post-scan would refuse them there).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tfcpu.errors import ModelError

logger = logging.getLogger(__name__)

__all__ = ["CHECKPOINT_OPS", "prescan_saved_model", "read_saved_model_proto"]

CHECKPOINT_OPS = (
    "SaveV2", "Save", "SaveSlices", "RestoreV2", "Restore", "RestoreSlice", "MergeV2Checkpoints",
    "ShardedFilename", "ShardedFilespec",
)  # fmt: skip
#: The largest protobuf message the runtime parses (2 GiB - 1).
MAX_PROTO_BYTES = 2 * 1024**3 - 1


def check_proto_size(path: Path, what: str, *, large_why: str = "", large_hint: str | None = None) -> None:
    """Refuse an empty protobuf file or one larger than a protobuf message can be, before reading it.

    Args:
        path: the file.
        what: how the messages name it (``"model file"``).
        large_why: appended to the size in the too-large message.
        large_hint: the fix in the too-large message.

    Raises:
        ModelError: the file is empty or larger than `MAX_PROTO_BYTES`.
    """
    size = path.stat().st_size
    if size == 0:
        raise ModelError(f"{what} is empty", where=str(path), hint="re-export the model")
    if size > MAX_PROTO_BYTES:
        raise ModelError(
            f"{what} is larger than 2 GiB",
            where=str(path),
            why=f"{size} bytes; a protobuf message cannot exceed 2 GiB{large_why}",
            hint=large_hint,
        )


def read_saved_model_proto(path: Path) -> Any:
    """Parse ``path/saved_model.pb`` (or ``.pbtxt``) with the size checked before reading."""
    from tfcpu._lazy import import_tensorflow

    import_tensorflow()
    from google.protobuf import message, text_format
    from tensorflow.core.protobuf import saved_model_pb2

    binary = path / "saved_model.pb"
    pb = binary if binary.is_file() else path / "saved_model.pbtxt"
    check_proto_size(pb, "the SavedModel's graph file")
    proto = saved_model_pb2.SavedModel()
    data = pb.read_bytes()
    try:
        if pb.suffix == ".pbtxt":
            text_format.Parse(data.decode("utf-8"), proto)
        else:
            proto.ParseFromString(data)
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError) as exc:
        raise ModelError(
            "the SavedModel's graph does not decode (truncated or corrupt)",
            where=str(pb),
            why=str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
        ) from exc
    if not proto.meta_graphs:
        raise ModelError("the SavedModel has no meta graph (truncated or corrupt)", where=str(pb))
    return proto


def prescan_saved_model(path: Path) -> None:
    """Scan every meta graph of the SavedModel at ``path``; raise UnsafeModelError on findings."""
    from tfcpu.graph import safety

    proto = read_saved_model_proto(path)
    allowed = (*safety.current_allowance(), *CHECKPOINT_OPS)
    for index, meta in enumerate(proto.meta_graphs):
        where = f"{path} (meta graph {index})"
        report = safety.check(meta.graph_def, where, allowed=allowed)
        logger.debug("safety pre-scan of %s: %d nodes, %d functions", where, report.nodes_scanned,
                     report.functions_scanned)  # fmt: skip
