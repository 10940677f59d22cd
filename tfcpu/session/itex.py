"""Intel Extension for TensorFlow (ITEX) settings, as SessionConfig carries them (see docs/itex.md).

ITEX's own variables (names as ITEX 2.15 reads them), the frozen `ItexSettings`, the checks
(installed, bf16 needs AVX-512) and ITEX's ``ConfigProto``. `tfcpu.SessionConfig` holds an
``ItexSettings`` (`with_itex()`); the explanation rows are in
`tfcpu.session.explain`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tfcpu.errors import ConfigError, did_you_mean

__all__ = [
    "ITEX_AMP",
    "ITEX_AMP_CHOICES",
    "ITEX_AMP_TYPE",
    "ITEX_LAYOUT",
    "ITEX_THREADPOOL",
    "ITEX_THREADPOOLS",
    "ITEX_VARS",
    "ItexSettings",
    "check_itex_bf16",
    "itex_config",
    "itex_installed",
    "require_itex",
]

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


def require_itex(where: str) -> None:
    """Raise MissingDependencyError naming the ``itex`` extra when ITEX is not installed."""
    if not itex_installed():
        from tfcpu.errors import MissingDependencyError

        err = MissingDependencyError(
            "intel-extension-for-tensorflow",
            extra="itex",
            purpose=f"{where} configures Intel Extension for TensorFlow (needs TensorFlow 2.15, Python 3.11)",
        )
        raise err


def check_itex_bf16(isa: Sequence[str] | None = None) -> None:
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


def itex_config(settings: ItexSettings) -> Any:
    """ITEX's ``ConfigProto`` for ``settings`` (imports ITEX and TensorFlow).

    Args:
        settings: the ITEX settings of a SessionConfig.

    Raises:
        MissingDependencyError: ITEX is not installed.
    """
    require_itex("itex_config")
    import intel_extension_for_tensorflow as itex

    proto = itex.ConfigProto()
    options = proto.graph_options
    if settings.amp is not None:
        options.auto_mixed_precision = itex.ON
        options.auto_mixed_precision_options.data_type = itex.BFLOAT16
    if settings.layout is not None:
        options.layout_opt = itex.ON if settings.layout else itex.OFF
    return proto
