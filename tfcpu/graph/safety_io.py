"""The safety scan for a SavedModel directory, before TensorFlow reads it.

``tf.saved_model.load`` runs the SavedModel's restore functions and table initialisers while
it loads, so `tfcpu.load()` parses ``saved_model.pb`` itself first (size checked before
reading), scans every meta graph and its function library with `tfcpu.graph.safety`, and
only then lets TensorFlow load it. The frozen signature is scanned again, fully, afterwards.

Every SavedModel carries TensorFlow's own checkpoint machinery (``SaveV2``, ``RestoreV2``,
``MergeV2Checkpoints``, ``ShardedFilename``), which TensorFlow's loader calls with the path of the
SavedModel's variables. Those op types are admitted only there (`saver_scope()`: the nodes behind
the meta graph's ``saver_def`` and the functions reached from them alone) and only when the path
they use comes from the loader's; anywhere else (an initialiser, a signature, a function some other
code calls) they are refused like any op outside the allowlist.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tfcpu.errors import ModelError, runtime_reason

logger = logging.getLogger(__name__)

__all__ = ["prescan_saved_model", "read_saved_model_proto", "saver_scope"]

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
            why=runtime_reason(exc) if str(exc) else type(exc).__name__,
        ) from exc
    if not proto.meta_graphs:
        raise ModelError("the SavedModel has no meta graph (truncated or corrupt)", where=str(pb))
    return proto


def prescan_saved_model(path: Path) -> None:
    """Scan every meta graph of the SavedModel at ``path``; raise UnsafeModelError on findings.

    Nothing of the model runs: ``saved_model.pb`` is parsed as a protobuf. TensorFlow's checkpoint
    ops are admitted only in the saver that TensorFlow's loader calls with the variables' path
    (`saver_scope`), and only when the path they use is that one.
    """
    from tfcpu.graph import safety

    proto = read_saved_model_proto(path)
    for index, meta in enumerate(proto.meta_graphs):
        where = f"{path} (meta graph {index})"
        report = safety.check(meta.graph_def, where, checkpoints=saver_scope(meta))
        logger.debug("safety pre-scan of %s: %d nodes, %d functions", where, report.nodes_scanned,
                     report.functions_scanned)  # fmt: skip


def saver_scope(meta: Any) -> Any:
    """The `tfcpu.graph.safety.CheckpointScope` of a meta graph: its saver's nodes and functions.

    The saver's main-graph nodes are everything its save tensor and restore op read. Its functions
    are those reached from these nodes and from nowhere else (no other node, no other function), so
    an initialiser that calls a checkpoint op, or the saver's code with a path of its own, is not
    in the scope.
    """
    from tfcpu.graph._graphdef import called_functions, parse_input, reachable_functions
    from tfcpu.graph.safety import CheckpointScope

    saver = meta.saver_def
    graph = meta.graph_def
    roots = [t.split(":")[0] for t in (saver.save_tensor_name, saver.restore_op_name) if t]
    if not roots:
        return CheckpointScope()
    by_name = {n.name: n for n in graph.node}
    nodes: set[str] = set()
    stack = [r for r in roots if r in by_name]
    while stack:
        name = stack.pop()
        if name in nodes:
            continue
        nodes.add(name)
        stack.extend(parse_input(t).node for t in by_name[name].input if parse_input(t).node in by_name)
    bodies = {f.signature.name: f for f in graph.library.function}
    from_saver = reachable_functions({f for n in nodes for f in called_functions(by_name[n], bodies)}, bodies)
    others = {f for n in graph.node if n.name not in nodes for f in called_functions(n, bodies)}
    others |= set(bodies) - from_saver  # any function outside the saver may be an entry point of the loader
    shared = reachable_functions(others, bodies)
    filename = saver.filename_tensor_name.split(":")[0]
    return CheckpointScope(frozenset(from_saver - shared), frozenset(nodes), filename)
