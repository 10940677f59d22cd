"""``SessionConfig``: the white paper's thread settings, derived from the Topology.

Section 5 of the white paper sets, by hand, before TensorFlow starts::

    KMP_BLOCKTIME=1  KMP_SETTINGS=1  KMP_AFFINITY=granularity=fine,verbose,compact,1,0
    OMP_NUM_THREADS=<physical cores>
    ConfigProto(intra_op_parallelism_threads=<physical cores>, inter_op_parallelism_threads=1)

`SessionConfig` holds the same settings as one frozen value. The defaults follow the
paper, with "physical cores" read from the usable budget of the `Topology`
(affinity ∩ online CPUs, capped by the cgroup quota). Builders return new objects and
validate at once; nothing touches the process until a terminal call:

* `SessionConfig.env()` - the variables to set before TensorFlow starts;
* `SessionConfig.config_proto()` - a ``tf.compat.v1.ConfigProto`` (imports TensorFlow);
* `SessionConfig.apply()` - set them in this process, or raise `ConfigError` when
  TensorFlow already started and they could no longer take effect;
* `SessionConfig.explain()` - which settings take effect on the installed runtime, and why.

`SessionConfig.with_itex()` adds Intel Extension for TensorFlow's settings (bf16 auto mixed
precision, layout optimisation, OpenMP or Eigen thread pool) as ITEX's own variables and
``itex.ConfigProto`` (`SessionConfig.itex_config()`); see docs/itex.md.

Where values come from, highest first: a ``with_*`` call, then (with ``trust_env``, the
default) a variable already in ``os.environ``, then tfcpu's default. A user's
``OMP_NUM_THREADS=8`` in the shell therefore wins over the default, and ``explain()`` says so.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tfcpu._render import TextTable, html_table, rich_table
from tfcpu.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from tfcpu.session.runtime import RuntimeInfo
    from tfcpu.topology import Topology

__all__ = ["DEFAULT_KMP_AFFINITY", "ExplainRow", "Explanation", "ItexSettings", "SessionConfig", "itex_installed"]

log = logging.getLogger(__name__)

#: The white paper's ``KMP_AFFINITY`` for one process that owns the machine (Section 5).
DEFAULT_KMP_AFFINITY = "granularity=fine,verbose,compact,1,0"

INTRA = "TF_NUM_INTRAOP_THREADS"
INTER = "TF_NUM_INTEROP_THREADS"
OMP = "OMP_NUM_THREADS"
BLOCKTIME = "KMP_BLOCKTIME"
SETTINGS = "KMP_SETTINGS"
AFFINITY = "KMP_AFFINITY"
ONEDNN = "TF_ENABLE_ONEDNN_OPTS"

#: Variables SessionConfig manages itself, with the builder that sets each.
MANAGED: dict[str, str] = {
    INTRA: "with_intra_op_threads",
    INTER: "with_inter_op_threads",
    OMP: "with_omp_threads",
    BLOCKTIME: "with_kmp(blocktime=...)",
    SETTINGS: "with_kmp(settings=...)",
    AFFINITY: "with_kmp(affinity=...)",
    ONEDNN: "with_onednn",
}

# Intel Extension for TensorFlow's variables (names as ITEX 2.15 reads them, see docs/itex.md).
ITEX_AMP = "ITEX_AUTO_MIXED_PRECISION"
ITEX_AMP_TYPE = "ITEX_AUTO_MIXED_PRECISION_DATA_TYPE"
ITEX_LAYOUT = "ITEX_LAYOUT_OPT"
ITEX_THREADPOOL = "ITEX_OMP_THREADPOOL"
ITEX_VARS = (ITEX_AMP, ITEX_AMP_TYPE, ITEX_LAYOUT, ITEX_THREADPOOL)
ITEX_AMP_CHOICES = ("bf16",)
ITEX_THREADPOOLS = ("openmp", "eigen")


def itex_installed() -> bool:
    """Whether ``intel_extension_for_tensorflow`` can be imported (does not import it)."""
    import importlib.util

    try:
        return importlib.util.find_spec("intel_extension_for_tensorflow") is not None
    except (ImportError, ValueError):
        return False


def _require_itex(where: str) -> None:
    if not itex_installed():
        from tfcpu.errors import MissingDependencyError

        err = MissingDependencyError(
            "intel-extension-for-tensorflow",
            extra="itex",
            purpose=f"{where} configures Intel Extension for TensorFlow (needs TensorFlow 2.15, Python 3.11)",
        )
        raise err


def _check_itex_bf16(isa: tuple[str, ...] | None = None) -> None:
    """ITEX runs bf16 only on its AVX-512 backend; its AVX2 backend crashed (SIGSEGV) with bf16 AMP."""
    if isa is None:
        from tfcpu.topology import Topology

        isa = Topology.detect().isa
    if "avx512f" not in isa:
        raise ConfigError(
            "ITEX bf16 mixed precision needs AVX-512",
            where="with_itex(amp='bf16')",
            why="this CPU has no AVX-512, so ITEX loads its AVX2 backend, which crashed the process "
            "(SIGSEGV) running a bf16-converted ResNet-50 in tfcpu's tests",
            hint="use amp=None (FP32) here; bf16 pays only with AVX512_BF16 or AMX",
        )


@dataclass(frozen=True)
class ItexSettings:
    """Intel Extension for TensorFlow settings (see `SessionConfig.with_itex()`).

    Attributes:
        amp: ``"bf16"`` turns on ITEX's auto mixed precision (it rewrites frozen graphs too);
            ``None`` keeps FP32.
        layout: ITEX's oneDNN layout optimisation on/off; ``None`` keeps ITEX's default.
        threadpool: ``"openmp"`` (ITEX's default: its oneDNN kernels run on an OpenMP pool, so
            ``OMP_NUM_THREADS``/``KMP_*`` apply) or ``"eigen"`` (TensorFlow's pool, KMP_* inert).
    """

    amp: str | None = None
    layout: bool | None = None
    threadpool: str = "openmp"

    def __post_init__(self) -> None:
        if self.amp is not None and self.amp not in ITEX_AMP_CHOICES:
            raise ConfigError(
                "unknown ITEX mixed precision",
                where="with_itex(amp=...)",
                why=f"got {self.amp!r}; ITEX on CPU supports bf16",
                hint=did_you_mean(str(self.amp), ITEX_AMP_CHOICES) or 'use amp="bf16" or amp=None',
            )
        if self.layout is not None and not isinstance(self.layout, bool):
            raise ConfigError(
                "layout must be True, False or None", where="with_itex(layout=...)", why=repr(self.layout)
            )
        if self.threadpool not in ITEX_THREADPOOLS:
            raise ConfigError(
                "unknown ITEX thread pool",
                where="with_itex(threadpool=...)",
                why=f"got {self.threadpool!r}",
                hint=did_you_mean(str(self.threadpool), ITEX_THREADPOOLS) or 'use "openmp" or "eigen"',
            )

    def env(self) -> dict[str, str]:
        """ITEX's own variables for these settings (read by ITEX when TensorFlow starts)."""
        out = {ITEX_THREADPOOL: "1" if self.threadpool == "openmp" else "0"}
        if self.amp is not None:
            out[ITEX_AMP] = "1"
            out[ITEX_AMP_TYPE] = "BFLOAT16"
        if self.layout is not None:
            out[ITEX_LAYOUT] = "1" if self.layout else "0"
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"amp": self.amp, "layout": self.layout, "threadpool": self.threadpool}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ItexSettings:
        return cls(amp=data.get("amp"), layout=data.get("layout"), threadpool=str(data.get("threadpool", "openmp")))


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MAX_THREADS = 4096

