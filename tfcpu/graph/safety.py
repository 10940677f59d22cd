"""Static safety scan by allowlist: a model may only compute on tensors.

TensorFlow's security model says *a model is a program*: a GraphDef can read and write files,
call Python, talk to other machines — and it can hide such ops inside its function library,
where a glance at ``graph_def.node`` does not see them. `scan()` looks at every node of the
main graph and of every function in ``graph_def.library`` (functions called through ``If``,
``While``, ``PartitionedCall``, a SavedModel's initialisers and restore functions, or any other
function-valued attribute live there too), without importing or running anything.

A node passes when its op type is on the allowlist (`tfcpu.graph.allowlist`: ops that only
compute on tensors, in groups with their reasons) or calls a function of the library. Every
other node is a finding. `tfcpu.load()` runs the scan before TensorFlow imports the graph (for a
SavedModel, before TensorFlow loads it, see `tfcpu.graph.safety_io`) and refuses a model with
findings (`UnsafeModelError`) unless each op type found is allowed explicitly
(``allow_unsafe_ops=["ReadFile"]``, ``--allow-unsafe-ops ReadFile``).

Findings carry a category, so the refusal says what the op would do:

``file-read`` / ``file-write``
    ops known to open, list, map, create or overwrite files (``ReadFile``, ``WriteFile``,
    checkpoint save/restore, summary writers, reader ops, table initialisers from text files).
``python``
    ``PyFunc``, ``PyFuncStateless``, ``EagerPyFunc``: call back into the Python process.
``network``
    RPC ops, collectives, tf.data service, NCCL, send/receive pairs between different tasks.
``dataset``
    tf.data pipelines: sources, caches and snapshots read and write files.
``debug-dump``
    ops that print or dump tensors (``PrintV2``, the tfdbg ``Debug*`` ops).
``unknown``
    op types this TensorFlow does not know (a custom op library would have to be loaded).
``not-allowed``
    any other op outside the allowlist (queues, session state, TPU/XLA launches, training ops).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tfcpu.errors import ConfigError, UnsafeModelError, did_you_mean
from tfcpu.graph.allowlist import ALLOWED_OPS

__all__ = [
    "CATEGORIES",
    "CHECKPOINT_OPS",
    "UNSAFE_OPS",
    "CheckpointScope",
    "SafetyFinding",
    "SafetyReport",
    "allowing",
    "allowing_names",
    "check",
    "current_allowance",
    "scan",
]

_FILE_READ = (
    "ReadFile", "MatchingFiles", "ImmutableConst", "Restore", "RestoreV2", "RestoreSlice", "DTensorRestoreV2",
    "InitializeTableFromTextFile", "InitializeTableFromTextFileV2", "LoadAndRemapMatrix", "RecordInput",
    "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2", "TFRecordReader",
    "TFRecordReaderV2", "FixedLengthRecordReader", "FixedLengthRecordReaderV2", "LMDBReader", "IdentityReader",
    "IdentityReaderV2", "ReaderRead", "ReaderReadV2", "ReaderReadUpTo", "ReaderReadUpToV2", "ReaderRestoreState",
    "ReaderRestoreStateV2", "TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset", "FixedLengthRecordDataset",
    "FixedLengthRecordDatasetV2", "LMDBDataset", "ExperimentalLMDBDataset", "MatchingFilesDataset",
    "ExperimentalMatchingFilesDataset", "ExperimentalCSVDataset", "SqlDataset", "ExperimentalSqlDataset",
    "LoadDataset", "SnapshotDataset", "SnapshotDatasetV2", "SnapshotDatasetReader", "SnapshotNestedDatasetReader",
    "SnapshotChunkDataset", "ListSnapshotChunksDataset",
)  # fmt: skip
_FILE_WRITE = (
    "WriteFile", "Save", "SaveV2", "SaveSlices", "MergeV2Checkpoints", "ShardedFilename", "ShardedFilespec",
    "SaveDataset", "SaveDatasetV2", "DatasetToTFRecord", "ExperimentalDatasetToTFRecord", "DistributedSave",
    "CalibrationStatisticsSaver", "SummaryWriter", "CreateSummaryFileWriter", "CreateSummaryDbWriter",
    "WriteSummary", "WriteScalarSummary", "WriteHistogramSummary", "WriteImageSummary", "WriteAudioSummary",
    "WriteGraphSummary", "WriteRawProtoSummary", "FlushSummaryWriter", "CloseSummaryWriter",
    "StatsAggregatorSetSummaryWriter", "FileSystemSetConfiguration",
)  # fmt: skip
_PYTHON = ("PyFunc", "PyFuncStateless", "EagerPyFunc")
_NETWORK = (
    "RpcServer", "RpcServerRegister", "RpcServerStart", "RpcClient", "RpcCall", "RpcCheckStatus", "RpcGetValue",
    "DeleteRpcFutureResource", "CollectiveAllToAllV2", "CollectiveAllToAllV3", "CollectiveAssignGroupV2",
    "CollectiveBcastRecv", "CollectiveBcastRecvV2", "CollectiveBcastSend", "CollectiveBcastSendV2",
    "CollectiveGather", "CollectiveGatherV2", "CollectiveInitializeCommunicator", "CollectivePermute",
    "CollectiveReduce", "CollectiveReduceScatterV2", "CollectiveReduceV2", "CollectiveReduceV3",
    "DataServiceDataset", "DataServiceDatasetV2", "DataServiceDatasetV3", "DataServiceDatasetV4",
    "RegisterDataset", "RegisterDatasetV2", "_NcclBroadcastRecv", "_NcclBroadcastSend", "_NcclReduceRecv",
    "_NcclReduceSend",
)  # fmt: skip
# Only unsafe with certain attributes (see _conditional).
_SEND_RECV = ("_Send", "_Recv", "_HostSend", "_HostRecv", "Send", "Recv")
_DEBUG = (
    "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary",
    "DebugNumericSummaryV2",
)  # fmt: skip

CATEGORIES: dict[str, str] = {
    "file-read": "opens, lists or maps files",
    "file-write": "creates or overwrites files",
    "python": "calls back into the Python interpreter",
    "network": "talks to other processes or machines",
    "debug-dump": "prints or dumps tensors",
    "dataset": "builds a tf.data pipeline, whose sources and caches read and write files",
    "unknown": "not an op this TensorFlow knows",
    "not-allowed": "not on tfcpu's allowlist of ops that only compute on tensors",
}
UNSAFE_OPS: dict[str, str] = {
    **{op: "file-read" for op in _FILE_READ},
    **{op: "file-write" for op in _FILE_WRITE},
    **{op: "python" for op in _PYTHON},
    **{op: "network" for op in _NETWORK},
}
"""Ops refused whatever their attributes, by category."""
CONDITIONAL_OPS: dict[str, str] = {
    **{op: "network" for op in _SEND_RECV},
    **{op: "debug-dump" for op in _DEBUG},
    "PrintV2": "file-write",
}
"""Ops refused only when an attribute points outside the process (remote device, file URL)."""
CHECKPOINT_OPS = (
    "SaveV2", "Save", "SaveSlices", "RestoreV2", "Restore", "RestoreSlice", "MergeV2Checkpoints",
    "ShardedFilename", "ShardedFilespec",
)  # fmt: skip
"""TensorFlow's checkpoint ops: admitted only in a SavedModel's saver, on the loader's path (`CheckpointScope`)."""
_ALL_NAMES = tuple(sorted({*UNSAFE_OPS, *CONDITIONAL_OPS}))


