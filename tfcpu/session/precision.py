"""The one precision / oneDNN policy: what a process must have to run a model, decided in one place.

Every stage that runs a graph asks this module instead of deciding for itself: the Quantizer
(its trial runs), ``Runner`` (an in-process session), multi-instance children, the CLI and the
demo. It is also the only module, besides `tfcpu.SessionConfig.apply()`, that writes
``os.environ``.

The facts it encodes::

    model's ops                 CPU (topology)                 user's choice    -> TF_ENABLE_ONEDNN_OPTS
    ---------------------------------------------------------------------------------------------------
    INT8/BF16 (needs oneDNN)    any                            none             -> 1 (only oneDNN has the kernels)
    INT8/BF16                   any                            off (0)          -> 0, with a warning: it will fail
    FP32                        VNNI/BF16/AMX (TF default on)  none             -> TensorFlow's default (unset)
    FP32                        AVX2 only (TF default off)     none             -> TensorFlow's default (unset)
    any                         any                            on / off         -> 1 / 0 as asked
    ITEX installed and chosen   any                            (not 0)          -> 1 (ITEX needs oneDNN)

TensorFlow reads ``TF_ENABLE_ONEDNN_OPTS`` once, when it is imported, so a decision can only be
carried out in a process that has not imported TensorFlow yet (`prepare_process()`), or in a
child started with `child_env()`. Where TensorFlow already runs with the wrong setting,
`prepare_process()` raises an error that names the fix instead of letting a quantised op fail
with TensorFlow's "Missing 0-th output".

Precision support (``check_precision``): BF16 graphs pay only on CPUs with AVX512_BF16 or AMX_BF16;
elsewhere TensorFlow emulates BF16 and is slower than FP32, so tfcpu refuses it with the reason.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import logging
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tfcpu.errors import ConfigError, RunnerError, TfcpuError

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.graph.model import Model
    from tfcpu.topology import Topology

__all__ = [
    "CHATTER",
    "ONEDNN",
    "ONEDNN_VALUES",
    "OneDnnDecision",
    "check_precision",
    "child_env",
    "decide_for",
    "decide_onednn",
    "ensure_in_process",
    "filtered_stderr",
    "is_chatter",
    "library_log_default",
    "parse_onednn_env",
    "prepare_process",
    "quiet_env",
    "quiet_tensorflow",
]

log = logging.getLogger(__name__)

ONEDNN = "TF_ENABLE_ONEDNN_OPTS"

# TensorFlow's C++ start-up chatter, as measured with TF 2.21 (see docs/precision.md, "Start-up chatter"):
# * "WARNING: All log messages before absl::InitializeLog() ...", "oneDNN custom operations are on" (port.cc)
#   and "Could not find cuda drivers" (cudart_stub.cc) are written by static initialisers of TensorFlow's
#   shared libraries while `import tensorflow` loads them -- twice, once per library. absl logs them before
#   TensorFlow has read TF_CPP_MIN_LOG_LEVEL, and absl reads no environment variable, so no variable
#   silences them: only filtering file descriptor 2 during that import does (_QuietImport below).
# * TF_CPP_MIN_LOG_LEVEL=3 covers everything TensorFlow logs after start-up (only FATAL stays).
# * cuInit / CUDA device probing happens when the runtime first creates its devices; hiding the GPUs with
#   CUDA_VISIBLE_DEVICES="" stops it. tfcpu only measures CPUs (a GPU picked up by TensorFlow would make
#   every number a GPU number), so its own commands hide GPUs -- but only when the user has not set
#   CUDA_VISIBLE_DEVICES: a value the user chose is never overridden (setdefault), with or without --debug.
_QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR", "ABSL_MIN_LOG_LEVEL": "3"}
_DEBUG = {"TF_CPP_MIN_LOG_LEVEL": "0"}
_CPU_ONLY = {"CUDA_VISIBLE_DEVICES": ""}
#: What a library call (no CLI) sets before importing TensorFlow when the user chose nothing: INFO lines off.
_LIBRARY_LOG_LEVEL = "2"

#: Lines of TensorFlow's start-up chatter that tfcpu's commands drop (anything else on stderr is kept).
CHATTER = (
    "All log messages before absl::InitializeLog()",
    "oneDNN custom operations are on",
    "Could not find cuda drivers",
    "cuInit",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "computation placer already registered",
    "TF-TRT Warning",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions",
    "failed to call cuInit",
    "cuda_executor",
    "cuda_diagnostics",
)

_BF16_ISA = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class OneDnnDecision:
    """What the process that runs a model must have, and why.

    Attributes:
        required: the model's ops exist only as oneDNN kernels (INT8, BF16).
        value: ``TF_ENABLE_ONEDNN_OPTS`` for that process: True/False, or None for TensorFlow's
            own default on this CPU.
        reason: one line saying why, for logs and reports.
        warning: set when the decision will fail or surprise (a required oneDNN turned off).
    """

    required: bool
    value: bool | None
    reason: str
    warning: str | None = None

    def env(self) -> dict[str, str]:
        """The variable to set for this decision (empty when TensorFlow's default stands)."""
        return {} if self.value is None else {ONEDNN: "1" if self.value else "0"}

    def to_dict(self) -> dict[str, object]:
        return {"required": self.required, "value": self.value, "reason": self.reason, "warning": self.warning}


#: The values TensorFlow accepts for ``TF_ENABLE_ONEDNN_OPTS``, case-insensitively and without
#: surrounding spaces (tsl's ``ReadBoolFromEnvVar``); anything else makes it warn and use its
#: default for the CPU (off without VNNI/BF16/AMX), so ``yes``/``on``/``" 1"`` do NOT turn oneDNN on.
ONEDNN_VALUES: dict[str, bool] = {"0": False, "false": False, "1": True, "true": True}


def parse_onednn_env(raw: str | None, *, where: str = f"{ONEDNN} in the environment") -> bool | None:
    """``TF_ENABLE_ONEDNN_OPTS`` as TensorFlow reads it: True/False, None when unset or empty.

    Raises:
        ConfigError: a value TensorFlow does not accept (it would ignore it and use its default),
            with the accepted values.
    """
    if raw is None or raw == "":
        return None  # empty: TensorFlow uses its default, as when unset
    choice = ONEDNN_VALUES.get(raw.lower())
    if choice is None:
        raise ConfigError(
            f"{ONEDNN}={raw!r} is not a value TensorFlow accepts",
            where=where,
            why=f"TensorFlow reads only {', '.join(ONEDNN_VALUES)} (any case, no spaces) and ignores anything "
            "else, using its default for this CPU",
            hint=f"set {ONEDNN}=1 (on) or {ONEDNN}=0 (off), or unset it for TensorFlow's default",
        )
    return choice


def _env_choice(environ: Mapping[str, str]) -> bool | None:
    return parse_onednn_env(environ.get(ONEDNN))


def decide_onednn(
    *,
    needs_onednn: bool,
    explicit: bool | None = None,
    itex: bool = False,
    environ: Mapping[str, str] | None = None,
) -> OneDnnDecision:
    """Decide ``TF_ENABLE_ONEDNN_OPTS`` for a process that will run a model.

    Args:
        needs_onednn: the model's ops need oneDNN (``Model.needs_onednn``).
        explicit: the caller's choice (``--onednn`` / ``--no-onednn``, ``SessionConfig.with_onednn``);
            None = no choice.
        itex: the model will run under Intel Extension for TensorFlow, which needs oneDNN.
        environ: the environment the process inherits (default ``os.environ``); a value already
            set there counts as the user's choice when ``explicit`` is None.
    """
    env = os.environ if environ is None else environ
    source = "asked for"
    choice = explicit
    if choice is None:
        choice = _env_choice(env)
        source = f"{ONEDNN} in the environment"
    if itex:
        if choice is False:
            return OneDnnDecision(
                needs_onednn, False, f"oneDNN off ({source})", warning="ITEX needs oneDNN: it will not load with it off"
            )
        return OneDnnDecision(needs_onednn, True, "ITEX needs oneDNN")
    if choice is not None:
        if needs_onednn and not choice:
            return OneDnnDecision(
                True,
                False,
                f"oneDNN off ({source})",
                warning="the graph's INT8/BF16 ops exist only in oneDNN: running it with oneDNN off will fail",
            )
        return OneDnnDecision(needs_onednn, choice, f"oneDNN {'on' if choice else 'off'} ({source})")
    if needs_onednn:
        return OneDnnDecision(True, True, "the graph's INT8/BF16 ops exist only in oneDNN")
    return OneDnnDecision(False, None, "TensorFlow's default for this CPU")


def decide_for(model: Model, explicit: bool | None = None, *, itex: bool = False) -> OneDnnDecision:
    """`decide_onednn()` for a loaded Model (reads ``model.needs_onednn``)."""
    return decide_onednn(needs_onednn=model.needs_onednn, explicit=explicit, itex=itex)


def quiet_env(*, debug: bool = False) -> dict[str, str]:
    """Variables that keep TensorFlow's C++ start-up lines out of tfcpu's output (or let them in).

    With ``debug`` only the log level (0: everything). Either way ``CUDA_VISIBLE_DEVICES=""``, which
    `child_env()` and `quiet_tensorflow()` apply only when the user has not set it.
    """
    return {**(_DEBUG if debug else _QUIET), **_CPU_ONLY}


def is_chatter(line: str) -> bool:
    """Whether a stderr line is TensorFlow's start-up chatter (`CHATTER`)."""
    return any(fragment in line for fragment in CHATTER)


def child_env(
    decision: OneDnnDecision | None = None,
    base: Mapping[str, str] | None = None,
    *,
    debug: bool = False,
) -> dict[str, str]:
    """The full environment for a child process that will import TensorFlow.

    ``base`` (default ``os.environ``) with the quiet-logging variables (unless already set there, or
    ``debug``) and the oneDNN decision applied on top. The decision wins over ``base``.
    """
    env = dict(os.environ if base is None else base)
    _apply_quiet(env, debug=debug)
    if decision is not None:
        if decision.warning:
            log.warning("%s", decision.warning)
        env.update(decision.env())
    return env


def _apply_quiet(env: MutableMapping[str, str], *, debug: bool, cpu_only: bool = True) -> None:
    """Debug forces the log level; otherwise a value already in ``env`` is kept. CUDA is never forced."""
    for key, value in quiet_env(debug=debug).items():
        if key in _CPU_ONLY and not cpu_only:
            continue
        if debug and key not in _CPU_ONLY:
            env[key] = value
        else:
            env.setdefault(key, value)


def quiet_tensorflow(*, debug: bool = False) -> None:
    """Silence (or, with ``debug``, let through) TensorFlow's C++ start-up lines in this process.

    For tfcpu's own commands (``tfcpu.cli.main`` calls it first) and its child processes: sets
    `quiet_env()` and, unless ``debug``, filters `CHATTER` out of file descriptor 2 while
    TensorFlow is imported (the lines absl writes before any variable is read). Other stderr output
    of that import is passed through. Takes effect only before TensorFlow is imported; a value the
    user already set is kept.

    Args:
        debug: let every line through (``TF_CPP_MIN_LOG_LEVEL=0``, no filtering).
    """
    if "tensorflow" in sys.modules:
        return
    _apply_quiet(os.environ, debug=debug)
    if debug:
        _QuietImport.uninstall()
    else:
        _QuietImport.install()


def library_log_default() -> None:
    """Before a library call imports TensorFlow: ``TF_CPP_MIN_LOG_LEVEL=2`` unless the user chose one.

    What ``tfcpu._lazy.import_tensorflow`` has always done for library users (no CLI): TensorFlow's
    INFO lines off, nothing else changed. No-op once TensorFlow is imported.
    """
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", _LIBRARY_LOG_LEVEL)


class _QuietImport(importlib.abc.MetaPathFinder):
    """Wraps the first ``import tensorflow`` so `CHATTER` written to fd 2 is dropped.

    The finder only decorates the spec the normal import machinery finds; it removes itself from
    ``sys.meta_path`` once TensorFlow's package has been executed (or failed to).
    """

    @classmethod
    def install(cls) -> None:
        if not any(isinstance(f, cls) for f in sys.meta_path):
            sys.meta_path.insert(0, cls())

    @classmethod
    def uninstall(cls) -> None:
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, cls)]

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        self.uninstall()
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _FilteringLoader(spec.loader)
        return spec