# Extra variables whose effect tfcpu knows: name -> (effect on stock TF, why).
_KNOWN_EXTRA: dict[str, tuple[bool | None, str]] = {
    "TF_CPP_MIN_LOG_LEVEL": (True, "filters TensorFlow's C++ log lines; read when TensorFlow is imported"),
    "ONEDNN_VERBOSE": (None, "oneDNN prints one line per primitive; only when oneDNN is enabled"),
    "DNNL_VERBOSE": (None, "old name of ONEDNN_VERBOSE; only when oneDNN is enabled"),
    "ONEDNN_MAX_CPU_ISA": (None, "caps the ISA oneDNN uses; only when oneDNN is enabled"),
    "OPENBLAS_NUM_THREADS": (False, "caps NumPy's OpenBLAS threads; TensorFlow does not use OpenBLAS"),
    "MKL_NUM_THREADS": (False, "caps Intel MKL threads; stock TensorFlow does not link MKL"),
}


def _check_threads(name: str, value: object, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer", where=name, why=f"got {value!r}", hint=f"pass e.g. {name}=4")
    low = 0 if allow_zero else 1
    if not low <= value <= _MAX_THREADS:
        raise ConfigError(
            f"{name} out of range",
            where=name,
            why=f"got {value}, expected {low}..{_MAX_THREADS}" + (" (0 lets TensorFlow choose)" if allow_zero else ""),
            hint="use the number of physical cores the process may use (Topology.usable_physical_cores)",
        )
    return value


def _env_int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if value >= 1 else None


@dataclass(frozen=True)
class ExplainRow:
    """One setting: its value, whether it takes effect on the runtime, why, and where it came from."""

    setting: str
    value: str
    takes_effect: bool | None
    why: str
    source: str

    @property
    def effect_text(self) -> str:
        return {True: "yes", False: "no", None: "depends"}[self.takes_effect]

    def to_dict(self) -> dict[str, Any]:
        return {
            "setting": self.setting,
            "value": self.value,
            "takes_effect": self.takes_effect,
            "why": self.why,
            "source": self.source,
        }


@dataclass(frozen=True)
class Explanation(TextTable):
    """What a `SessionConfig` sets and what of it the installed TensorFlow honours."""

    rows: tuple[ExplainRow, ...]
    runtime: tuple[tuple[str, str], ...]
    env: tuple[tuple[str, str], ...]
    notes: tuple[str, ...] = ()

    _COLUMNS = ("setting", "value", "takes effect", "why", "source")

    def row(self, setting: str) -> ExplainRow:
        """The row of ``setting`` (``"KMP_AFFINITY"``, ``"intra_op_parallelism_threads"``...)."""
        for r in self.rows:
            if r.setting == setting:
                return r
        hint = did_you_mean(setting, [r.setting for r in self.rows])
        raise ConfigError("no such setting in this explanation", where=setting, hint=hint)

    def _cells(self) -> list[tuple[str, str, str, str, str]]:
        return [(r.setting, r.value, r.effect_text, r.why, r.source) for r in self.rows]

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": dict(self.runtime),
            "rows": [r.to_dict() for r in self.rows],
            "env": dict(self.env),
            "notes": list(self.notes),
        }

    def to_markdown(self) -> str:
        """A Markdown table (used to write docs/threads.md)."""
        lines = ["| " + " | ".join(self._COLUMNS) + " |", "|" + "---|" * len(self._COLUMNS)]
        for cells in self._cells():
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        return "\n".join(lines)

    def _title(self) -> str:
        return "Session settings on " + ", ".join(f"{k} {v}" for k, v in self.runtime)

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        parts: list[Any] = [rich_table(self._title(), self._COLUMNS, self._cells())]
        parts.extend(Text(f"note: {n}", style="yellow") for n in self.notes)
        return Group(*parts)

    def _repr_html_(self) -> str:
        import html

        notes = "".join(f"<p><b>note:</b> {html.escape(n)}</p>" for n in self.notes)
        return html_table(self._title(), self._COLUMNS, self._cells()) + notes


