"""Parse oneDNN's verbose log (``ONEDNN_VERBOSE=1`` / ``profile_exec``) into exec records.

Reads the ``template:`` line oneDNN 3.x prints first, so logs with and without timestamps, and the
older ``dnnl_verbose,exec,...`` format of oneDNN 1.x/2.x, all parse. Used by `tfcpu.runtime.dispatch`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MARK", "KernelExec", "ParsedLog", "isa_of_implementation", "parse_verbose"]

MARK = "tfcpu_dispatch"
_MARKERS = ("onednn_verbose", "dnnl_verbose")
# Column order when a log has no template line (oneDNN 1.x/2.x, or a log cut before its header).
_DEFAULT_TEMPLATE = (
    "operation,engine,primitive,implementation,prop_kind,memory_descriptors,attributes,auxiliary,problem_desc,exec_time"
)
_ISA_WORDS = ("avx", "sse", "amx", "uni", "any", "sve", "asimd")
_TAGS = ("primitive", "graph")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class KernelExec:
    """One ``exec`` line of oneDNN's verbose log."""

    kind: str
    implementation: str
    dtypes: tuple[str, ...]
    ms: float
    timestamp_ms: float | None = None
    problem: str = ""

    @property
    def isa(self) -> str:
        return isa_of_implementation(self.implementation)


def isa_of_implementation(implementation: str) -> str:
    """The ISA part of an implementation name: ``brg_conv_fwd:avx512_core_amx`` -> ``avx512_core_amx``,
    ``gemm:jit`` -> ``""`` (no ISA in the name)."""
    tail = implementation.rsplit(":", 1)[-1]
    return tail if any(w in tail for w in _ISA_WORDS) else ""


def _dtypes(descriptors: str) -> tuple[str, ...]:
    """``src:u8::blocked:acdb::f0 wei:s8:... dst:f32::...`` (oneDNN 3.x) or ``src_u8::blocked:acdb:f0 ...``
    (1.x/2.x) -> ``("u8", "s8", "f32")``: source, weights and destination types, unique, in order."""
    out: list[str] = []
    for md in descriptors.split():
        head = md.split(":")
        arg, dtype = (head[0], head[1]) if len(head) > 1 and "_" not in head[0] else (*head[0].split("_", 1), "")[:2]
        if arg in ("src", "wei", "dst") and dtype not in ("", "undef") and dtype not in out:
            out.append(dtype)
    return tuple(out)


def _split(line: str) -> tuple[str, list[str]] | None:
    """Strip the marker and the ``v1`` version; return (line kind, remaining fields)."""
    fields = line.strip().split(",")
    if fields[0] not in _MARKERS or len(fields) < 3:
        return None
    rest = fields[1:]
    if rest and rest[0].startswith("v") and rest[0][1:].isdigit():
        rest = rest[1:]
    return fields[0], rest


def _exec_from(fields: list[str], template: list[str]) -> KernelExec | None:
    """Map fields to template names. Descriptors never hold commas; the last two are problem and time."""
    if len(fields) < len(template):
        return None
    head = len(template) - 2
    named = dict(zip(template[:head], fields[:head], strict=True))
    if named.get("operation") != "exec":
        return None
    try:
        ms = float(fields[-1])
        stamp = float(named["timestamp"]) if "timestamp" in named else None
    except ValueError:
        return None
    return KernelExec(
        kind=named.get("primitive", "?"),
        implementation=named.get("implementation") or named.get("primitive", "?"),  # gemm_api lines have none
        dtypes=_dtypes(named.get("memory_descriptors", "")),
        ms=ms,
        timestamp_ms=stamp,
        problem=fields[-2],
    )


@dataclass(frozen=True)
class ParsedLog:
    """The exec lines of a verbose log (of the measured window when it has ``tfcpu_dispatch`` marks)."""

    execs: tuple[KernelExec, ...]
    version: str = ""
    cpu_isa: str = ""


def parse_verbose(text: str, *, window_ms: tuple[float, float] | None = None) -> ParsedLog:
    """Parse oneDNN verbose output.

    Args:
        text: the log (stdout of a process run with ``ONEDNN_VERBOSE``); other lines are ignored.
        window_ms: keep only exec lines whose timestamp (ms since the epoch) falls in this window.
            Without it, a log holding ``tfcpu_dispatch,begin`` / ``end`` marks keeps the lines between the
            last pair; otherwise every exec line counts.
    """
    template = _DEFAULT_TEMPLATE.split(",")
    version = cpu_isa = ""
    execs: list[KernelExec] = []
    taking = True
    for line in text.splitlines():
        if line.startswith(MARK + ","):
            taking = line.strip().endswith(",begin")
            if taking:
                execs = []  # the measured batch starts here; what came before was warm-up
            continue
        if not taking:
            continue
        split = _split(line)
        if split is None:
            continue
        _, fields = split
        if fields[0] == "info" or fields[1] == "info":
            info = ",".join(fields)
            if "template:" in info and fields[0] in ("primitive", "info") and "graph" not in fields[:2]:
                template = info.split("template:", 1)[1].split(",")
            elif "oneDNN v" in info or "DNNL v" in info:
                version = info.split(" v", 1)[1].split()[0]
            elif ",isa:" in "," + info:
                cpu_isa = info.split("isa:", 1)[1]
            continue
        tag = 0 if fields[0] in _TAGS else 1 if fields[1] in _TAGS else -1
        if tag >= 0:
            if fields[tag] != "primitive":
                continue  # graph-API partitions: TensorFlow runs primitives
            fields = fields[:tag] + fields[tag + 1 :]
        names = template
        if "timestamp" not in names and _is_number(fields[0]):
            names = ["timestamp", *names]  # old logs with ONEDNN_VERBOSE_TIMESTAMP=1
        item = _exec_from(fields, names)
        if item is None:
            continue
        if window_ms and item.timestamp_ms is not None and not window_ms[0] <= item.timestamp_ms <= window_ms[1]:
            continue
        execs.append(item)
    return ParsedLog(tuple(execs), version, cpu_isa)