@dataclass(frozen=True)
class SafetyFinding:
    """One unsafe node: its op type, name, where it lives and why it is unsafe."""

    op: str
    node: str
    location: str  # "graph" or "function <name>"
    category: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "op": self.op,
            "node": self.node,
            "location": self.location,
            "category": self.category,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class SafetyReport:
    """What `scan()` found in a graph and its function library."""

    findings: tuple[SafetyFinding, ...] = ()
    nodes_scanned: int = 0
    functions_scanned: int = 0
    allowed: tuple[str, ...] = field(default=())

    @property
    def safe(self) -> bool:
        """True when nothing was found (allowed findings still count as found)."""
        return not self.findings

    @property
    def ops(self) -> tuple[str, ...]:
        """The distinct op types found, sorted."""
        return tuple(sorted({f.op for f in self.findings}))

    @property
    def refused(self) -> tuple[SafetyFinding, ...]:
        """Findings whose op type is not in ``allowed``."""
        return tuple(f for f in self.findings if f.op not in self.allowed)

    def allow(self, ops: Iterable[str] | None) -> SafetyReport:
        """The same report with ``ops`` allowed."""
        from dataclasses import replace

        return replace(self, allowed=tuple(sorted({*self.allowed, *(ops or ())})))

    def to_dict(self) -> dict[str, Any]:
        return {
            "safe": self.safe,
            "nodes_scanned": self.nodes_scanned,
            "functions_scanned": self.functions_scanned,
            "allowed": list(self.allowed),
            "findings": [{**f.to_dict(), "allowed": f.op in self.allowed} for f in self.findings],
        }

    def _rows(self) -> list[list[str]]:
        return [
            [f.op, f.node, f.location, f.category, "allowed" if f.op in self.allowed else "refused"]
            for f in self.findings
        ]

    def _title(self) -> str:
        where = f"{self.nodes_scanned} nodes, {self.functions_scanned} functions"
        if self.safe:
            return f"Safety scan: every op only computes on tensors ({where})"
        return f"Safety scan: {len(self.findings)} ops outside the allowlist ({where})"

    def __rich__(self) -> Any:
        from tfcpu._render import rich_table

        return rich_table(self._title(), ("op", "node", "location", "category", "status"), self._rows())

    def _repr_html_(self) -> str:
        from tfcpu._render import html_table

        return html_table(self._title(), ("op", "node", "location", "category", "status"), self._rows())

    def __str__(self) -> str:
        if self.safe:
            return self._title()
        lines = [self._title()] + ["  " + "  ".join(row) for row in self._rows()]
        return "\n".join(lines)


