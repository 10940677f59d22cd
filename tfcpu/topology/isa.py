"""ISA flags → which precisions the hardware accelerates, which oneDNN kernels that means, with advice.

Pure functions over normalised ``/proc/cpuinfo`` flag names. The oneDNN ISA names
(``avx512_core_amx``, ``avx512_core_vnni``, ``avx2_vnni``, ...) are the ones oneDNN's verbose log
prints after an implementation's name, so `tfcpu.runtime.dispatch.probe_dispatch()` can show
whether the kernels the CPU has are the ones that ran.
"""

from __future__ import annotations

from collections.abc import Iterable

from tfcpu.topology.model import ISA_FLAGS, Precision

__all__ = ["ONEDNN_ISA_CAP", "cap_isa", "inference_flags", "normalise_flags", "precisions"]

#: oneDNN's variable that caps the instruction set its kernels may use. TensorFlow's oneDNN and
#: OpenVINO's CPU plug-in both honour it (checked on an AVX2 EPYC: ``SSE41`` turned TF's oneDNN to
#: "isa:Intel SSE4.1" and OpenVINO's convolutions from ``brgconv_avx2`` to ``jit_sse42``).
ONEDNN_ISA_CAP = "ONEDNN_MAX_CPU_ISA"

_AVX2 = ("sse4_2", "avx", "f16c", "fma", "avx2")
_AVX512 = (*_AVX2, "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl")
# The flags each ONEDNN_MAX_CPU_ISA value lets oneDNN use (its dnnl_cpu_isa_t levels; a level is a set,
# so AVX512_CORE does not include AVX2_VNNI). ALL/DEFAULT: no cap.
_ISA_CAPS: dict[str, tuple[str, ...]] = {
    "SSE41": ("sse4_2",),
    "AVX": ("sse4_2", "avx", "f16c"),
    "AVX2": _AVX2,
    "AVX2_VNNI": (*_AVX2, "avx_vnni"),
    "AVX2_VNNI_2": (*_AVX2, "avx_vnni", "avx_vnni_int8"),
    "AVX512_CORE": _AVX512,
    "AVX512_CORE_VNNI": (*_AVX512, "avx512_vnni"),
    "AVX512_CORE_BF16": (*_AVX512, "avx512_vnni", "avx512_bf16"),
    "AVX512_CORE_FP16": (*_AVX512, "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni"),
    "AVX512_CORE_AMX": (
        *_AVX512,
        "avx512_vnni",
        "avx512_bf16",
        "avx512_fp16",
        "avx_vnni",
        "amx_tile",
        "amx_int8",
        "amx_bf16",
    ),
}
_ISA_CAPS["AVX10_1_512"] = _ISA_CAPS["AVX512_CORE_FP16"]
_ISA_CAPS["AVX10_1_512_AMX"] = _ISA_CAPS["AVX512_CORE_AMX"]


