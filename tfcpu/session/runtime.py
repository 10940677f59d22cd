"""Facts about the installed TensorFlow that decide which settings take effect.

`runtime_info()` imports TensorFlow, so it is never called at ``import tfcpu`` time.
The three facts that matter for the white paper's knobs:

* **oneDNN on or off.** Stock TensorFlow on x86 Linux enables oneDNN only on CPUs with
  AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX, unless ``TF_ENABLE_ONEDNN_OPTS=1``.
* **Threading runtime.** Stock TensorFlow ≥ 2.9 runs oneDNN on its own Eigen thread pool,
  so ``KMP_*`` and ``OMP_NUM_THREADS`` change nothing; intra/inter-op threads and process
  affinity do. OpenMP builds (old intel-tensorflow, ITEX's CPU plug-in) honour ``KMP_*``.
  ITEX runs its oneDNN kernels on an OpenMP pool unless ``ITEX_OMP_THREADPOOL=0``.
* **ITEX** (Intel Extension for TensorFlow) installed or not. TensorFlow loads the plug-in from
  ``site-packages/tensorflow-plugins`` at import whenever it is installed.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import asdict, dataclass
from typing import Any

from tfcpu._render import TextTable, html_table, rich_table

__all__ = ["RuntimeInfo", "runtime_info", "tensorflow_initialised"]


@dataclass(frozen=True)
class RuntimeInfo(TextTable):
    """What the installed TensorFlow is and how it threads."""

    tf_version: str
    keras_version: str | None
    onednn_enabled: bool
    onednn_reason: str
    threading: str  # "eigen" or "openmp"
    itex_installed: bool
    itex_version: str | None
    neural_compressor_version: str | None
    python: str

    @property
    def kmp_effective(self) -> bool:
        """Whether KMP_*/OMP_* variables change anything on this runtime."""
        return self.threading == "openmp"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuntimeInfo:
        return cls(**data)

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("TensorFlow", self.tf_version),
            ("Keras", self.keras_version or "not installed"),
            ("oneDNN", f"{'on' if self.onednn_enabled else 'off'} ({self.onednn_reason})"),
            (
                "threading",
                f"{self.threading}: KMP_*/OMP_* "
                + ("take effect" if self.kmp_effective else "have no effect (Eigen thread pool)"),
            ),
            ("ITEX", self.itex_version or "not installed"),
            ("Neural Compressor", self.neural_compressor_version or "not installed"),
            ("Python", self.python),
        ]

    def __rich__(self) -> Any:
        return rich_table("TensorFlow runtime", ("fact", "value"), self.rows())

    def _repr_html_(self) -> str:
        return html_table("TensorFlow runtime", ("fact", "value"), self.rows())


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def tensorflow_initialised() -> bool:
    """True once TensorFlow's runtime has started in this process (threads are fixed then)."""
    if "tensorflow" not in sys.modules:
        return False
    try:
        from tensorflow.python.eager import context

        ctx = context.context()
        return bool(getattr(ctx, "_context_handle", None))
    except Exception:  # noqa: BLE001 - private API; assume started to stay safe
        return True


@functools.lru_cache(maxsize=1)
def runtime_info() -> RuntimeInfo:
    """Describe the installed TensorFlow (imports it; cached for the process).

    Raises:
        MissingDependencyError: TensorFlow is not installed.
    """
    from tfcpu._lazy import import_tensorflow

    tf = import_tensorflow()
    try:
        from tensorflow.python.util import _pywrap_util_port

        onednn = bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        onednn = False
    from tfcpu.session.precision import ONEDNN

    env = os.environ.get(ONEDNN)
    if env is not None:
        reason = f"{ONEDNN}={env}"
    elif onednn:
        reason = "default on this CPU (it has VNNI/BF16/AMX)"
    else:
        reason = f"default off on this CPU (no VNNI/BF16/AMX); set {ONEDNN}=1"

    itex_version = _version("intel-extension-for-tensorflow") or _version("intel_extension_for_tensorflow")
    itex = itex_version is not None or importlib.util.find_spec("intel_extension_for_tensorflow") is not None
    # OpenMP threading: old intel-tensorflow builds, and ITEX's CPU plug-in unless ITEX_OMP_THREADPOOL=0
    # (ITEX reads it as a boolean that defaults to true; TensorFlow loads the plug-in whenever it is installed).
    intel_tf = _version("intel-tensorflow")
    itex_openmp = itex and _env_bool(os.environ.get("ITEX_OMP_THREADPOOL"), default=True)
    openmp = itex_openmp or (intel_tf is not None and _major_minor(intel_tf) <= (2, 14))
    return RuntimeInfo(
        tf_version=str(tf.__version__),
        keras_version=_version("keras"),
        onednn_enabled=onednn,
        onednn_reason=reason,
        threading="openmp" if openmp else "eigen",
        itex_installed=itex,
        itex_version=itex_version,
        neural_compressor_version=_version("neural-compressor") or _version("neural_compressor"),
        python=sys.version.split()[0],
    )


def _env_bool(text: str | None, *, default: bool) -> bool:
    """A boolean variable the way TensorFlow/ITEX parse it (1/0, true/false)."""
    if text is None or not text.strip():
        return default
    value = text.strip().lower()
    if value in ("1", "true"):
        return True
    if value in ("0", "false"):
        return False
    return default


def _major_minor(version: str) -> tuple[int, int]:
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return (0, 0)
