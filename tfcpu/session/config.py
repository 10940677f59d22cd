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
``itex.ConfigProto`` (`SessionConfig.itex_config()`); see docs/itex.md. `with_frozen_weights()`,
`with_allocator()` and `preload_env()` (from `tfcpu.session.xeon.XeonSettings`) add the Xeon field
settings; see docs/threads.md.

Where values come from, highest first: a ``with_*`` call, then (with ``trust_env``, the
default) a variable already in the environment, then tfcpu's default. A user's
``OMP_NUM_THREADS=8`` in the shell therefore wins over the default, and ``explain()`` says so.
The environment is read at defined points only: the properties (``intra_op_threads``...) are
resolved once against a snapshot of the managed variables taken when the config is first built
(carried by every ``with_*`` copy); the terminal calls ``env()``, ``explain()`` and ``apply()``
resolve against the environment at the call, or an explicit ``environ=`` mapping.

The module is split along its concerns: `tfcpu.session.itex` (ITEX settings),
`tfcpu.session.explain` (explanation rows and their renderer), ``tfcpu.session._resolve``
(names and environment resolution); this module is the builder and its terminal calls. Every
name that lived here is still importable from here.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tfcpu._render import html_table, rich_table
from tfcpu.errors import ConfigError
from tfcpu.session._conflicts import onednn_conflict, thread_conflicts
from tfcpu.session._record import fields_from_record, record
from tfcpu.session._resolve import (
    AFFINITY,
    BLOCKTIME,
    DEFAULT_KMP_AFFINITY,
    ENV_NAME,
    INTER,
    INTRA,
    MANAGED,
    OMP,
    ONEDNN,
    SETTINGS,
    Resolved,
    env_int,
    kmp_changes,
    merge_extra_env,
    resolve,
)
from tfcpu.session._resolve import check_threads as _check_threads
from tfcpu.session.explain import ExplainRow, Explanation, explain_rows
from tfcpu.session.itex import (
    ITEX_AMP,
    ITEX_AMP_CHOICES,
    ITEX_AMP_TYPE,
    ITEX_LAYOUT,
    ITEX_THREADPOOL,
    ITEX_THREADPOOLS,
    ITEX_VARS,
    ItexSettings,
    check_itex_bf16,
    itex_config,
    itex_installed,
    require_itex,
)
from tfcpu.session.xeon import FROZEN_WEIGHTS, XeonSettings, check_allocator

if TYPE_CHECKING:
    from tfcpu.session.runtime import RuntimeInfo
    from tfcpu.topology import Topology

__all__ = [
    "AFFINITY",
    "BLOCKTIME",
    "DEFAULT_KMP_AFFINITY",
    "INTER",
    "INTRA",
    "ITEX_AMP",
    "ITEX_AMP_CHOICES",
    "ITEX_AMP_TYPE",
    "ITEX_LAYOUT",
    "ITEX_THREADPOOL",
    "ITEX_THREADPOOLS",
    "ITEX_VARS",
    "MANAGED",
    "OMP",
    "ONEDNN",
    "SETTINGS",
    "ExplainRow",
    "Explanation",
    "ItexSettings",
    "SessionConfig",
    "itex_installed",
]

log = logging.getLogger(__name__)

# Names this module has always had (tfcpu.plan, tfcpu.cli.bench and tests import them from here).
_require_itex = require_itex
_check_itex_bf16 = check_itex_bf16
_env_int = env_int
_ENV_NAME = ENV_NAME

_UNSET: Any = object()


