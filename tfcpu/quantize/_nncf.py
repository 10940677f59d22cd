"""INT8 (and BF16) for the OpenVINO backend: NNCF post-training quantisation of a tfcpu Model.

``Quantizer().int8().calibrate(data).backend("openvino").run(model)`` ends here:

1. the Model's frozen GraphDef is converted in memory (``openvino.convert_model``); an FP32 OpenVINO IR
   is taken as it is;
2. tfcpu's checked calibration batches (numpy, iterators, tf.data, callables, ``"synthetic"`` — see
   `tfcpu.quantize.calibration`) feed ``nncf.quantize`` through an ``nncf.Dataset`` keyed by input
   tensor name; with ``.evaluate(fn).tolerance(relative_loss=...)`` it is
   ``nncf.quantize_with_accuracy_control`` instead (relative drop), where ``fn`` receives each candidate
   as an `OpenVinoModel` (run it with the OpenVINO backend);
3. the quantised model is compiled once (f32 inference hint, tfcpu's default) to read back what runs in
   INT8: the runtime model's compute layers by precision (``Convolution:u8``), plus the FakeQuantize
   nodes NNCF inserted;
4. its outputs are compared with the TensorFlow FP32 graph's on the calibration batches (cosine, top-1,
   max abs/rel error) — an IR input has no TF graph, so that comparison is absent.

``.bf16().backend("openvino")`` changes no weight: BF16 on OpenVINO is a compile-time inference
precision. The result is the FP32 OpenVINO model marked ``openvino_precision=bf16`` (saved in the IR, so
the backend compiles it with the bf16 hint), with the layers that run in BF16 read back the same way.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from tfcpu.errors import QuantizationError
from tfcpu.graph.model import REMAINDER, Model
from tfcpu.runtime.backends._openvino_util import (
    Agreement,
    CompileSettings,
    agreement,
    compiled_precisions,
    convert_graph,
    fake_quantize_count,
    import_openvino,
    output_ports,
    precision_label,
)

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.graph.openvino_ir import OpenVinoModel
    from tfcpu.quantize.calibration import Calibration
    from tfcpu.quantize.result import QuantizationResult

__all__ = ["NncfReport", "bf16_openvino", "quantize_openvino", "quantizer_result"]

log = logging.getLogger(__name__)

Batch = dict[str, np.ndarray]
PRESETS = ("performance", "mixed")


@dataclass(frozen=True)
class NncfReport:
    """What NNCF produced and how it agrees with TensorFlow FP32.

    Attributes:
        precision: what the compiled model runs (``int8``/``bf16``/``fp32``, read from its layers).
        layers: compute layers of the compiled runtime model by precision (``{"Convolution:u8": 2}``).
        fake_quantize: FakeQuantize nodes in the OpenVINO model (what NNCF inserted).
        agreement: outputs vs the TF FP32 graph on the calibration batches (None for an IR input).
        fp32_metric / int8_metric: the user's evaluation through NNCF's accuracy control, when given.
        preset / nncf_version / seconds: how it was made.
    """

    precision: str
    layers: dict[str, int] = field(default_factory=dict)
    fake_quantize: int = 0
    agreement: Agreement | None = None
    fp32_metric: float | None = None
    int8_metric: float | None = None
    preset: str = "performance"
    nncf_version: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "layers": dict(self.layers),
            "fake_quantize": self.fake_quantize,
            "agreement": None if self.agreement is None else self.agreement.to_dict(),
            "fp32_metric": self.fp32_metric,
            "int8_metric": self.int8_metric,
            "preset": self.preset,
            "nncf_version": self.nncf_version,
            "seconds": self.seconds,
        }


def _fp32_ov_model(model: Model) -> Any:
    carried = getattr(model, "ov_model", None)
    return carried if carried is not None else convert_graph(model)


def _import_nncf() -> Any:
    from tfcpu._lazy import import_optional

    return import_optional("nncf", package="nncf", extra="openvino", purpose="INT8 on OpenVINO uses NNCF")


def _compiled(ov_model: Any, precision: str) -> Any:
    ov = import_openvino()
    return ov.Core().compile_model(ov_model, "CPU", CompileSettings(hint="latency", precision=precision).properties())


def _run(compiled: Any, model: Model, batch: Batch) -> list[np.ndarray]:
    ports = output_ports(compiled, model.output_names)
    results = compiled.create_infer_request().infer({n: batch[n] for n in model.input_names})
    return [np.asarray(results[p]) for p in ports]


def _agreement_with_tf(model: Model, compiled: Any, batches: Sequence[Batch]) -> Agreement | None:
    if getattr(model, "ov_model", None) is not None or not len(model.graph_def.node) or not batches:
        return None
    from tfcpu.graph._execute import run_graph

    reference = [run_graph(model.graph_def, b, model.output_names) for b in batches]
    candidate = [_run(compiled, model, b) for b in batches]
    return agreement(reference, candidate)


def _wrap(model: Model, ov_model: Any, precision: str, report: dict[str, Any] | None = None) -> OpenVinoModel:
    from tfcpu.graph.openvino_ir import from_ov_model

    metadata: dict[str, Any] = {"openvino_precision": precision} if precision == "bf16" else {"precision": precision}
    if report is not None:
        metadata["openvino_report"] = report
    return from_ov_model(
        ov_model,
        inputs=model.inputs,
        outputs=model.outputs,
        source=f"{model.source} [openvino {precision}]",
        metadata=metadata,
    )


def quantize_openvino(
    model: Model,
    calibration_batches: Sequence[Batch],
    *,
    evaluate: Callable[[Model], float] | None = None,
    tolerance: float | None = None,
    preset: str = "performance",
) -> tuple[Any, NncfReport]:
    """NNCF static INT8 of ``model``; returns ``(openvino.Model, NncfReport)``.

    Args:
        model: a tfcpu Model (TF graph, converted in memory) or an FP32 OpenVinoModel.
        calibration_batches: checked batches by input name (`tfcpu.quantize.calibration.materialise()`).
        evaluate: ``fn(Model) -> float`` (higher is better); with ``tolerance`` turns on NNCF's accuracy
            control. ``fn`` receives an OpenVinoModel holding the compiled candidate.
        tolerance: the largest relative drop of ``evaluate`` accepted (0.01 = 1 %).
        preset: ``"performance"`` (symmetric) or ``"mixed"`` (asymmetric activations).

    Raises:
        QuantizationError: NNCF failed, or no batch was given.
        MissingDependencyError: openvino/nncf missing (``tfcpu[openvino]``).
    """
    if not calibration_batches:
        raise QuantizationError("no calibration batch", hint='call .calibrate(data) (or "synthetic" for speed tests)')
    if preset not in PRESETS:
        from tfcpu.errors import ConfigError, did_you_mean

        raise ConfigError(f"unknown NNCF preset {preset!r}", hint=did_you_mean(preset, PRESETS) or str(PRESETS))
    nncf = _import_nncf()
    start = time.perf_counter()
    fp32 = _fp32_ov_model(model)
    names = model.input_names
    dataset = nncf.Dataset(list(calibration_batches), lambda b: {n: b[n] for n in names})
    # NNCF counts dataset items (here: batches), not rows
    common = {"preset": nncf.QuantizationPreset(preset), "subset_size": len(calibration_batches)}
    metrics: dict[str, float] = {}
    try:
        with _quiet_nncf():
            quantized = _nncf_call(nncf, fp32, dataset, common, (model, evaluate, tolerance, metrics))
    except Exception as exc:  # NNCF raises many types
        text = str(exc).strip().splitlines()
        raise QuantizationError(
            "NNCF failed to quantise the OpenVINO model",
            where=model.source,
            why=f"{type(exc).__name__}: {text[0] if text else ''}",
            hint="try the TensorFlow backend's INT8 (Quantizer().int8() without .backend('openvino'))",
        ) from exc
    compiled = _compiled(quantized, "f32")
    layers = compiled_precisions(compiled)
    report = NncfReport(
        precision=precision_label(layers),
        layers=layers,
        fake_quantize=fake_quantize_count(quantized),
        agreement=_agreement_with_tf(model, compiled, calibration_batches),
        fp32_metric=metrics.get("first"),
        int8_metric=metrics.get("last"),
        preset=preset,
        nncf_version=str(getattr(nncf, "__version__", "")) or None,
        seconds=round(time.perf_counter() - start, 3),
    )
    log.info("NNCF: %d FakeQuantize, layers %s", report.fake_quantize, layers)
    return quantized, report


def _nncf_call(nncf: Any, fp32: Any, dataset: Any, common: dict[str, Any], control: tuple[Any, ...]) -> Any:
    model, evaluate, tolerance, metrics = control
    if evaluate is not None and tolerance is not None:
        return nncf.quantize_with_accuracy_control(
            fp32,
            dataset,
            dataset,
            _validation(model, evaluate, metrics),
            max_drop=float(tolerance),
            drop_type=nncf.DropType.RELATIVE,
            **common,
        )
    return nncf.quantize(fp32, dataset, **common)


@contextlib.contextmanager
def _quiet_nncf() -> Iterator[None]:
    """NNCF draws progress bars and logs on stdout (which would corrupt ``--json``): send them to the debug log."""
    nncf_log = logging.getLogger("nncf")
    level = nncf_log.level
    nncf_log.setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.ERROR)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            yield
    finally:
        nncf_log.setLevel(level)
        if captured.getvalue().strip():
            log.debug("NNCF: %s", captured.getvalue().strip())


def _validation(
    model: Model, evaluate: Callable[[Model], float], metrics: dict[str, float]
) -> Callable[[Any, Any], tuple[float, None]]:
    """NNCF's ``validation_fn(compiled_model, data)`` around tfcpu's ``fn(Model)``."""

    def validate(compiled: Any, data: Any) -> tuple[float, None]:
        value = float(evaluate(_wrap(model, compiled, "int8")))
        metrics.setdefault("first", value)  # NNCF evaluates the FP32 model first
        metrics["last"] = value
        return value, None

    return validate


def bf16_openvino(model: Model, batches: Sequence[Batch]) -> tuple[Any, NncfReport]:
    """The FP32 OpenVINO model to be compiled with the bf16 inference precision, and what runs in BF16."""
    start = time.perf_counter()
    fp32 = _fp32_ov_model(model)
    compiled = _compiled(fp32, "bf16")
    layers = compiled_precisions(compiled)
    report = NncfReport(
        precision=precision_label(layers),
        layers=layers,
        agreement=_agreement_with_tf(model, compiled, batches),
        preset="",
        seconds=round(time.perf_counter() - start, 3),
    )
    return fp32, report


def quantizer_result(
    model: Model,
    batches: Sequence[Batch],
    *,
    precision: str,
    calibration: Calibration | None,
    evaluate: Callable[[Model], float] | None,
    tolerance: float | None,
    warnings: Sequence[str],
    fast_int8: bool,
    remainder: str = "fp32",
) -> QuantizationResult:
    """The ``Quantizer.run`` result for ``.backend("openvino")`` (INT8 via NNCF, or BF16); with
    ``remainder="bf16"`` the INT8 model is compiled with bf16 inference precision for what NNCF left in float."""
    from tfcpu.quantize.result import OpTypeRow, QuantizationResult

    start = time.perf_counter()
    if precision == "bf16":
        if not batches:
            from tfcpu.runtime.feeds import synthetic_batch

            batches = [synthetic_batch(model, 2, seed=0)]
        ov_model, report = bf16_openvino(model, batches)
    else:
        ov_model, report = quantize_openvino(model, batches, evaluate=evaluate, tolerance=tolerance)
    ran = report.precision
    # cosine, FakeQuantize count, layers, NNCF version travel with the model
    new = _wrap(model, ov_model, "bf16" if precision == "bf16" else ran, report=report.to_dict())
    if precision == "int8" and remainder == "bf16":
        new = replace(new, metadata={**new.metadata, "openvino_precision": "bf16", REMAINDER: "bf16"})
    per_layer: dict[str, list[int]] = {}
    for key, count in report.layers.items():
        layer, kind = key.rsplit(":", 1)
        row = per_layer.setdefault(layer, [0, 0])
        row[0] += count
        row[1] += count if kind in ("u8", "i8", "bf16") else 0
    notes = list(warnings)
    if precision == "int8" and ran != "int8":
        notes.append(f"NNCF's model runs no layer in INT8 here (the compiled model runs {ran})")
    agree = report.agreement
    return QuantizationResult(
        model=new,
        quantized=ran == precision,
        precision=ran,
        op_types=tuple(OpTypeRow(op, t, q, t - q) for op, (t, q) in sorted(per_layer.items())),
        quantized_ops={k: v for k, v in report.layers.items() if not k.endswith(":f32")}
        | ({"FakeQuantize": report.fake_quantize} if report.fake_quantize else {}),
        fp32_metric=report.fp32_metric,
        int8_metric=report.int8_metric,
        tolerance=tolerance if evaluate is not None else None,
        top1_agreement=None if agree is None else agree.top1,
        max_abs_diff=None if agree is None else agree.max_abs,
        cosine=None if agree is None else agree.cosine,
        calibration=calibration,
        optimized=model.optimized_with is not None,
        fast_int8_hardware=fast_int8,
        onednn_enabled=None,
        inc_version=None,
        warnings=tuple(notes),
        seconds=round(time.perf_counter() - start, 3),
    )
