"""The one exception tree of tfcpu.

Every error tfcpu raises on purpose derives from `TfcpuError`, so callers can
catch the whole library with one ``except`` clause::

    TfcpuError
    ├── ConfigError              a setting or argument has an invalid value
    │   └── OutputError          an output path cannot be written (permissions, space, not a directory)
    ├── MissingDependencyError   an optional package is not installed (names the extra)
    ├── TopologyError            the CPU topology could not be read at all
    ├── PlanError                no valid instance layout for the request
    ├── ModelError               a model could not be loaded, saved or validated
    │   └── UnsafeModelError     the model contains ops that reach outside the process
    ├── GraphError               a graph breaks an invariant
    │   └── PassError            an optimisation pass failed (names the pass)
    ├── QuantizationError        INT8/BF16 conversion failed
    └── RunnerError              running or benchmarking failed
        └── InstanceError        a child instance failed

Messages follow one shape: *what* failed, *where* (file, node, op), *why*, and a *hint*
on how to fix it. Build them with `TfcpuError()` keyword arguments so the parts stay
separate and machine-readable.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ConfigError",
    "GraphError",
    "InstanceError",
    "MissingDependencyError",
    "ModelError",
    "OutputError",
    "PassError",
    "PlanError",
    "QuantizationError",
    "RunnerError",
    "TfcpuError",
    "TopologyError",
    "UnsafeModelError",
    "did_you_mean",
    "runtime_reason",
]


class TfcpuError(Exception):
    """Base class of every error tfcpu raises on purpose.

    Args:
        what: one sentence saying what failed.
        where: the file, node, op or setting concerned.
        why: the cause, when known.
        hint: what the user can do about it.
    """

    exit_code = 1

    def __init__(
        self,
        what: str,
        *,
        where: str | None = None,
        why: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.what = what
        self.where = where
        self.why = why
        self.hint = hint
        super().__init__(self._compose())

    def _compose(self) -> str:
        text = self.what
        if self.where:
            text += f" [{self.where}]"
        if self.why:
            text += f": {self.why}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ConfigError(TfcpuError, ValueError):
    """A setting or argument has an invalid value."""

    exit_code = 2


class OutputError(ConfigError):
    """An output path cannot be written: not writable, no space left, or a parent is a file."""


class MissingDependencyError(TfcpuError, ImportError):
    """An optional dependency is missing; the message names what to install."""

    def __init__(self, package: str, *, extra: str | None = None, purpose: str | None = None) -> None:
        install = f'pip install "tfcpu[{extra}]"' if extra else f"pip install {package}"
        super().__init__(
            f"{package} is not installed",
            why=purpose,
            hint=f"install it with: {install}",
        )
        self.package = package
        self.extra = extra


class TopologyError(TfcpuError):
    """The CPU topology could not be read at all."""


class PlanError(TfcpuError, ValueError):
    """No valid instance layout exists for the request."""

    exit_code = 2


class ModelError(TfcpuError):
    """A model could not be loaded, saved or validated."""

    exit_code = 2


class UnsafeModelError(ModelError):
    """The model contains ops that touch files, the network, processes or Python."""


class GraphError(TfcpuError):
    """A graph breaks a structural invariant."""


class PassError(GraphError):
    """An optimisation pass failed."""


class QuantizationError(TfcpuError):
    """INT8 or BF16 conversion failed."""


class RunnerError(TfcpuError):
    """Running or benchmarking a model failed."""


class InstanceError(RunnerError):
    """A child instance of a multi-instance run failed."""


def did_you_mean(name: str, candidates: Iterable[str], *, limit: int = 3) -> str | None:
    """Return a ``did you mean ...?`` phrase for ``name``, or ``None`` if nothing is close."""
    import difflib

    pool = list(dict.fromkeys(candidates))
    close = difflib.get_close_matches(name, pool, n=limit, cutoff=0.5)
    if not close:
        return None
    return "did you mean " + " or ".join(repr(c) for c in close) + "?"


#: Lines of a runtime's message that say where, not why: TensorFlow's graph-execution header and
#: stack-trace frames ("Detected at node ... defined at (most recent call last):", "Node: 'x'",
#: "Original stack trace for ...", ``[[{{node x}}]]``), OpenVINO's source locations
#: ("Exception from src/...cpp:223:") and Python's traceback header. Indented lines are frames too.
_NOISE = (
    "graph execution error",
    "detected at node",
    "node: '",
    "original stack trace for",
    "traceback (most recent call last)",
    "exception from src/",
    "[[{{node",
)


def runtime_reason(exc: BaseException, *, limit: int = 600) -> str:
    """The reason a runtime (TensorFlow, OpenVINO, INC) gave for ``exc``, for a tfcpu message's *why*.

    Keeps every informative line (TensorFlow's first line is often only "Graph execution error:",
    the cause comes later), drops stack frames and location noise, joins the rest with ``"; "`` and
    trims it to ``limit`` characters. Falls back to the first line, then to the exception's type.
    """
    text = str(getattr(exc, "message", None) or exc).strip()
    if not text:
        return type(exc).__name__
    kept: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or raw[:1].isspace() or line.lower().startswith(_NOISE) or line in kept:
            continue
        kept.append(line)
    reason = "; ".join(kept) or text.splitlines()[0].strip()
    if len(reason) > limit:
        reason = reason[: limit - 1].rstrip() + "…"
    return reason