def cap_isa(isa: tuple[str, ...], cap: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The flags oneDNN may use under ``ONEDNN_MAX_CPU_ISA=cap``, and the ones the cap hides.

    ``cap`` is oneDNN's value (``AVX2``, ``AVX512_CORE_VNNI``, ...; any case). None, empty, ``ALL``,
    ``DEFAULT`` or a level above every flag (``AVX512_CORE_AMX_FP16``, ...) hide nothing; so does a
    value oneDNN does not know (it ignores those too).
    """
    allowed = _ISA_CAPS.get((cap or "").strip().upper())
    if allowed is None:
        return isa, ()
    return tuple(f for f in isa if f in allowed), tuple(f for f in isa if f not in allowed)


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

#: Flags that decide INT8/BF16/FP16 speed, in the order the summary line names them.
_INFERENCE_FLAGS = ("avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_int8", "amx_bf16", "amx_fp16")


def normalise_flags(flags: Iterable[str]) -> tuple[str, ...]:
    """Keep the ISA flags tfcpu cares about, spelled consistently, in a stable order."""
    present = {_ALIASES.get(f.lower(), f.lower()) for f in flags}
    return tuple(f for f in ISA_FLAGS if f in present)


def inference_flags(isa: tuple[str, ...]) -> tuple[str, ...]:
    """The INT8/BF16/FP16 instruction sets present: VNNI, AVX512_BF16, AMX_INT8, AMX_BF16..."""
    return tuple(f for f in _INFERENCE_FLAGS if f in isa)


def _first(isa: tuple[str, ...], *names: str) -> str | None:
    return next((n for n in names if n in isa), None)


def _present(isa: tuple[str, ...], *names: str) -> tuple[str, ...]:
    return tuple(n for n in names if n in isa)


def _fp32(isa: tuple[str, ...]) -> Precision:
    fp32 = _first(isa, "avx512f", "avx2", "avx")
    advice, kernels = {
        "avx512f": ("AVX-512: oneDNN's fastest FP32 kernels (brgconv/brgemm at 512 bits).", "avx512_core"),
        "avx2": ("AVX2 FP32 kernels; INT8 needs VNNI or AMX to pay.", "avx2"),
        "avx": ("AVX only: TensorFlow >= 1.6 wheels need AVX; expect modest FP32 speed.", "avx"),
    }.get(fp32 or "", ("No AVX: stock TensorFlow wheels will not run on this CPU.", ""))
    return Precision("fp32", True, fp32, advice, _present(isa, "avx512f", "avx2", "fma", "avx"), kernels)


def _int8(isa: tuple[str, ...]) -> Precision:
    int8 = _first(isa, "amx_int8", "avx512_vnni", "avx_vnni")
    flags = _present(isa, "amx_int8", "avx512_vnni", "avx_vnni")
    if int8 == "amx_int8":
        advice = (
            "AMX_INT8 tiles (oneDNN avx512_core_amx kernels): INT8 can be many times faster than FP32 "
            "(measured on ResNet-50, 2 cores: 129-135 vs 24-29 img/s, ~5x)."
        )
        kernels = "avx512_core_amx"
    elif int8 == "avx512_vnni":
        advice = (
            "AVX512_VNNI (oneDNN avx512_core_vnni kernels): INT8 is typically 2-4x FP32 once batch norms are folded."
        )
        kernels = "avx512_core_vnni"
    elif int8 == "avx_vnni":
        advice = (
            "AVX_VNNI (256-bit VNNI, oneDNN avx2_vnni kernels): INT8 is typically 2-4x FP32 once batch norms "
            "are folded, less than with AVX512_VNNI."
        )
        kernels = "avx2_vnni"
    elif "avx512f" in isa or "avx2" in isa:
        # Measured on an AVX2-only EPYC: ResNet-50 INT8 2.6x FP32 once batch norms are folded; smaller
        # models and graphs INC cannot quantise cleanly gain less or lose.
        advice = "no VNNI/AMX: INT8 runs on AVX2/AVX-512 kernels, gains are smaller and model-dependent; measure first."
        kernels = "avx512_core" if "avx512f" in isa else "avx2"
    else:
        advice = "no VNNI/AMX/AVX2: INT8 may be slower than FP32 here; measure before deploying it."
        kernels = ""
    return Precision("int8", int8 is not None, int8, advice, flags, kernels)


def _bf16(isa: tuple[str, ...]) -> Precision:
    bf16 = _first(isa, "amx_bf16", "avx512_bf16")
    flags = _present(isa, "amx_bf16", "avx512_bf16")
    if bf16 == "amx_bf16":
        advice = (
            "AMX_BF16 tiles (oneDNN avx512_core_amx kernels): BF16 is usually much faster than FP32 "
            "(measured on ResNet-50, 2 cores: 55-85 vs 24-29 img/s); use Quantizer().bf16()."
        )
        kernels = "avx512_core_amx"
    elif bf16:
        advice = (
            "AVX512_BF16 without AMX (oneDNN avx512_core_bf16 kernels): BF16 dot products at AVX-512 width, "
            "no tiles; it depends on the CPU and the path (ResNet-50: tfcpu's BF16 graph 1.88x FP32 on a Zen 5, "
            "TF's runtime AMP 0.6x FP32 on an AVX-512 Xeon); measure first (tfcpu bench --dispatch shows the kernels)."
        )
        kernels = "avx512_core_bf16"
    else:
        advice = "no BF16 instructions: BF16 is emulated and slower than FP32; do not use it."
        kernels = ""
    return Precision("bf16", bf16 is not None, bf16, advice, flags, kernels)


def _fp16(isa: tuple[str, ...]) -> Precision:
    fp16 = _first(isa, "amx_fp16", "avx512_fp16")
    advice = (
        f"{fp16.upper()}: FP16 compute is available to oneDNN (TensorFlow's CPU graphs rarely use it)."
        if fp16
        else "no FP16 compute instructions: keep FP32 or use INT8/BF16."
    )
    kernels = {"amx_fp16": "avx512_core_amx_fp16", "avx512_fp16": "avx512_core_fp16"}.get(fp16 or "", "")
    return Precision("fp16", fp16 is not None, fp16, advice, _present(isa, "amx_fp16", "avx512_fp16"), kernels)


def precisions(isa: tuple[str, ...]) -> tuple[Precision, ...]:
    """Describe fp32, int8, bf16 and fp16 support for a normalised flag set: the best instruction set,
    every relevant flag present, the oneDNN kernel ISA that implies, and one line of advice."""
    return (_fp32(isa), _int8(isa), _bf16(isa), _fp16(isa))