def _attr_text(node: Any, name: str) -> str:
    if name not in node.attr:
        return ""
    value = node.attr[name]
    kind = value.WhichOneof("value")
    if kind == "s":
        return bytes(value.s).decode("utf-8", "replace")
    if kind == "list":
        return " ".join(bytes(s).decode("utf-8", "replace") for s in value.list.s)
    return ""


def _task(device: str) -> str:
    """The job/replica/task part of a device name ("" for a local device)."""
    parts = [p for p in device.split("/") if p.split(":")[0] in ("job", "replica", "task")]
    return "/".join(parts)


def _conditional(node: Any) -> str | None:
    """Why a conditionally unsafe node is unsafe, or None."""
    if node.op in _SEND_RECV:
        send, recv = _attr_text(node, "send_device"), _attr_text(node, "recv_device")
        if _task(send) != _task(recv):
            return f"{send} -> {recv}"
        return None
    if node.op in _DEBUG:
        urls = _attr_text(node, "debug_urls")
        dump_root = _attr_text(node, "dump_root")
        if dump_root:
            return f"dump_root={dump_root}"
        if any(u.startswith(("file://", "grpc://")) for u in urls.split()):
            return f"debug_urls={urls}"
        return None
    if node.op == "PrintV2":
        stream = _attr_text(node, "output_stream")
        return f"output_stream={stream}" if stream.startswith("file://") else None
    return None


def _unknown_category(op: str) -> tuple[str, str]:
    """The category and detail of an op outside the allowlist and the denylists."""
    if "Dataset" in op or "Iterator" in op:
        return "dataset", ""
    if op in _DEBUG or op in ("Print", "PrintV2", "DebugGradientIdentity"):
        return "debug-dump", "writes to the process's output"
    registry = _registry()
    if registry is not None and registry(op) is None:
        return "unknown", "not an op this TensorFlow knows"
    return "not-allowed", ""


