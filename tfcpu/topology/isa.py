"""ISA flags → which precisions the hardware accelerates, with advice.

Pure functions over normalised ``/proc/cpuinfo`` flag names.
"""

from __future__ import annotations

from collections.abc import Iterable

from tfcpu.topology.model import ISA_FLAGS, Precision

__all__ = ["normalise_flags", "precisions"]

# Some kernels spell a few flags differently; map them to the names in ISA_FLAGS.
_ALIASES = {
    "avx512vnni": "avx512_vnni",
    "avx512bf16": "avx512_bf16",
    "avx512fp16": "avx512_fp16",
    "avxvnni": "avx_vnni",
    "amx-tile": "amx_tile",
    "amx-int8": "amx_int8",
    "amx-bf16": "amx_bf16",
    "sse4.2": "sse4_2",
}


def normalise_flags(flags: Iterable[str]) -> tuple[str, ...]:
    """Keep the ISA flags tfcpu cares about, spelled consistently, in a stable order."""
    present = {_ALIASES.get(f.lower(), f.lower()) for f in flags}
    return tuple(f for f in ISA_FLAGS if f in present)


def _first(isa: tuple[str, ...], *names: str) -> str | None:
    return next((n for n in names if n in isa), None)


def precisions(isa: tuple[str, ...]) -> tuple[Precision, ...]:
    """Describe fp32, int8, bf16 and fp16 support for a normalised flag set."""
    fp32 = _first(isa, "avx512f", "avx2", "avx")
    fp32_advice = {
        "avx512f": "AVX-512: oneDNN's fastest FP32 kernels.",
        "avx2": "AVX2 FP32 kernels; INT8 needs VNNI or AMX to pay.",
        "avx": "AVX only: TensorFlow >= 1.6 wheels need AVX; expect modest FP32 speed.",
    }.get(fp32 or "", "No AVX: stock TensorFlow wheels will not run on this CPU.")

    int8 = _first(isa, "amx_int8", "avx512_vnni", "avx_vnni")
    if int8 == "amx_int8":
        int8_advice = "AMX tiles: INT8 can be many times faster than FP32."
    elif int8:
        int8_advice = f"{int8.upper()}: INT8 is typically 2-4x FP32 once batch norms are folded."
    elif "avx512f" in isa or "avx2" in isa:
        # Measured on an AVX2-only EPYC: ResNet-50 INT8 2.6x FP32 once batch norms are folded; smaller
        # models and graphs INC cannot quantise cleanly gain less or lose.
        int8_advice = (
            "no VNNI/AMX: INT8 runs on AVX2/AVX-512 kernels, gains are smaller and model-dependent; measure first."
        )
    else:
        int8_advice = "no VNNI/AMX/AVX2: INT8 may be slower than FP32 here; measure before deploying it."

    bf16 = _first(isa, "amx_bf16", "avx512_bf16")
    if bf16 == "amx_bf16":
        bf16_advice = "AMX BF16: mixed precision is usually much faster than FP32."
    elif bf16:
        bf16_advice = "AVX512_BF16 without AMX: BF16 was slower than FP32 on such CPUs; measure first."
    else:
        bf16_advice = "no BF16 instructions: BF16 is emulated and slower than FP32; do not use it."

    fp16 = _first(isa, "amx_fp16", "avx512_fp16")
    fp16_advice = (
        f"{fp16.upper()}: FP16 compute is available to oneDNN."
        if fp16
        else "no FP16 compute instructions: keep FP32 or use INT8/BF16."
    )
    return (
        Precision("fp32", True, fp32, fp32_advice),
        Precision("int8", int8 is not None, int8, int8_advice),
        Precision("bf16", bf16 is not None, bf16, bf16_advice),
        Precision("fp16", fp16 is not None, fp16, fp16_advice),
    )