@dataclass(frozen=True)
class SessionConfig(XeonSettings):
    """Thread, OpenMP and oneDNN settings for one TensorFlow process (immutable builder).

    Build it with `for_topology()`; the fields are the *configured* values, the
    properties (`intra_op_threads`, `omp_threads`, ...) the *effective* ones
    after the overrides of the environment snapshot taken when the config was built.

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
        itex: Intel Extension for TensorFlow settings (`with_itex()`).
        frozen_weights: ``TF_ONEDNN_ASSUME_FROZEN_WEIGHTS``; ``None`` leaves it unset (`with_frozen_weights()`).
        allocator: ``"tcmalloc"``/``"jemalloc"`` preloaded into instance children (`with_allocator()`).
        isa: the planned CPU's ISA flags (set by `for_topology()`), for checks at the terminal
            calls; empty: the machine is read there if a check needs it.
        environ: the managed variables of the environment when the config was first built
            (``None`` at construction: taken from ``os.environ`` then); ``with_*`` copies keep it.
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
    frozen_weights: bool | None = None
    allocator: str | None = None
    isa: tuple[str, ...] = field(default=(), compare=False)
    environ: tuple[tuple[str, str], ...] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.environ is None:  # the one moment the environment is read (see the module docstring)
            snapshot = tuple((k, os.environ[k]) for k in MANAGED if k in os.environ)
            object.__setattr__(self, "environ", snapshot)
        _check_threads("intra_op_threads", self.intra_op, allow_zero=True)
        _check_threads("inter_op_threads", self.inter_op, allow_zero=True)
        if self.omp is not None:
            _check_threads("omp_threads", self.omp)
        object.__setattr__(self, "allocator", check_allocator(self.allocator, "SessionConfig(allocator=...)"))
        if self.itex is not None and self.onednn_opts is False:
            raise ConfigError(
                f"ITEX needs {ONEDNN}=1",
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
            isa=tuple(topo.isa),
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
        names, changes = kmp_changes(blocktime, settings, affinity, unset=_UNSET)
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
        `apply()` also hands `itex_config()` to ``itex.set_config``. The machine is not read
        here: bf16 on a CPU without AVX-512 is refused by `apply()`.

        Args:
            amp: ``"bf16"`` for ITEX's auto mixed precision, ``None`` for FP32.
            layout: ITEX's layout optimisation on/off; ``None`` keeps ITEX's default.
            threadpool: ``"openmp"`` (ITEX's default; OMP_*/KMP_* take effect) or ``"eigen"``.

        Raises:
            MissingDependencyError: ITEX is not installed (``pip install "tfcpu[itex]"``; a package
                lookup, no machine read).
            ConfigError: an unknown value, or oneDNN was switched off with ``with_onednn(False)``.
        """
        settings = ItexSettings(amp=amp, layout=layout, threadpool=threadpool)
        require_itex("with_itex")
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
        return itex_config(self.itex)

    def with_env(self, **extra: str | int | float) -> SessionConfig:
        """More variables to set with the others (``TF_CPP_MIN_LOG_LEVEL="2"``, ...)."""
        merged = merge_extra_env(self.extra_env, extra)
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
    @functools.cached_property
    def _snapshot_resolved(self) -> Resolved:
        return resolve(self, dict(self.environ or ()))

    def _resolved(self, environ: Mapping[str, str] | None = None) -> Resolved:
        """Managed variable -> (value or None, source): against ``environ``, else the snapshot (cached)."""
        if environ is None:
            return self._snapshot_resolved
        return resolve(self, environ)

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
        return env_int(self._resolved()[OMP][0])

    @property
    def onednn(self) -> bool | None:
        """Effective ``TF_ENABLE_ONEDNN_OPTS``: True/False, or None for TensorFlow's default."""
        from tfcpu.session.precision import parse_onednn_env

        return parse_onednn_env(self._resolved()[ONEDNN][0], where=f"SessionConfig {ONEDNN}")

    # -- terminal calls -----------------------------------------------------------------
    def _env(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        environ = os.environ if environ is None else environ
        out = {name: value for name, (value, _src) in self._resolved(environ).items() if value is not None}
        out.update(self.extra_env)
        if self.itex is not None:
            out.update(self.itex.env())
        if self.frozen_weights is not None:
            out[FROZEN_WEIGHTS] = "1" if self.frozen_weights else "0"
        return out

    def _check_machine(self) -> None:
        """Checks that need the CPU, made by the terminal calls (never by a builder)."""
        if self.itex is not None and self.itex.amp == "bf16":
            check_itex_bf16(self.isa or None)

    def env(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Every variable to set before TensorFlow starts (for this process or a child).

        Args:
            environ: resolve against this environment (default: ``os.environ`` now).
        """
        return self._env(environ)

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
                setting) and some value would not take effect; or ITEX bf16 on a CPU without
                AVX-512 (the planned CPU's flags, else this machine's, are read here).
        """
        from tfcpu.session.runtime import tensorflow_initialised

        self._check_machine()
        env = self.env(os.environ)
        imported = "tensorflow" in sys.modules
        conflicts: list[str] = []
        if imported:
            conflicts.extend(onednn_conflict(self.onednn))
        initialised = imported and tensorflow_initialised()
        if initialised:
            conflicts.extend(thread_conflicts(self, env))
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

    def explain(self, runtime: RuntimeInfo | None = None, *, environ: Mapping[str, str] | None = None) -> Explanation:
        """Which settings take effect on ``runtime`` (default: the installed TensorFlow), and why.

        Args:
            runtime: the runtime to explain for (default `runtime_info()`).
            environ: resolve against this environment (default: ``os.environ`` now).
        """
        from tfcpu.session.runtime import runtime_info, tensorflow_initialised

        rt = runtime if runtime is not None else runtime_info()
        environ = os.environ if environ is None else environ
        return explain_rows(self, rt, self._resolved(environ), self._env(environ), running=tensorflow_initialised())

    # -- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Configured values plus the effective environment, JSON-ready."""
        return {**record(self), "env": self._env()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionConfig:
        """Rebuild from `to_dict()` (the derived ``env`` key is ignored).

        Args:
            data: what `to_dict()` wrote.

        Raises:
            ConfigError: a key is missing or a value has the wrong type.
        """
        return cls(**fields_from_record(data))

    def __rich__(self) -> Any:
        return rich_table("SessionConfig environment", ("variable", "value"), sorted(self._env().items()))

    def _repr_html_(self) -> str:
        return html_table("SessionConfig environment", ("variable", "value"), sorted(self._env().items()))
