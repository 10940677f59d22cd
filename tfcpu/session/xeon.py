"""Runtime settings the field uses on Xeon: oneDNN's frozen-weights switch and a preloaded allocator.

* ``TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1`` (`SessionConfig.with_frozen_weights`): read once, at the
  first oneDNN convolution or matmul kernel, by ``AreWeightsFrozen()`` in TensorFlow's
  ``tensorflow/core/util/onednn_env_vars.cc``; the oneDNN Conv2D/MatMul/FusedMatMul kernels then
  treat every filter as constant and cache its reordered (blocked) copy instead of reordering it on
  each call. The stock x86 wheel is built with oneDNN and holds the variable's name (checked in
  ``libtensorflow_framework.so.2`` of TF 2.21). It does nothing with oneDNN off, and little on the
  graphs tfcpu runs: their filters are ``Const`` nodes, which oneDNN's layout pass already marks
  ``is_filter_const``; it pays for graphs whose weights are read from variables.
* A memory allocator (`SessionConfig.with_allocator`): tcmalloc or jemalloc, preloaded with
  ``LD_PRELOAD`` into **instance children only** (an allocator cannot be swapped in a running
  process; IPEX's launcher does the same). The library is looked up on this OS when a child
  environment is built, never by the builder.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self

from tfcpu.errors import ConfigError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.session.config import SessionConfig
    from tfcpu.session.explain import ExplainRow
    from tfcpu.session.runtime import RuntimeInfo

__all__ = [
    "ALLOCATORS",
    "FROZEN_WEIGHTS",
    "PRELOAD",
    "XeonSettings",
    "check_allocator",
    "find_allocator",
    "preload_env",
    "require_allocator",
    "xeon_rows",
]

FROZEN_WEIGHTS = "TF_ONEDNN_ASSUME_FROZEN_WEIGHTS"
PRELOAD = "LD_PRELOAD"

# allocator -> (shared-library names, most preferred first; the Debian/Ubuntu package that ships one)
ALLOCATORS: dict[str, tuple[tuple[str, ...], str]] = {
    "tcmalloc": (
        ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4", "libtcmalloc_minimal.so", "libtcmalloc.so"),
        "libtcmalloc-minimal4",
    ),
    "jemalloc": (("libjemalloc.so.2", "libjemalloc.so"), "libjemalloc2"),
}
_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib", "/lib/x86_64-linux-gnu", "/lib64")


def check_allocator(name: str | None, where: str = "with_allocator") -> str | None:
    """``name`` if it is a known allocator (or None), else a ``ConfigError`` with the close match.

    Args:
        name: ``"tcmalloc"``, ``"jemalloc"`` or None (the C library's malloc).
        where: the call named in the error.
    """
    if name is None:
        return None
    if not isinstance(name, str) or name.lower() not in ALLOCATORS:
        raise ConfigError(
            f"unknown allocator {name!r}",
            where=where,
            why=f"tfcpu knows {', '.join(ALLOCATORS)}",
            hint=did_you_mean(str(name), list(ALLOCATORS)) or "use 'tcmalloc', 'jemalloc' or None",
        )
    return name.lower()


@functools.lru_cache(maxsize=1)
def _ldconfig() -> tuple[tuple[str, str], ...]:
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    pairs = []
    for line in out.splitlines():
        if "=>" in line:
            left, path = line.split("=>", 1)
            pairs.append((left.split()[0] if left.split() else "", path.strip()))
    return tuple(pairs)


def find_allocator(name: str, dirs: Sequence[str] | None = None) -> str | None:
    """The path of ``name``'s shared library on this OS (``ldconfig -p``, then common directories), or None.

    Args:
        name: ``"tcmalloc"`` or ``"jemalloc"``.
        dirs: look only in these directories (tests); default: ``ldconfig -p`` and the usual lib directories.
    """
    libs, _package = ALLOCATORS[check_allocator(name) or name]
    if dirs is None:
        cache = dict(reversed(_ldconfig()))
        for lib in libs:
            if lib in cache and os.path.exists(cache[lib]):
                return cache[lib]
        dirs = _DIRS
    for lib in libs:
        for d in dirs:
            hits = sorted(glob.glob(os.path.join(d, lib)))
            if hits:
                return hits[0]
    return None


def require_allocator(name: str, where: str, dirs: Sequence[str] | None = None) -> str:
    """The library path of ``name``, or a ``ConfigError`` naming the package to install.

    Args:
        name: ``"tcmalloc"`` or ``"jemalloc"``.
        where: the call named in the error.
        dirs: as in `find_allocator`.
    """
    path = find_allocator(name, dirs)
    if path is None:
        libs, package = ALLOCATORS[name]
        raise ConfigError(
            f"allocator {name!r} not found on this machine",
            where=where,
            why=f"none of {', '.join(libs)} is in ldconfig's cache or {', '.join(dirs or _DIRS)}",
            hint=f"install it (Debian/Ubuntu: apt-get install {package}), or drop the allocator setting",
        )
    return path


def preload_env(
    allocator: str | None, base: Mapping[str, str], where: str, dirs: Sequence[str] | None = None
) -> dict[str, str]:
    """``{"LD_PRELOAD": ...}`` for a child that should run on ``allocator`` (empty for None).

    The allocator goes first; an ``LD_PRELOAD`` already in ``base`` is kept after it.

    Args:
        allocator: ``"tcmalloc"``, ``"jemalloc"`` or None.
        base: the child's environment so far.
        where: the call named in a not-found error.
        dirs: as in `find_allocator`.
    """
    if allocator is None:
        return {}
    path = require_allocator(allocator, where, dirs)
    rest = [p for p in base.get(PRELOAD, "").replace(":", " ").split() if p and p != path]
    return {PRELOAD: " ".join([path, *rest])}


_FROZEN_WHY = (
    "read once by TensorFlow's oneDNN Conv2D/MatMul kernels (AreWeightsFrozen, onednn_env_vars.cc): every "
    "filter is treated as constant and its reordered copy cached; frozen GraphDefs already have Const filters "
    "(marked is_filter_const), so it pays for variable-backed weights"
)


def xeon_rows(config: SessionConfig, rt: RuntimeInfo) -> list[ExplainRow]:
    """Explanation rows of the frozen-weights and allocator settings (none when they are unset).

    Args:
        config: the SessionConfig explained.
        rt: the runtime the rows are true for.
    """
    from tfcpu.session.explain import ExplainRow

    rows: list[ExplainRow] = []
    if config.frozen_weights is True:
        effect = rt.onednn_enabled
        why = _FROZEN_WHY if effect else "oneDNN is off here: no oneDNN kernel reads it"
        rows.append(ExplainRow(FROZEN_WEIGHTS, "1", effect, why, "with_frozen_weights(True)"))
    elif config.frozen_weights is False:
        rows.append(
            ExplainRow(FROZEN_WEIGHTS, "0", True, "TensorFlow's default: filters reordered unless Const", "set")
        )
    if config.allocator is not None:
        path = find_allocator(config.allocator)
        if path is None:
            package = ALLOCATORS[config.allocator][1]
            value, effect = f"{config.allocator} (not found)", False
            why = f"no {config.allocator} library on this machine: apt-get install {package}"
        else:
            value, effect = f"{config.allocator} ({path})", True
            why = (
                f"{PRELOAD} in instance children (Runner.multi_instance, tfcpu bench --instances, tfcpu launch); "
                "never in this process, whose allocator is fixed at start"
            )
        rows.append(ExplainRow("allocator", value, effect, why, "with_allocator(...)"))
    return rows


class XeonSettings:
    """The builders of the two settings, mixed into `SessionConfig` (its ``frozen_weights`` and ``allocator``)."""

    frozen_weights: bool | None
    allocator: str | None

    def _replace(self, **changes: Any) -> Self:
        new: Self = dataclasses.replace(self, **changes)  # type: ignore[type-var]
        return new

    def with_frozen_weights(self, enabled: bool | None) -> Self:
        """``TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1/0``: oneDNN caches reordered filters (see the module docstring).

        Args:
            enabled: True/False, or None to leave the variable unset (TensorFlow's default: off).
        """
        if enabled is not None and not isinstance(enabled, bool):
            raise ConfigError("with_frozen_weights takes True, False or None", why=f"got {enabled!r}")
        return self._replace(frozen_weights=enabled)

    def with_allocator(self, name: str | None) -> Self:
        """Preload ``"tcmalloc"`` or ``"jemalloc"`` (``LD_PRELOAD``) into instance children; None: libc's malloc.

        Never set in this process (``env()`` and ``apply()`` leave it out): `preload_env()` gives the
        variable for a child, and a missing library is refused there, naming the package.

        Args:
            name: ``"tcmalloc"``, ``"jemalloc"`` or None.
        """
        return self._replace(allocator=check_allocator(name))

    def preload_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``{"LD_PRELOAD": path}`` for a child process (empty without an allocator); looks the library up.

        Args:
            base: the child's environment so far (an ``LD_PRELOAD`` in it is kept after the allocator).

        Raises:
            ConfigError: the allocator's library is not on this machine (names the package to install).
        """
        return preload_env(self.allocator, os.environ if base is None else base, "SessionConfig.preload_env")
