"""What `tfcpu.SessionConfig.apply()` finds in a process where TensorFlow already runs.

TensorFlow reads oneDNN's switch once at import and sizes its thread pools once at start-up; these
functions list the wanted settings the running process no longer honours (``apply`` raises with them).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from tfcpu.session._resolve import AFFINITY, BLOCKTIME, INTER, INTRA, OMP, ONEDNN, SETTINGS, env_int

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.session.config import SessionConfig

__all__ = ["onednn_conflict", "thread_conflicts"]


def onednn_conflict(wanted: bool | None) -> list[str]:
    """The oneDNN switch the imported TensorFlow runs with, when it is not ``wanted``.

    Args:
        wanted: the config's effective oneDNN setting (None: TensorFlow's default, no conflict).
    """
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
        f"{ONEDNN}={'1' if wanted else '0'} is wanted (read once at import)"
    ]


def thread_conflicts(config: SessionConfig, env: Mapping[str, str]) -> list[str]:
    """Thread counts (and, on OpenMP runtimes, OMP/KMP values) the started TensorFlow no longer takes.

    Args:
        config: the config being applied.
        env: the variables it sets.
    """
    tf = sys.modules["tensorflow"]
    out = []
    for label, wanted, getter, var in (
        ("intra_op_threads", config.intra_op_threads, tf.config.threading.get_intra_op_parallelism_threads, INTRA),
        ("inter_op_threads", config.inter_op_threads, tf.config.threading.get_inter_op_parallelism_threads, INTER),
    ):
        running = int(getter()) or env_int(os.environ.get(var))
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
