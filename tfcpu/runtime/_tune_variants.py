"""What ``tune`` measures besides layouts: one model per backend x precision, and the accuracy rule.

* ``fp32`` is the model as given (on every backend; its label is still read from what ran);
* ``int8`` is `tfcpu.Quantizer` ``.int8()`` from the calibration data (TensorFlow: Intel Neural
  Compressor; OpenVINO: NNCF), ``"synthetic"`` by default with the quantiser's warning;
* ``bf16`` is ``Quantizer().bf16()`` (TensorFlow: the BF16 graph; OpenVINO: BF16 inference
  precision), only where the CPU has AVX512_BF16 or AMX_BF16.

A variant that cannot be made is left out with its reason in the notes. Every quantised variant
carries the quantiser's agreement with TensorFlow FP32 (top-1 agreement and cosine); the rule that
decides whether a row may be named best is `AccuracyRule`: top-1 agreement on real calibration
data (cosine where the output has no classes), cosine on synthetic data (top-1 on random inputs
says little).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tfcpu.errors import ConfigError, TfcpuError, did_you_mean
from tfcpu.graph.model import Model

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.topology import Topology

__all__ = ["PRECISIONS", "AccuracyRule", "Variant", "check_names", "prepare_variants"]

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "int8")


@dataclass(frozen=True)
class AccuracyRule:
    """When a quantised row may be named best.

    Attributes:
        min_top1: the smallest top-1 agreement with TensorFlow FP32 accepted (real calibration data).
        min_cosine: the smallest output cosine similarity accepted (synthetic data, or no classes).
        synthetic: the calibration data is synthetic (the cosine rule applies).
    """

    min_top1: float = 0.99
    min_cosine: float = 0.99
    synthetic: bool = True

    def __post_init__(self) -> None:
        for name, value in (("min_top1", self.min_top1), ("min_cosine", self.min_cosine)):
            if not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value!r}", where="tune")

    def text(self) -> str:
        if self.synthetic:
            return (
                f"cosine with TensorFlow FP32 >= {self.min_cosine:g} (synthetic calibration data: "
                "top-1 agreement on random inputs says little)"
            )
        return (
            f"top-1 agreement with TensorFlow FP32 >= {self.min_top1:g} on the calibration data "
            f"(cosine >= {self.min_cosine:g} where the output has no classes)"
        )

    def passes(self, top1: float | None, cosine: float | None) -> bool | None:
        """True/False by the rule; None when there is nothing to judge (no numbers)."""
        if not self.synthetic and top1 is not None:
            return top1 >= self.min_top1
        if cosine is not None:
            return cosine >= self.min_cosine
        return None


@dataclass(frozen=True)
class Variant:
    """One model to sweep: on which backend, in which precision (asked), with its agreement numbers.

    Attributes:
        backend: the runner backend.
        precision: the precision asked for (``fp32`` = the model as given).
        model: the model the children run.
        top1: the quantiser's top-1 agreement with TensorFlow FP32 (None: not measured).
        cosine: the quantiser's output cosine with TensorFlow FP32 (None: not measured).
    """

    backend: str
    precision: str
    model: Model
    top1: float | None = None
    cosine: float | None = None

    @property
    def as_given(self) -> bool:
        return self.precision == "fp32"


def check_names(values: Sequence[str], allowed: Sequence[str], what: str) -> tuple[str, ...]:
    """``values`` without duplicates, each one of ``allowed`` (ConfigError with a did-you-mean)."""
    out: list[str] = []
    for value in values:
        if value not in allowed:
            hint = did_you_mean(value, allowed) or f"use one of {', '.join(allowed)}"
            raise ConfigError(f"unknown {what} {value!r}", where="tune", hint=hint)
        if value not in out:
            out.append(value)
    if not out:
        raise ConfigError(f"no {what} to try", where="tune")
    return tuple(out)


def prepare_variants(
    model: Model,
    backends: Sequence[str],
    precisions: Sequence[str],
    *,
    calibration: Any,
    calibration_batches: int,
    topology: Topology,
    notes: list[str],
) -> list[Variant]:
    """One `Variant` per backend x precision that can be made here; the others in ``notes`` with the reason."""
    out = []
    for backend in backends:
        for precision in precisions:
            if backend == "tensorflow" and model.preferred_backend != "tensorflow":
                notes.append(f"{backend} {precision} skipped: an OpenVINO IR has no TensorFlow graph")
                continue
            try:
                out.append(_variant(model, backend, precision, calibration, calibration_batches, topology, notes))
            except TfcpuError as exc:
                why = exc.what if not exc.why else f"{exc.what}: {exc.why}"
                notes.append(f"{backend} {precision} skipped: {why}")
                log.warning("tune: %s %s skipped: %s", backend, precision, why)
    return out


def _variant(
    model: Model,
    backend: str,
    precision: str,
    calibration: Any,
    batches: int,
    topology: Topology,
    notes: list[str],
) -> Variant:
    from tfcpu.quantize import Quantizer

    if precision == "fp32":
        return Variant(backend, precision, model)
    plan = Quantizer(topology=topology)
    # bf16() refuses a CPU without AVX512_BF16/AMX_BF16 here (ConfigError): the variant is skipped
    plan = plan.bf16() if precision == "bf16" else plan.int8().calibrate(calibration, batches=batches)
    result = plan.backend(backend).run(model)
    for warning in result.warnings:
        if warning not in notes:
            notes.append(warning)
    if not result.quantized:
        raise ConfigError(f"the quantiser made no {precision.upper()} model", why="; ".join(result.warnings) or None)
    return Variant(backend, precision, result.model, result.top1_agreement, result.cosine)
