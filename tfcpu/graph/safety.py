"""Static safety scan: find ops that touch files, the network, processes or Python.

TensorFlow's security model says *a model is a program*: a GraphDef can read and write files,
call Python, talk to other machines — and it can hide such ops inside its function library,
where a glance at ``graph_def.node`` does not see them. `scan()` looks at every node of the
main graph and of every function in ``graph_def.library`` (functions called through ``If``,
``While``, ``PartitionedCall`` or any other function-valued attribute live there too), without
importing or running anything. `tfcpu.load()` runs it before TensorFlow imports the graph
and refuses a model with findings (`UnsafeModelError`) unless each op type
found is allowed explicitly (``allow_unsafe_ops=["ReadFile"]``, ``--allow-unsafe-ops ReadFile``).

Categories (each op name is checked against the installed TensorFlow's op registry by the tests):

``file-read``
    ops that open, list or map files: ``ReadFile``, ``MatchingFiles``, ``ImmutableConst``,
    the reader ops, the file datasets, table initialisers from text files, checkpoint restores.
``file-write``
    ops that create or overwrite files: ``WriteFile``, ``Save*``, ``MergeV2Checkpoints``,
    summary writers, ``SaveDataset``, ``DatasetToTFRecord``.
``python``
    ``PyFunc``, ``PyFuncStateless``, ``EagerPyFunc``: call back into the Python process.
``network``
    RPC ops, collectives, tf.data service, NCCL, send/receive pairs between different tasks.
``debug-dump``
    tfdbg ops that write to a ``file://`` or ``grpc://`` URL, ``PrintV2`` to a ``file://`` stream.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tfcpu.errors import ConfigError, UnsafeModelError, did_you_mean

__all__ = [
    "CATEGORIES",
    "UNSAFE_OPS",
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
    "debug-dump": "dumps tensors to a file or a debug server",
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
            return f"Safety scan: no file, network, process or Python ops ({where})"
        return f"Safety scan: {len(self.findings)} unsafe ops ({where})"

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


def _scan_nodes(nodes: Iterable[Any], location: str) -> Iterator[SafetyFinding]:
    for node in nodes:
        op = node.op
        if op in UNSAFE_OPS:
            yield SafetyFinding(op, node.name, location, UNSAFE_OPS[op])
        elif op in CONDITIONAL_OPS:
            detail = _conditional(node)
            if detail is not None:
                yield SafetyFinding(op, node.name, location, CONDITIONAL_OPS[op], detail)


def scan(graph_def: Any, *, allowed: Iterable[str] | None = None) -> SafetyReport:
    """Scan ``graph_def`` (a GraphDef or anything with ``node`` and ``library``) without importing it.

    Every function of the library is scanned, called or not: a function reached only through
    an attribute (``If``, ``While``, ``PartitionedCall``, a dataset's ``f``) lives there too.
    """
    findings = list(_scan_nodes(graph_def.node, "graph"))
    nodes = len(graph_def.node)
    functions = 0
    library = getattr(graph_def, "library", None)
    for function in getattr(library, "function", ()):
        functions += 1
        nodes += len(function.node_def)
        findings.extend(_scan_nodes(function.node_def, f"function {function.signature.name}"))
    return SafetyReport(tuple(findings), nodes, functions).allow(allowed)


def _check_names(ops: Sequence[str]) -> None:
    for op in ops:
        if op not in _ALL_NAMES:
            raise ConfigError(
                f"{op!r} is not an op the safety scan refuses",
                why=did_you_mean(op, _ALL_NAMES),
                hint="name op types as they appear in the refusal message, e.g. --allow-unsafe-ops ReadFile",
            )


def check(graph_def: Any, where: str, allowed: Iterable[str] | None = None) -> SafetyReport:
    """Scan and raise `UnsafeModelError` for any finding whose op type is not allowed."""
    allowed = tuple(allowed) if allowed is not None else current_allowance()
    report = scan(graph_def, allowed=allowed)
    refused = report.refused
    if refused:
        first = refused[0]
        ops = sorted({f.op for f in refused})
        more = f" (and {len(refused) - 1} more: {', '.join(ops)})" if len(refused) > 1 else ""
        error = UnsafeModelError(
            f"the model contains unsafe op {first.op} ({CATEGORIES[first.category]})",
            where=f"{where}: node {first.node!r} in {first.location}",
            why=f"a model is a program; tfcpu refuses ops that touch files, the network or Python{more}",
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