def _registry() -> Any:
    """``op_def_registry.get`` when TensorFlow is already imported (the scan never imports it)."""
    import sys

    if "tensorflow" not in sys.modules:
        return None
    from tensorflow.python.framework import op_def_registry

    return op_def_registry.get


@dataclass(frozen=True)
class CheckpointScope:
    """Where TensorFlow's own checkpoint ops may appear: the SavedModel's saver, fed its path by the loader.

    Attributes:
        functions: library functions reached only from the saver's save and restore nodes.
        nodes: main-graph nodes of a TF1 saver (``save/...``).
        filename_node: the main-graph node TensorFlow's loader feeds with the checkpoint path.
    """

    functions: frozenset[str] = frozenset()
    nodes: frozenset[str] = frozenset()
    filename_node: str = ""


def _path_from(nodes: Sequence[Any], sources: set[str], node: Any) -> bool:
    """True when the path input (input 0) of checkpoint op ``node`` depends on one of ``sources``."""
    by_name = {n.name: n for n in nodes}
    stack = [node.input[0]] if node.input else []
    seen: set[str] = set()
    while stack:
        text = stack.pop()
        if text.startswith("^"):
            continue
        name = text.split(":")[0]
        if name in sources:
            return True
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        stack.extend(by_name[name].input)
    return False


def _scan_nodes(
    nodes: Sequence[Any],
    location: str,
    functions: frozenset[str],
    checkpoint_sources: set[str] | None = None,
    context: Sequence[Any] | None = None,
) -> Iterator[SafetyFinding]:
    """Findings for ``nodes``.

    ``checkpoint_sources``: the saver's path tensors, when this is saver code; ``context``: the
    nodes a path is traced through (default ``nodes``).
    """
    for node in nodes:
        op = node.op
        if op in CONDITIONAL_OPS:
            detail = _conditional(node)
            if detail is not None:
                yield SafetyFinding(op, node.name, location, CONDITIONAL_OPS[op], detail)
            elif op not in _SEND_RECV:  # a local send/receive pair is the runtime's own plumbing
                yield SafetyFinding(op, node.name, location, "debug-dump", "writes to the process's output")
            continue
        if op in ALLOWED_OPS or op in functions:
            continue
        if checkpoint_sources is not None and op in CHECKPOINT_OPS:
            if _path_from(context or nodes, checkpoint_sources, node):
                continue
            yield SafetyFinding(op, node.name, location, UNSAFE_OPS.get(op, "file-write"),
                                "its path is not the one TensorFlow's loader gives the saver")  # fmt: skip
            continue
        if op in UNSAFE_OPS:
            yield SafetyFinding(op, node.name, location, UNSAFE_OPS[op])
            continue
        category, detail = _unknown_category(op)
        yield SafetyFinding(op, node.name, location, category, detail)


def scan(
    graph_def: Any, *, allowed: Iterable[str] | None = None, checkpoints: CheckpointScope | None = None
) -> SafetyReport:
    """Scan ``graph_def`` (a GraphDef or anything with ``node`` and ``library``) without importing it.

    Every node must be on the allowlist (`tfcpu.graph.allowlist`) or call a function of the
    library. Every function of the library is scanned, called or not: a function reached only
    through an attribute (``If``, ``While``, ``PartitionedCall``, a dataset's ``f``, a SavedModel's
    initialisers and restore functions) lives there too.

    Args:
        graph_def: the graph.
        allowed: op types to let through (they are still reported, as allowed).
        checkpoints: a SavedModel's saver (`CheckpointScope`): there, and only there, TensorFlow's
            checkpoint ops are admitted when the path they write or read is the loader's.
    """
    library = getattr(graph_def, "library", None)
    function_defs = list(getattr(library, "function", ()))
    functions = frozenset(f.signature.name for f in function_defs)
    scope = checkpoints or CheckpointScope()
    main_sources = {scope.filename_node} if scope.filename_node else set()
    findings: list[SafetyFinding] = []
    saver_nodes = [n for n in graph_def.node if n.name in scope.nodes]
    other_nodes = [n for n in graph_def.node if n.name not in scope.nodes]
    findings.extend(_scan_nodes(other_nodes, "graph", functions))
    if saver_nodes:
        findings.extend(_scan_nodes(saver_nodes, "graph (saver)", functions, main_sources, list(graph_def.node)))
    nodes = len(graph_def.node)
    for function in function_defs:
        nodes += len(function.node_def)
        name = function.signature.name
        sources = {arg.name for arg in function.signature.input_arg} if name in scope.functions else None
        findings.extend(_scan_nodes(list(function.node_def), f"function {name}", functions, sources))
    return SafetyReport(tuple(findings), nodes, len(function_defs)).allow(allowed)