class _FilteringLoader(importlib.abc.Loader):
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self._inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        with filtered_stderr():
            self._inner.exec_module(module)


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Send file descriptor 2 to a temporary file for the block; write back what is not chatter."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded interpreters): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = [line for line in sink.read().decode(errors="replace").splitlines(True) if not is_chatter(line)]
            if kept:
                os.write(2, "".join(kept).encode())


def ensure_in_process(decision: OneDnnDecision) -> bool:
    """Carry out ``decision`` here if TensorFlow has not been imported yet; report whether oneDNN is on.

    Unlike `prepare_process()` it never raises: a caller that can still do useful work without
    running the graph (the Quantizer quantises, then skips its agreement check) asks this and decides.
    Imports TensorFlow (to read what the running build has).

    Args:
        decision: what the process must have (`decide_onednn()` / `decide_for()`).
    """
    if "tensorflow" not in sys.modules:
        prepare_process(decision, where="this process")
    return _onednn_running()


def _onednn_running() -> bool:
    from tfcpu.session.runtime import runtime_info

    info = runtime_info()
    return bool(info.onednn_enabled)


def prepare_process(
    decision: OneDnnDecision,
    *,
    where: str,
    error: type[TfcpuError] = RunnerError,
) -> None:
    """Carry out ``decision`` in this process, or fail naming the fix.

    Before TensorFlow is imported this sets ``TF_ENABLE_ONEDNN_OPTS`` (and the quiet-logging
    variables). Afterwards it can only check: when the graph needs oneDNN and the running
    TensorFlow has it off (and no ITEX plug-in brings the kernels), it raises ``error``.
    """
    if "tensorflow" not in sys.modules:
        # The log levels only: a library call does not hide the user's GPUs or hook their imports
        # (tfcpu's own commands and children do, through quiet_tensorflow / child_env).
        _apply_quiet(os.environ, debug=False, cpu_only=False)
        if decision.warning:
            log.warning("%s", decision.warning)
        for key, value in decision.env().items():
            if os.environ.get(key) != value:
                os.environ[key] = value
                log.info("set %s=%s before TensorFlow starts: %s", key, value, decision.reason)
        return
    if not decision.required or _onednn_running():
        return
    from tfcpu.session.runtime import runtime_info

    if runtime_info().itex_installed:  # ITEX's plug-in brings its own quantised kernels
        return
    raise error(
        "this graph needs oneDNN, which is off in this process",
        where=where,
        why=(
            "its quantised (INT8) or BF16 kernels exist only in oneDNN; TensorFlow was imported without "
            f"{ONEDNN}=1 and reads it only once, at import (stock TensorFlow turns oneDNN on by itself only "
            "on CPUs with VNNI, BF16 or AMX)"
        ),
        hint=(
            "call tfcpu.SessionConfig.for_topology().with_onednn(True).apply() (or set "
            f"{ONEDNN}=1) before anything imports TensorFlow, or run it in fresh processes with "
            "Runner(model).multi_instance(plan) / `tfcpu bench`, which turn oneDNN on themselves"
        ),
    )


def check_precision(precision: str, topology: Topology | Iterable[str] | None = None) -> None:
    """Refuse a precision this CPU cannot run faster than FP32, saying why.

    Args:
        precision: ``"fp32"``, ``"int8"`` or ``"bf16"``.
        topology: a Topology or its ISA flags (lower case, as in ``/proc/cpuinfo``); None detects.

    Raises:
        ConfigError: an unknown precision, or BF16 without AVX512_BF16/AMX_BF16.
    """
    name = precision.lower()
    if name not in ("fp32", "int8", "bf16"):
        raise ConfigError(f"unknown precision {precision!r}", hint="use fp32, int8 or bf16")
    if name != "bf16":
        return
    from tfcpu.topology import Topology as _Topology

    if topology is None:
        topology = _Topology.detect()

    isa = set(topology.isa) if isinstance(topology, _Topology) else set(topology)
    if not isa.intersection(_BF16_ISA):
        raise ConfigError(
            "BF16 is not accelerated on this CPU",
            why="it has neither AVX512_BF16 nor AMX_BF16: TensorFlow would emulate BF16 and run slower than FP32",
            hint="use INT8 (Quantizer().int8()) or stay in FP32 on this CPU",
        )