_UNSET: Any = object()


@dataclass(frozen=True)
class SessionConfig:
    """Thread, OpenMP and oneDNN settings for one TensorFlow process (immutable builder).

    Build it with `for_topology()`; the fields are the *configured* values, the
    properties (`intra_op_threads`, `omp_threads`, ...) the *effective* ones
    after environment overrides.

    Attributes:
        intra_op: intra-op threads (the paper: physical cores).
        inter_op: inter-op threads (the paper: 1; 2 for ResNet-101).
        omp: ``OMP_NUM_THREADS``; ``None`` follows the intra-op threads.
        kmp_blocktime, kmp_settings, kmp_affinity: ``KMP_*`` values; ``None`` leaves unset.
        onednn_opts: ``TF_ENABLE_ONEDNN_OPTS``; ``None`` leaves TensorFlow's default.
        extra_env: more variables from `with_env()`.
        trust_env: variables already in ``os.environ`` override tfcpu's defaults.
        per_session_threads: ``ConfigProto.use_per_session_threads`` (Appendix B sets it).
        cpus: the CPUs the process runs on (informational; pinning is InstancePlan's job).
        budget: usable CPUs of the topology, to flag oversubscription.
        explicit: names of the variables set through a ``with_*`` call.
    """

    intra_op: int
    inter_op: int = 1
    omp: int | None = None
    kmp_blocktime: str | None = "1"
    kmp_settings: str | None = "1"
    kmp_affinity: str | None = DEFAULT_KMP_AFFINITY
    onednn_opts: bool | None = None
    extra_env: tuple[tuple[str, str], ...] = ()
    trust_env: bool = True
    per_session_threads: bool = True
    cpus: tuple[int, ...] = ()
    budget: int | None = None
    explicit: frozenset[str] = field(default_factory=frozenset)
    itex: ItexSettings | None = None

    def __post_init__(self) -> None:
        _check_threads("intra_op_threads", self.intra_op, allow_zero=True)
        _check_threads("inter_op_threads", self.inter_op, allow_zero=True)
        if self.omp is not None:
            _check_threads("omp_threads", self.omp)
        if self.itex is not None and self.onednn_opts is False:
            raise ConfigError(
                "ITEX needs TF_ENABLE_ONEDNN_OPTS=1",
                where="with_itex / with_onednn(False)",
                why="ITEX's CPU plug-in refuses to optimise graphs when TensorFlow's oneDNN switch is off",
                hint="drop with_onednn(False), or drop with_itex(...)",
            )

    # -- construction -------------------------------------------------------------------
    @classmethod
    def for_topology(cls, topo: Topology | None = None) -> SessionConfig:
        """The white paper's settings for the usable budget of ``topo`` (default: this machine)."""
        if topo is None:
            from tfcpu.topology import Topology

            topo = Topology.detect()
        return cls(
            intra_op=topo.usable_physical_cores,
            cpus=topo.usable_cpu_set,
            budget=topo.usable_cpus,
        )

    def _set(self, names: tuple[str, ...], **changes: Any) -> SessionConfig:
        return dataclasses.replace(self, explicit=self.explicit | frozenset(names), **changes)

    def with_intra_op_threads(self, n: int) -> SessionConfig:
        """Threads one op may use (``intra_op_parallelism_threads``, ``TF_NUM_INTRAOP_THREADS``)."""
        return self._set((INTRA,), intra_op=_check_threads("intra_op_threads", n, allow_zero=True))

    def with_inter_op_threads(self, n: int) -> SessionConfig:
        """Ops run at the same time (``inter_op_parallelism_threads``, ``TF_NUM_INTEROP_THREADS``)."""
        return self._set((INTER,), inter_op=_check_threads("inter_op_threads", n, allow_zero=True))

    def with_omp_threads(self, n: int | None) -> SessionConfig:
        """``OMP_NUM_THREADS``; ``None`` makes it follow the intra-op threads again."""
        if n is None:
            return dataclasses.replace(self, omp=None, explicit=self.explicit - {OMP})
        return self._set((OMP,), omp=_check_threads("omp_threads", n))

    def with_kmp(
        self, *, blocktime: int | str | None = _UNSET, settings: bool | None = _UNSET, affinity: str | None = _UNSET
    ) -> SessionConfig:
        """Intel OpenMP settings; ``None`` leaves a variable unset. Only OpenMP builds read them.

        Args:
            blocktime: ms a thread spins after a parallel region (``0``.. or ``"infinite"``).
            settings: print the OpenMP settings at start-up.
            affinity: a ``KMP_AFFINITY`` string such as ``granularity=fine,compact,1,0``.
        """
        changes: dict[str, Any] = {}
        names: list[str] = []
        if blocktime is not _UNSET:
            names.append(BLOCKTIME)
            if blocktime is None:
                changes["kmp_blocktime"] = None
            elif isinstance(blocktime, str) and blocktime == "infinite":
                changes["kmp_blocktime"] = "infinite"
            elif isinstance(blocktime, int) and not isinstance(blocktime, bool) and 0 <= blocktime <= 2**31 - 1:
                changes["kmp_blocktime"] = str(blocktime)
            else:
                raise ConfigError(
                    "invalid KMP_BLOCKTIME",
                    where="with_kmp(blocktime=...)",
                    why=f"got {blocktime!r}",
                    hint='use milliseconds (0, 1, 200) or "infinite"; the paper uses 1',
                )
        if settings is not _UNSET:
            names.append(SETTINGS)
            if settings is not None and not isinstance(settings, bool):
                raise ConfigError(
                    "KMP_SETTINGS must be True, False or None",
                    where="with_kmp(settings=...)",
                    why=f"got {settings!r}",
                )
            changes["kmp_settings"] = None if settings is None else ("1" if settings else "0")
        if affinity is not _UNSET:
            names.append(AFFINITY)
            if affinity is not None and (
                not isinstance(affinity, str) or not affinity.strip() or re.search(r"\s", affinity)
            ):
                raise ConfigError(
                    "invalid KMP_AFFINITY",
                    where="with_kmp(affinity=...)",
                    why=f"got {affinity!r}",
                    hint="pass one string without spaces, e.g. 'granularity=fine,compact,1,0'",
                )
            changes["kmp_affinity"] = affinity
        return self._set(tuple(names), **changes)

    def with_onednn(self, enabled: bool | None) -> SessionConfig:
        """``TF_ENABLE_ONEDNN_OPTS=1/0``; ``None`` leaves TensorFlow's default for this CPU."""
        if enabled is not None and not isinstance(enabled, bool):
            raise ConfigError("with_onednn takes True, False or None", where="with_onednn", why=f"got {enabled!r}")
        return self._set((ONEDNN,), onednn_opts=enabled)

    def with_itex(
        self, amp: str | None = None, layout: bool | None = None, threadpool: str = "openmp"
    ) -> SessionConfig:
        """Run under Intel Extension for TensorFlow with these settings (needs ``tfcpu[itex]``).

        Sets ITEX's variables (``ITEX_AUTO_MIXED_PRECISION``, ``ITEX_LAYOUT_OPT``,
        ``ITEX_OMP_THREADPOOL``) and ``TF_ENABLE_ONEDNN_OPTS=1`` (ITEX's launcher does the same);
        `apply()` also hands `itex_config()` to ``itex.set_config``.

        Args:
            amp: ``"bf16"`` for ITEX's auto mixed precision, ``None`` for FP32.
            layout: ITEX's layout optimisation on/off; ``None`` keeps ITEX's default.
            threadpool: ``"openmp"`` (ITEX's default; OMP_*/KMP_* take effect) or ``"eigen"``.

        Raises:
            MissingDependencyError: ITEX is not installed (``pip install "tfcpu[itex]"``).
            ConfigError: an unknown value, or oneDNN was switched off with ``with_onednn(False)``.
        """
        settings = ItexSettings(amp=amp, layout=layout, threadpool=threadpool)
        _require_itex("with_itex")
        if settings.amp == "bf16":
            _check_itex_bf16()
        onednn = True if self.onednn_opts is None else self.onednn_opts
        return self._set((ONEDNN,), itex=settings, onednn_opts=onednn)

    def without_itex(self) -> SessionConfig:
        """Drop the ITEX settings (TF_ENABLE_ONEDNN_OPTS stays as it is)."""
        return dataclasses.replace(self, itex=None)

    def itex_config(self) -> Any:
        """ITEX's ``ConfigProto`` for `with_itex()`'s settings (imports ITEX and TensorFlow).

        Raises:
            ConfigError: no ITEX settings (call `with_itex()` first).
            MissingDependencyError: ITEX is not installed.
        """
        if self.itex is None:
            raise ConfigError("this SessionConfig has no ITEX settings", where="itex_config", hint="call .with_itex()")
        _require_itex("itex_config")
        import intel_extension_for_tensorflow as itex

        proto = itex.ConfigProto()
        options = proto.graph_options
        if self.itex.amp is not None:
            options.auto_mixed_precision = itex.ON
            options.auto_mixed_precision_options.data_type = itex.BFLOAT16
        if self.itex.layout is not None:
            options.layout_opt = itex.ON if self.itex.layout else itex.OFF
        return proto

    def with_env(self, **extra: str | int | float) -> SessionConfig:
        """More variables to set with the others (``TF_CPP_MIN_LOG_LEVEL="2"``, ...)."""
        merged = dict(self.extra_env)
        for name, value in extra.items():
            if not _ENV_NAME.match(name):
                raise ConfigError("invalid environment variable name", where=name)
            if name in MANAGED:
                raise ConfigError(
                    f"{name} is managed by SessionConfig",
                    where=f"with_env({name}=...)",
                    hint=f"use .{MANAGED[name]} so explain() and the plans stay consistent",
                )
            if name in ITEX_VARS:
                raise ConfigError(
                    f"{name} is managed by SessionConfig", where=f"with_env({name}=...)", hint="use .with_itex(...)"
                )
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ConfigError("environment values must be strings or numbers", where=name, why=f"got {value!r}")
            text = str(value)
            if "\0" in text:
                raise ConfigError("environment values cannot contain NUL", where=name)
            merged[name] = text
        return dataclasses.replace(self, extra_env=tuple(merged.items()))

    def with_trust_env(self, trust: bool) -> SessionConfig:
        """Whether variables already in ``os.environ`` override tfcpu's defaults."""
        if not isinstance(trust, bool):
            raise ConfigError("with_trust_env takes True or False", why=f"got {trust!r}")
        return dataclasses.replace(self, trust_env=trust)

    def with_per_session_threads(self, enabled: bool) -> SessionConfig:
        """``ConfigProto.use_per_session_threads`` (each session owns its pools)."""
        if not isinstance(enabled, bool):
            raise ConfigError("with_per_session_threads takes True or False", why=f"got {enabled!r}")
        return dataclasses.replace(self, per_session_threads=enabled)

    # -- resolution ---------------------------------------------------------------------
    def _resolved(self, environ: Mapping[str, str] | None = None) -> dict[str, tuple[str | None, str]]:
        """Managed variable -> (value or None, source), after environment overrides."""
        environ = os.environ if environ is None else environ
        out: dict[str, tuple[str | None, str]] = {}

        def pick(name: str, default: str | None, valid: bool = True, label: str = "white paper default") -> None:
            if name in self.explicit:
                out[name] = (default, "set explicitly")
            elif self.trust_env and name in environ and environ[name] != default:  # equal: nothing to credit
                if valid:
                    out[name] = (environ[name], "from environment")
                else:
                    log.warning("ignoring %s=%r from the environment: not a positive integer", name, environ[name])
                    out[name] = (default, f"{label} (environment value invalid)")
            else:
                out[name] = (default, label)

        pick(INTRA, str(self.intra_op or "") or None, _env_int(environ.get(INTRA)) is not None, "usable physical cores")
        pick(INTER, str(self.inter_op or "") or None, _env_int(environ.get(INTER)) is not None)
        intra_effective = out[INTRA][0]
        if self.omp is None and OMP not in self.explicit:
            if self.trust_env and OMP in environ and environ[OMP] != intra_effective:
                out[OMP] = (environ[OMP], "from environment")
            else:
                out[OMP] = (intra_effective, "follows intra-op threads")
        else:
            pick(OMP, str(self.omp) if self.omp is not None else intra_effective)
        pick(BLOCKTIME, self.kmp_blocktime)
        pick(SETTINGS, self.kmp_settings)
        pick(AFFINITY, self.kmp_affinity)
        pick(
            ONEDNN, None if self.onednn_opts is None else ("1" if self.onednn_opts else "0"), label="TensorFlow default"
        )
        return out

    @property
    def intra_op_threads(self) -> int:
        """Effective intra-op threads (a trusted ``TF_NUM_INTRAOP_THREADS`` wins over the default)."""
        return int(self._resolved()[INTRA][0] or 0)

    @property
    def inter_op_threads(self) -> int:
        """Effective inter-op threads."""
        return int(self._resolved()[INTER][0] or 0)

    @property
    def omp_threads(self) -> int | None:
        """Effective ``OMP_NUM_THREADS`` (``None`` if the environment holds a non-number)."""
        return _env_int(self._resolved()[OMP][0])

    @property
    def onednn(self) -> bool | None:
        """Effective ``TF_ENABLE_ONEDNN_OPTS``: True/False, or None for TensorFlow's default."""
        value = self._resolved()[ONEDNN][0]
        if value is None:
            return None
        return value.strip().lower() in ("1", "true", "yes", "on")

    # -- terminal calls -----------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """Every variable to set before TensorFlow starts (for this process or a child)."""
        out = {name: value for name, (value, _src) in self._resolved().items() if value is not None}
        out.update(self.extra_env)
        if self.itex is not None:
            out.update(self.itex.env())
        return out

    def config_proto(self) -> Any:
        """A ``tf.compat.v1.ConfigProto`` with the effective thread counts (imports TensorFlow)."""
        from tfcpu._lazy import import_tensorflow

        tf = import_tensorflow()
        return tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=self.intra_op_threads,
            inter_op_parallelism_threads=self.inter_op_threads,
            use_per_session_threads=self.per_session_threads,
        )

    def apply(self) -> dict[str, str]:
        """Set the variables in this process so TensorFlow picks them up when it starts.

        If TensorFlow is imported but not initialised, also calls the
        ``tf.config.threading`` setters. Returns the variables that changed.

        Raises:
            ConfigError: TensorFlow already started (or was imported with another oneDNN
                setting) and some value would not take effect.
        """
        from tfcpu.session.runtime import tensorflow_initialised

        env = self.env()
        imported = "tensorflow" in sys.modules
        conflicts: list[str] = []
        if imported:
            conflicts.extend(self._onednn_conflict())
        initialised = imported and tensorflow_initialised()
        if initialised:
            conflicts.extend(self._thread_conflicts(env))
        if conflicts:
            when = "started" if initialised else "been imported"
            raise ConfigError(
                f"TensorFlow has already {when} in this process; these settings would not take effect",
                where="SessionConfig.apply",
                why="; ".join(conflicts),
                hint=(
                    "call config.apply() before importing or using TensorFlow (right after `import tfcpu`), "
                    "or run the model in a fresh process with config.env() (tfcpu's Runner does); "
                    "thread counts alone also work for a new tf.compat.v1.Session(config=config.config_proto())"
                ),
            )
        changed = {k: v for k, v in env.items() if os.environ.get(k) != v}
        os.environ.update(env)
        if self.itex is not None:
            import intel_extension_for_tensorflow as itex

            itex.set_config(self.itex_config())
        if imported and not initialised:
            tf = sys.modules["tensorflow"]
            tf.config.threading.set_intra_op_parallelism_threads(self.intra_op_threads)
            tf.config.threading.set_inter_op_parallelism_threads(self.inter_op_threads)
        if changed:
            log.info("set %s", ", ".join(f"{k}={v}" for k, v in changed.items()))
        return changed

    def _onednn_conflict(self) -> list[str]:
        wanted = self.onednn
        if wanted is None:
            return []
        try:
            from tensorflow.python.util import _pywrap_util_port

            running = bool(_pywrap_util_port.IsMklEnabled())
        except (ImportError, AttributeError):
            return []
        if running == wanted:
            return []
        return [
            f"oneDNN is {'on' if running else 'off'} in the imported TensorFlow but "
            f"TF_ENABLE_ONEDNN_OPTS={'1' if wanted else '0'} is wanted (read once at import)"
        ]

    def _thread_conflicts(self, env: Mapping[str, str]) -> list[str]:
        tf = sys.modules["tensorflow"]
        out = []
        for label, wanted, getter, var in (
            ("intra_op_threads", self.intra_op_threads, tf.config.threading.get_intra_op_parallelism_threads, INTRA),
            ("inter_op_threads", self.inter_op_threads, tf.config.threading.get_inter_op_parallelism_threads, INTER),
        ):
            running = int(getter()) or _env_int(os.environ.get(var))
            if wanted == 0:
                continue  # TensorFlow's choice is wanted; whatever it chose stands
            if running is None:
                out.append(f"{label}={wanted} wanted, TensorFlow chose its own count at start-up")
            elif running != wanted:
                out.append(f"{label}={wanted} wanted, running with {running}")
        from tfcpu.session.runtime import runtime_info

        if runtime_info().kmp_effective:
            for var in (OMP, BLOCKTIME, SETTINGS, AFFINITY):
                if var in env and os.environ.get(var) != env[var]:
                    out.append(f"{var}={env[var]} wanted, the OpenMP runtime read {os.environ.get(var)!r}")
        return out

    def explain(self, runtime: RuntimeInfo | None = None) -> Explanation:
        """Which settings take effect on ``runtime`` (default: the installed TensorFlow)."""
        from tfcpu.session.runtime import runtime_info, tensorflow_initialised

        rt = runtime if runtime is not None else runtime_info()
        resolved = self._resolved()
        omp_rt = rt.kmp_effective
        if self.itex is not None and rt.itex_installed:
            omp_rt = self.itex.threadpool == "openmp"
        rows: list[ExplainRow] = []
        eigen_no = (
            "ITEX_OMP_THREADPOOL=0: ITEX's kernels run on TensorFlow's Eigen pool"
            if rt.itex_installed and not omp_rt
            else "no OpenMP runtime here: oneDNN runs on TensorFlow's Eigen pool"
        )

        def value_of(name: str) -> tuple[str, str]:
            value, source = resolved[name]
            if value is None:
                return ("0 (TensorFlow chooses)" if name in (INTRA, INTER) else "not set"), source
            return value, source

        v, s = value_of(INTRA)
        rows.append(
            ExplainRow(
                "intra_op_parallelism_threads",
                v,
                True,
                f"sizes the pool each op (and oneDNN) runs on; ConfigProto or {INTRA}",
                s,
            )
        )
        v, s = value_of(INTER)
        rows.append(
            ExplainRow(
                "inter_op_parallelism_threads",
                v,
                True,
                f"independent ops run at once; ConfigProto or {INTER}",
                s,
            )
        )
        rows.append(
            ExplainRow(
                "use_per_session_threads",
                str(self.per_session_threads).lower(),
                True,
                "each tf.compat.v1.Session owns its pools (eager code uses the global ones)"
                if self.per_session_threads
                else "sessions share the process-wide pools",
                "tfcpu default (Appendix B)",
            )
        )
        v, s = value_of(ONEDNN)
        state = "on" if rt.onednn_enabled else "off"
        if resolved[ONEDNN][0] is None:
            v = f"not set (oneDNN {state})"
        rows.append(ExplainRow(ONEDNN, v, True, f"read once at import: {rt.onednn_reason}", s))
        v, s = value_of(OMP)
        rows.append(
            ExplainRow(
                OMP,
                v,
                omp_rt,
                (
                    "sizes the OpenMP pool ITEX's oneDNN kernels run on"
                    if rt.itex_installed
                    else "sizes the OpenMP pool oneDNN uses on this build"
                )
                if omp_rt
                else "TensorFlow ignores it (Eigen pool); NumPy's OpenBLAS reads it",
                s,
            )
        )
        for name, what in (
            (BLOCKTIME, "ms an OpenMP thread spins before sleeping"),
            (SETTINGS, "prints the OpenMP settings at start-up"),
            (AFFINITY, "binds OpenMP threads to CPUs"),
        ):
            v, s = value_of(name)
            rows.append(ExplainRow(name, v, omp_rt, what if omp_rt else eigen_no, s))
        from tfcpu.topology.cpulist import format_cpulist

        cpus = format_cpulist(self.cpus) if self.cpus else "all allowed CPUs"
        rows.append(
            ExplainRow(
                "CPU affinity",
                cpus,
                True,
                "the OS keeps every thread on these CPUs; pin instances with InstancePlan",
                "process affinity",
            )
        )
        for name, value in self.extra_env:
            effect, why = _KNOWN_EXTRA.get(name, (None, "passed through; tfcpu does not know this variable"))
            if effect is None and name in ("ONEDNN_VERBOSE", "DNNL_VERBOSE", "ONEDNN_MAX_CPU_ISA"):
                effect = rt.onednn_enabled
            rows.append(ExplainRow(name, value, effect, why, "set explicitly"))

        rows.extend(self._itex_rows(rt))
        notes: list[str] = []
        if self.itex is not None and not rt.itex_installed:
            notes.append('ITEX settings are given but ITEX is not installed here: pip install "tfcpu[itex]"')
        if self.itex is not None and rt.itex_installed and omp_rt:
            notes.append(
                "with ITEX's OpenMP pool, OMP_NUM_THREADS and KMP_* size and pin the threads of ITEX's kernels; "
                "intra/inter-op threads still size TensorFlow's own pools (ops ITEX does not take)"
            )
        if self.budget is not None and self.intra_op_threads > self.budget:
            notes.append(
                f"intra-op threads ({self.intra_op_threads}) exceed the usable CPUs ({self.budget}): "
                "threads will be time-sliced; expect lower throughput"
            )
        if tensorflow_initialised():
            notes.append(
                "TensorFlow is already running in this process: thread and oneDNN settings apply to new "
                "processes (or new tf.compat.v1.Session objects for thread counts) only"
            )
        runtime_facts = (
            ("TensorFlow", rt.tf_version),
            ("threading", rt.threading),
            ("oneDNN", "on" if rt.onednn_enabled else "off"),
        )
        return Explanation(rows=tuple(rows), runtime=runtime_facts, env=tuple(self.env().items()), notes=tuple(notes))

    def _itex_rows(self, rt: RuntimeInfo) -> list[ExplainRow]:
        if self.itex is None:
            return []
        present = rt.itex_installed
        missing = "ITEX is not installed: nothing reads it"
        env = self.itex.env()
        rows = [
            ExplainRow(
                ITEX_THREADPOOL,
                env[ITEX_THREADPOOL],
                present,
                (
                    "1: ITEX's oneDNN kernels use an OpenMP pool (KMP_*/OMP_* apply)"
                    if env[ITEX_THREADPOOL] == "1"
                    else "0: ITEX's kernels use TensorFlow's Eigen pool (KMP_*/OMP_* inert)"
                )
                if present
                else missing,
                "with_itex(threadpool=...)",
            ),
            ExplainRow(
                ITEX_AMP,
                env.get(ITEX_AMP, "not set"),
                present if self.itex.amp else False,
                (
                    "ITEX rewrites the graph to bfloat16 where safe (slower than FP32 without AVX512_BF16/AMX)"
                    if self.itex.amp
                    else "FP32 (amp=None)"
                )
                if present
                else missing,
                "with_itex(amp=...)",
            ),
            ExplainRow(
                ITEX_LAYOUT,
                env.get(ITEX_LAYOUT, "not set (ITEX default)"),
                present,
                "ITEX's oneDNN blocked-layout propagation between ops" if present else missing,
                "with_itex(layout=...)",
            ),
        ]
        return rows

    # -- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Configured values plus the effective environment, JSON-ready."""
        return {
            "intra_op": self.intra_op,
            "inter_op": self.inter_op,
            "omp": self.omp,
            "kmp_blocktime": self.kmp_blocktime,
            "kmp_settings": self.kmp_settings,
            "kmp_affinity": self.kmp_affinity,
            "onednn_opts": self.onednn_opts,
            "extra_env": dict(self.extra_env),
            "trust_env": self.trust_env,
            "per_session_threads": self.per_session_threads,
            "cpus": list(self.cpus),
            "budget": self.budget,
            "explicit": sorted(self.explicit),
            "itex": None if self.itex is None else self.itex.to_dict(),
            "env": self.env(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionConfig:
        """Rebuild from `to_dict()` (the derived ``env`` key is ignored)."""
        return cls(
            intra_op=int(data["intra_op"]),
            inter_op=int(data.get("inter_op", 1)),
            omp=None if data.get("omp") is None else int(data["omp"]),
            kmp_blocktime=data.get("kmp_blocktime", "1"),
            kmp_settings=data.get("kmp_settings", "1"),
            kmp_affinity=data.get("kmp_affinity", DEFAULT_KMP_AFFINITY),
            onednn_opts=data.get("onednn_opts"),
            extra_env=tuple((str(k), str(v)) for k, v in dict(data.get("extra_env", {})).items()),
            trust_env=bool(data.get("trust_env", True)),
            per_session_threads=bool(data.get("per_session_threads", True)),
            cpus=tuple(int(c) for c in data.get("cpus", ())),
            budget=None if data.get("budget") is None else int(data["budget"]),
            explicit=frozenset(str(n) for n in data.get("explicit", ())),
            itex=None if data.get("itex") is None else ItexSettings.from_dict(data["itex"]),
        )

    def __rich__(self) -> Any:
        return rich_table("SessionConfig environment", ("variable", "value"), sorted(self.env().items()))

    def _repr_html_(self) -> str:
        return html_table("SessionConfig environment", ("variable", "value"), sorted(self.env().items()))
