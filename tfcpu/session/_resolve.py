"""Where each SessionConfig value comes from: a ``with_*`` call, a trusted environment, or the default.

The variable names SessionConfig manages, the thread-count checks, and `resolve()`, which turns a
config and an environment snapshot into ``name -> (value, source)``. Resolution is a pure function of
its arguments: `tfcpu.SessionConfig` takes the snapshot once, when it is built (or from an
explicit ``environ=``), so its properties do not read ``os.environ`` on every call.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tfcpu.errors import ConfigError
from tfcpu.session.itex import ITEX_VARS
from tfcpu.session.precision import ONEDNN

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.session.config import SessionConfig

__all__ = [
    "AFFINITY",
    "BLOCKTIME",
    "DEFAULT_KMP_AFFINITY",
    "ENV_NAME",
    "INTER",
    "INTRA",
    "MANAGED",
    "OMP",
    "ONEDNN",
    "SETTINGS",
    "Resolved",
    "check_threads",
    "env_int",
    "kmp_changes",
    "merge_extra_env",
    "resolve",
]

log = logging.getLogger("tfcpu.session.config")

#: The white paper's ``KMP_AFFINITY`` for one process that owns the machine (Section 5).
DEFAULT_KMP_AFFINITY = "granularity=fine,verbose,compact,1,0"

INTRA = "TF_NUM_INTRAOP_THREADS"
INTER = "TF_NUM_INTEROP_THREADS"
OMP = "OMP_NUM_THREADS"
BLOCKTIME = "KMP_BLOCKTIME"
SETTINGS = "KMP_SETTINGS"
AFFINITY = "KMP_AFFINITY"

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
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MAX_THREADS = 4096

#: name -> (value or None, where it came from)
Resolved = dict[str, tuple[str | None, str]]


def check_threads(name: str, value: object, *, allow_zero: bool = False) -> int:
    """``value`` as a thread count (0 allowed with ``allow_zero``: TensorFlow chooses), or a ConfigError."""
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


def env_int(text: str | None) -> int | None:
    """A positive integer from an environment value, or None."""
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if value >= 1 else None


def resolve(config: SessionConfig, environ: Mapping[str, str]) -> Resolved:
    """Managed variable -> (value or None, source), after the overrides ``environ`` holds.

    Args:
        config: the configured values (``explicit`` names beat the environment).
        environ: the environment to honour when ``config.trust_env`` (a snapshot, not ``os.environ``).
    """
    out: Resolved = {}
    trusted = environ if config.trust_env else {}

    def pick(name: str, default: str | None, valid: bool = True, label: str = "white paper default") -> None:
        if name in config.explicit:
            out[name] = (default, "set explicitly")
        elif name in trusted and trusted[name] != default:  # equal: nothing to credit
            if valid:
                out[name] = (trusted[name], "from environment")
            else:
                log.warning("ignoring %s=%r from the environment: not a positive integer", name, trusted[name])
                out[name] = (default, f"{label} (environment value invalid)")
        else:
            out[name] = (default, label)

    pick(INTRA, str(config.intra_op or "") or None, env_int(trusted.get(INTRA)) is not None, "usable physical cores")
    pick(INTER, str(config.inter_op or "") or None, env_int(trusted.get(INTER)) is not None)
    intra_effective = out[INTRA][0]
    if config.omp is None and OMP not in config.explicit:
        if OMP in trusted and trusted[OMP] != intra_effective:
            out[OMP] = (trusted[OMP], "from environment")
        else:
            out[OMP] = (intra_effective, "follows intra-op threads")
    else:
        pick(OMP, str(config.omp) if config.omp is not None else intra_effective)
    pick(BLOCKTIME, config.kmp_blocktime)
    pick(SETTINGS, config.kmp_settings)
    pick(AFFINITY, config.kmp_affinity)
    onednn = None if config.onednn_opts is None else ("1" if config.onednn_opts else "0")
    pick(ONEDNN, onednn, label="TensorFlow default")
    return out


def kmp_changes(blocktime: Any, settings: Any, affinity: Any, *, unset: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Validate ``SessionConfig.with_kmp``'s arguments; return the variables named and the field changes.

    Args:
        blocktime: ms a thread spins after a parallel region (``0``.. or ``"infinite"``), or ``unset``.
        settings: print the OpenMP settings at start-up (bool/None), or ``unset``.
        affinity: a ``KMP_AFFINITY`` string (no spaces), None, or ``unset``.
        unset: the sentinel meaning "not given".
    """
    changes: dict[str, Any] = {}
    names: list[str] = []
    if blocktime is not unset:
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
    if settings is not unset:
        names.append(SETTINGS)
        if settings is not None and not isinstance(settings, bool):
            raise ConfigError(
                "KMP_SETTINGS must be True, False or None",
                where="with_kmp(settings=...)",
                why=f"got {settings!r}",
            )
        changes["kmp_settings"] = None if settings is None else ("1" if settings else "0")
    if affinity is not unset:
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
    return tuple(names), changes


def merge_extra_env(current: tuple[tuple[str, str], ...], extra: Mapping[str, Any]) -> dict[str, str]:
    """``SessionConfig.with_env``: ``current`` plus ``extra``, each name and value checked.

    Args:
        current: the variables already given.
        extra: the new ones (strings or numbers; not a managed or an ITEX variable).
    """
    merged = dict(current)
    for name, value in extra.items():
        if not ENV_NAME.match(name):
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
    return merged