def _check_names(ops: Sequence[str]) -> None:
    registry = _registry() if ops else None
    if ops and registry is None:
        from tfcpu._lazy import import_tensorflow

        import_tensorflow()
        registry = _registry()
    for op in ops:
        if op in _ALL_NAMES or (registry is not None and registry(op) is not None):
            continue
        raise ConfigError(
            f"{op!r} is not an op type of this TensorFlow",
            why=did_you_mean(op, (*_ALL_NAMES, *ALLOWED_OPS)),
            hint="name op types as they appear in the refusal message, e.g. --allow-unsafe-ops ReadFile",
        )


def check(
    graph_def: Any,
    where: str,
    allowed: Iterable[str] | None = None,
    *,
    checkpoints: CheckpointScope | None = None,
) -> SafetyReport:
    """Scan and raise `UnsafeModelError` for any finding whose op type is not allowed.

    Args:
        graph_def: the graph (its function library included).
        where: the file or object named in the error.
        allowed: op types let through (default: the innermost `allowing()` block's).
        checkpoints: a SavedModel's saver, where checkpoint ops on the loader's path are admitted.
    """
    allowed = tuple(allowed) if allowed is not None else current_allowance()
    report = scan(graph_def, allowed=allowed, checkpoints=checkpoints)
    refused = report.refused
    if refused:
        first = refused[0]
        ops = sorted({f.op for f in refused})
        more = f" (and {len(refused) - 1} more: {', '.join(ops)})" if len(refused) > 1 else ""
        error = UnsafeModelError(
            f"the model contains unsafe op {first.op} ({CATEGORIES[first.category]})",
            where=f"{where}: node {first.node!r} in {first.location}",
            why=f"a model is a program; tfcpu admits only ops that compute on tensors{more}",
            hint=f"if you trust this model, allow them: allow_unsafe_ops={ops!r} / --allow-unsafe-ops " + ",".join(ops),
        )
        error.report = report  # type: ignore[attr-defined]
        raise error
    return report


_ALLOWANCE: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("tfcpu_allow_unsafe_ops", default=())


def current_allowance() -> tuple[str, ...]:
    """The op types allowed by the innermost `allowing()` block (``load(allow_unsafe_ops=...)``)."""
    return _ALLOWANCE.get()


def allowing_names(ops: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"ReadFile,PyFunc"`` or a list → validated op type names (ConfigError with did-you-mean)."""
    if ops is None:
        items: tuple[str, ...] = ()
    elif isinstance(ops, str):
        items = tuple(p.strip() for p in ops.split(",") if p.strip())
    else:
        items = tuple(str(p).strip() for p in ops if str(p).strip())
    _check_names(items)
    return items


@contextlib.contextmanager
def allowing(ops: str | Iterable[str] | None) -> Iterator[tuple[str, ...]]:
    """Within the block, `check()` allows ``ops`` (a list, or a comma-separated string)."""
    items = allowing_names(ops)
    token = _ALLOWANCE.set(items)
    try:
        yield items
    finally:
        _ALLOWANCE.reset(token)
