"""``SessionConfig.explain()``: per setting, its value, whether the installed runtime honours it, why.

The rows are data (`ExplainRow`, the facts in ``_KNOWN_EXTRA`` and the ``_KMP_ROWS`` table);
`Explanation` renders them (rich, HTML, Markdown, shell ``export`` lines). `explain_rows()`
builds them from a config, its resolved values and a `RuntimeInfo`.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tfcpu._render import TextTable, html_table, rich_table
from tfcpu.errors import ConfigError, did_you_mean
from tfcpu.session._resolve import AFFINITY, BLOCKTIME, INTER, INTRA, OMP, ONEDNN, SETTINGS, Resolved
from tfcpu.session.itex import ITEX_AMP, ITEX_LAYOUT, ITEX_THREADPOOL
from tfcpu.session.xeon import FROZEN_WEIGHTS, xeon_rows

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.session.config import SessionConfig
    from tfcpu.session.runtime import RuntimeInfo

__all__ = ["ExplainRow", "Explanation", "explain_rows"]

# Extra variables whose effect tfcpu knows: name -> (effect on stock TF, why).
_KNOWN_EXTRA: dict[str, tuple[bool | None, str]] = {
    "TF_CPP_MIN_LOG_LEVEL": (True, "filters TensorFlow's C++ log lines; read when TensorFlow is imported"),
    "ONEDNN_VERBOSE": (None, "oneDNN prints one line per primitive; only when oneDNN is enabled"),
    "DNNL_VERBOSE": (None, "old name of ONEDNN_VERBOSE; only when oneDNN is enabled"),
    "ONEDNN_MAX_CPU_ISA": (None, "caps the ISA oneDNN uses; only when oneDNN is enabled"),
    "OPENBLAS_NUM_THREADS": (False, "caps NumPy's OpenBLAS threads; TensorFlow does not use OpenBLAS"),
    "MKL_NUM_THREADS": (False, "caps Intel MKL threads; stock TensorFlow does not link MKL"),
    FROZEN_WEIGHTS: (None, "oneDNN Conv2D/MatMul kernels cache reordered filters (see with_frozen_weights)"),
}
_ONEDNN_ONLY = ("ONEDNN_VERBOSE", "DNNL_VERBOSE", "ONEDNN_MAX_CPU_ISA", FROZEN_WEIGHTS)
_KMP_ROWS = (
    (BLOCKTIME, "ms an OpenMP thread spins before sleeping"),
    (SETTINGS, "prints the OpenMP settings at start-up"),
    (AFFINITY, "binds OpenMP threads to CPUs"),
)
# Explanation rows named after the ConfigProto field, not the variable that also sets it.
_ROW_OF_VAR = {"intra_op_parallelism_threads": INTRA, "inter_op_parallelism_threads": INTER}


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

    def shell_exports(self) -> list[str]:
        """``export`` lines for a shell: a variable whose row says "takes effect: no" on this runtime is
        printed commented out, with the reason, so ``eval "$(tfcpu config --env)"`` sets only what counts."""
        by_var = {_ROW_OF_VAR.get(r.setting, r.setting): r for r in self.rows}
        lines = []
        for name, value in self.env:
            row = by_var.get(name)
            line = f"export {name}={shlex.quote(value)}"
            if row is not None and row.takes_effect is False:
                lines.append(f"# {line}  # takes effect: no - {row.why}")
            else:
                lines.append(line)
        return lines

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


def _value_of(resolved: Resolved, name: str) -> tuple[str, str]:
    value, source = resolved[name]
    if value is None:
        return ("0 (TensorFlow chooses)" if name in (INTRA, INTER) else "not set"), source
    return value, source


def _omp_effective(config: SessionConfig, rt: RuntimeInfo) -> bool:
    if config.itex is not None and rt.itex_installed:
        return config.itex.threadpool == "openmp"
    return rt.kmp_effective


def _thread_rows(config: SessionConfig, rt: RuntimeInfo, resolved: Resolved) -> list[ExplainRow]:
    v, s = _value_of(resolved, INTRA)
    rows = [
        ExplainRow(
            "intra_op_parallelism_threads",
            v,
            True,
            f"sizes the pool each op (and oneDNN) runs on; ConfigProto or {INTRA}",
            s,
        )
    ]
    v, s = _value_of(resolved, INTER)
    rows.append(
        ExplainRow("inter_op_parallelism_threads", v, True, f"independent ops run at once; ConfigProto or {INTER}", s)
    )
    rows.append(
        ExplainRow(
            "use_per_session_threads",
            str(config.per_session_threads).lower(),
            True,
            "each tf.compat.v1.Session owns its pools (eager code uses the global ones)"
            if config.per_session_threads
            else "sessions share the process-wide pools",
            "tfcpu default (Appendix B)",
        )
    )
    v, s = _value_of(resolved, ONEDNN)
    if resolved[ONEDNN][0] is None:
        v = f"not set (oneDNN {'on' if rt.onednn_enabled else 'off'})"
    rows.append(ExplainRow(ONEDNN, v, True, f"read once at import: {rt.onednn_reason}", s))
    return rows


def _openmp_rows(config: SessionConfig, rt: RuntimeInfo, resolved: Resolved) -> list[ExplainRow]:
    omp_rt = _omp_effective(config, rt)
    if omp_rt:
        omp_why = (
            "sizes the OpenMP pool ITEX's oneDNN kernels run on"
            if rt.itex_installed
            else "sizes the OpenMP pool oneDNN uses on this build"
        )
    else:
        omp_why = "TensorFlow ignores it (Eigen pool); NumPy's OpenBLAS reads it"
    eigen_no = (
        "ITEX_OMP_THREADPOOL=0: ITEX's kernels run on TensorFlow's Eigen pool"
        if rt.itex_installed and not omp_rt
        else "no OpenMP runtime here: oneDNN runs on TensorFlow's Eigen pool"
    )
    v, s = _value_of(resolved, OMP)
    rows = [ExplainRow(OMP, v, omp_rt, omp_why, s)]
    for name, what in _KMP_ROWS:
        v, s = _value_of(resolved, name)
        rows.append(ExplainRow(name, v, omp_rt, what if omp_rt else eigen_no, s))
    return rows


def _other_rows(config: SessionConfig, rt: RuntimeInfo) -> list[ExplainRow]:
    from tfcpu.topology.cpulist import format_cpulist

    cpus = format_cpulist(config.cpus) if config.cpus else "all allowed CPUs"
    rows = [
        ExplainRow(
            "CPU affinity",
            cpus,
            True,
            "the OS keeps every thread on these CPUs; pin instances with InstancePlan",
            "process affinity",
        )
    ]
    for name, value in config.extra_env:
        effect, why = _KNOWN_EXTRA.get(name, (None, "passed through; tfcpu does not know this variable"))
        if effect is None and name in _ONEDNN_ONLY:
            effect = rt.onednn_enabled
        rows.append(ExplainRow(name, value, effect, why, "set explicitly"))
    return rows


def _itex_rows(config: SessionConfig, rt: RuntimeInfo) -> list[ExplainRow]:
    if config.itex is None:
        return []
    present = rt.itex_installed
    missing = "ITEX is not installed: nothing reads it"
    env = config.itex.env()
    if not present:
        pool_why = amp_why = layout_why = missing
    else:
        pool_why = (
            "1: ITEX's oneDNN kernels use an OpenMP pool (KMP_*/OMP_* apply)"
            if env[ITEX_THREADPOOL] == "1"
            else "0: ITEX's kernels use TensorFlow's Eigen pool (KMP_*/OMP_* inert)"
        )
        amp_why = (
            "ITEX rewrites the graph to bfloat16 where safe (slower than FP32 without AVX512_BF16/AMX)"
            if config.itex.amp
            else "FP32 (amp=None)"
        )
        layout_why = "ITEX's oneDNN blocked-layout propagation between ops"
    return [
        ExplainRow(ITEX_THREADPOOL, env[ITEX_THREADPOOL], present, pool_why, "with_itex(threadpool=...)"),
        ExplainRow(
            ITEX_AMP, env.get(ITEX_AMP, "not set"), present if config.itex.amp else False, amp_why, "with_itex(amp=...)"
        ),
        ExplainRow(
            ITEX_LAYOUT, env.get(ITEX_LAYOUT, "not set (ITEX default)"), present, layout_why, "with_itex(layout=...)"
        ),
    ]


def _notes(config: SessionConfig, rt: RuntimeInfo, intra: int, running: bool) -> list[str]:
    notes: list[str] = []
    if config.itex is not None and not rt.itex_installed:
        notes.append('ITEX settings are given but ITEX is not installed here: pip install "tfcpu[itex]"')
    if config.itex is not None and rt.itex_installed and _omp_effective(config, rt):
        notes.append(
            "with ITEX's OpenMP pool, OMP_NUM_THREADS and KMP_* size and pin the threads of ITEX's kernels; "
            "intra/inter-op threads still size TensorFlow's own pools (ops ITEX does not take)"
        )
    if config.budget is not None and intra > config.budget:
        notes.append(
            f"intra-op threads ({intra}) exceed the usable CPUs ({config.budget}): "
            "threads will be time-sliced; expect lower throughput"
        )
    if running:
        notes.append(
            "TensorFlow is already running in this process: thread and oneDNN settings apply to new "
            "processes (or new tf.compat.v1.Session objects for thread counts) only"
        )
    return notes


def explain_rows(
    config: SessionConfig,
    rt: RuntimeInfo,
    resolved: Resolved,
    env: Mapping[str, str],
    *,
    running: bool,
) -> Explanation:
    """Build the `Explanation` of ``config`` on runtime ``rt``.

    Args:
        config: the SessionConfig explained.
        rt: the runtime the rows are true for.
        resolved: ``config``'s resolved values (`tfcpu.session._resolve.resolve()`).
        env: the variables ``config.env()`` sets.
        running: TensorFlow already runs in this process (adds a note).
    """
    rows = [
        *_thread_rows(config, rt, resolved),
        *_openmp_rows(config, rt, resolved),
        *_other_rows(config, rt),
        *_itex_rows(config, rt),
        *xeon_rows(config, rt),
    ]
    intra = int(resolved[INTRA][0] or 0)
    runtime_facts = (
        ("TensorFlow", rt.tf_version),
        ("threading", rt.threading),
        ("oneDNN", "on" if rt.onednn_enabled else "off"),
    )
    return Explanation(
        rows=tuple(rows), runtime=runtime_facts, env=tuple(env.items()), notes=tuple(_notes(config, rt, intra, running))
    )
