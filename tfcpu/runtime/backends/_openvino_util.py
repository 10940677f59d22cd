"""Pieces of the OpenVINO backend that need no compiled model state: import, conversion, the compile
properties, what the compiled model really runs, and the agreement numbers of the first-use check.

Kept apart from `tfcpu.runtime.backends.openvino` so the NNCF quantiser (`tfcpu.quantize._nncf`)
and the IR loader (`tfcpu.graph.openvino_ir`) share them without importing the backend class.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from tfcpu._lazy import import_optional
from tfcpu.errors import ConfigError, RunnerError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.graph.model import Model

__all__ = [
    "COMPUTE_LAYERS",
    "Agreement",
    "CompileSettings",
    "agreement",
    "compiled_precisions",
    "convert_graph",
    "import_openvino",
    "output_ports",
    "precision_label",
]

log = logging.getLogger(__name__)

# Layer types of the CPU plugin's runtime model that carry the arithmetic: their runtime precision
# (u8/i8, bf16, f32) is what the model really ran in.
COMPUTE_LAYERS = ("Convolution", "GroupConvolution", "Deconvolution", "FullyConnected", "MatMul", "Eltwise")
_INT8 = ("u8", "i8")
HINTS = ("throughput", "latency")
PRECISIONS = ("f32", "bf16", "auto")


def import_openvino() -> ModuleType:
    """``import openvino`` or MissingDependencyError naming ``tfcpu[openvino]``."""
    return import_optional(
        "openvino", package="openvino", extra="openvino", purpose="the OpenVINO backend runs models with OpenVINO"
    )


@dataclass(frozen=True)
class CompileSettings:
    """The OpenVINO CPU properties tfcpu compiles with (derived from SessionConfig and backend options).

    Attributes:
        hint: ``"throughput"`` (several streams, an async queue) or ``"latency"`` (one stream).
        streams: ``NUM_STREAMS``; None lets the hint choose.
        threads: ``INFERENCE_NUM_THREADS``; None or 0 lets OpenVINO use the process's CPUs.
        pinning: ``ENABLE_CPU_PINNING``; None keeps OpenVINO's default.
        precision: ``"f32"`` (tfcpu's default), ``"bf16"``, or ``"auto"`` (OpenVINO's own choice, which is
            BF16 on CPUs with AMX or AVX512_BF16).
    """

    hint: str = "throughput"
    streams: int | None = None
    threads: int | None = None
    pinning: bool | None = None
    precision: str = "f32"

    def __post_init__(self) -> None:
        for name, value, allowed in (("hint", self.hint, HINTS), ("precision", self.precision, PRECISIONS)):
            if value not in allowed:
                raise ConfigError(
                    f"unknown OpenVINO {name} {value!r}",
                    where=f"backend option {name}",
                    hint=did_you_mean(str(value), allowed) or f"use one of {', '.join(allowed)}",
                )
        for name, number in (("streams", self.streams), ("threads", self.threads)):
            if number is not None and (isinstance(number, bool) or not isinstance(number, int) or number < 0):
                raise ConfigError(f"{name} must be an integer >= 0, got {number!r}", where=f"backend option {name}")

    def properties(self) -> dict[str, Any]:
        """The ``compile_model`` config dict."""
        props: dict[str, Any] = {"PERFORMANCE_HINT": self.hint.upper()}
        if self.streams:
            props["NUM_STREAMS"] = str(self.streams)
        if self.threads:
            props["INFERENCE_NUM_THREADS"] = str(self.threads)
        if self.pinning is not None:
            props["ENABLE_CPU_PINNING"] = "YES" if self.pinning else "NO"
        if self.precision != "auto":
            props["INFERENCE_PRECISION_HINT"] = self.precision
        return props

    def to_dict(self) -> dict[str, Any]:
        return {
            "hint": self.hint,
            "streams": self.streams,
            "threads": self.threads,
            "pinning": self.pinning,
            "precision": self.precision,
        }


def convert_graph(model: Model) -> Any:
    """``openvino.convert_model`` on the Model's frozen GraphDef, in memory (no file is written).

    Inputs get the Model's (partial) shapes; the outputs are the Model's outputs, looked up by name later.

    Raises:
        RunnerError: OpenVINO cannot convert the graph (names the op when OpenVINO does).
    """
    from tfcpu.graph.passes.strip_attrs import for_installed_tensorflow

    ov = import_openvino()
    shapes = []
    for spec in model.inputs:
        dims = [-1] if spec.shape is None else [-1 if d is None else int(d) for d in spec.shape]
        shapes.append((spec.name, ov.PartialShape(dims) if spec.shape is not None else ov.PartialShape.dynamic()))
    graph_def, fetches = _with_fetch_nodes(for_installed_tensorflow(model.graph_def), model)
    try:
        converted = ov.convert_model(graph_def, input=shapes, output=fetches)
    except Exception as exc:  # OpenVINO's frontends raise several types
        raise conversion_error(model, exc) from exc
    for fetch, spec in zip(fetches, model.outputs, strict=True):
        port = next(p for p in converted.outputs if fetch in p.get_names())
        port.get_tensor().set_names({spec.name})  # the Model's name, and only it (OpenVINO keeps aliases)
    return converted


#: Lines of OpenVINO's message that say where in OpenVINO's C++ the check sits, not why it failed.
_NOISE = ("Check 'false' failed at", "FrontEnd API failed with", "To facilitate the conversion")


def conversion_reason(exc: BaseException) -> str:
    """OpenVINO's whole reason for refusing a graph: every line of its message (the failed ops'
    detailed log and the summary naming them) but the C++ source locations of its own checks."""
    lines = [line.rstrip() for line in str(exc).strip().splitlines() if line.strip()]
    kept = [line for line in lines if not line.lstrip().startswith(_NOISE)]
    return "\n".join(kept or lines) or type(exc).__name__


def unconverted_ops(reason: str) -> list[str]:
    """The op types OpenVINO's summary names ("Conversion is failed for: FFT2D", "No conversion rule
    found for operations: X, Y", "No translator found for ... : X"), in order, without repeats."""
    ops: list[str] = []
    for line in reason.splitlines():
        text = line.strip().lstrip("-").strip()
        for marker in ("Conversion is failed for:", "No conversion rule found for operations:"):
            if text.startswith(marker):
                for op in text[len(marker) :].split(","):
                    if op.strip() and op.strip() not in ops:
                        ops.append(op.strip())
    return ops


def conversion_error(model: Model, exc: BaseException) -> RunnerError:
    """The RunnerError for a graph OpenVINO cannot convert: the ops named in ``what``, the graph's nodes
    of those types in ``where``, and OpenVINO's whole reason in ``why``."""
    reason = conversion_reason(exc)
    ops = unconverted_ops(reason)
    nodes = [n.name for n in model.graph_def.node if n.op in ops] if model.graph_def is not None else []
    where = model.source + (
        f": node {nodes[0]}" + (f" and {len(nodes) - 1} more" if len(nodes) > 1 else "") if nodes else ""
    )
    what = "OpenVINO cannot convert the graph" + (f": it cannot convert {', '.join(ops)}" if ops else "")
    return RunnerError(
        what,
        where=where,
        why=f"{type(exc).__name__}: {reason}",
        hint="run it with the TensorFlow backend (backend='tensorflow'); `tfcpu tune` falls back to it by itself",
    )


def openvino_refusal(model: Model) -> RunnerError | None:
    """Whether OpenVINO can convert ``model``, found by converting it (seconds, before any other work):
    None when it can (or the model is already an OpenVINO model), else the error to raise or report."""
    if getattr(model, "ov_model", None) is not None or model.graph_def is None:
        return None
    try:
        convert_graph(model)
    except RunnerError as exc:
        if isinstance(exc.__cause__, Exception) and exc.what.startswith("OpenVINO cannot convert"):
            return exc
        raise
    return None


def _with_fetch_nodes(graph_def: Any, model: Model) -> tuple[Any, list[str]]:
    """A copy of ``graph_def`` with one Identity sink per model output (OpenVINO's converter only offers
    the graph's sinks as outputs, and a model output may feed other nodes), and those sinks' names."""
    from tfcpu._lazy import import_tensorflow

    tf = import_tensorflow()
    copy = tf.compat.v1.GraphDef()
    copy.CopyFrom(graph_def)
    fetches = []
    for i, spec in enumerate(model.outputs):
        node = copy.node.add()
        node.name, node.op = f"tfcpu_fetch_{i}", "Identity"
        node.input.append(spec.name)
        node.attr["T"].type = tf.as_dtype(spec.dtype).as_datatype_enum
        fetches.append(f"{node.name}:0")
    return copy, fetches


def output_ports(compiled: Any, names: Sequence[str]) -> list[Any]:
    """The compiled model's output ports in ``names`` order (OpenVINO orders its outputs its own way)."""
    ports = []
    for name in names:
        try:
            ports.append(compiled.output(name))
        except RuntimeError as exc:
            known = sorted({n for port in compiled.outputs for n in port.get_names()})
            raise RunnerError(
                f"the OpenVINO model has no output {name!r}", why=did_you_mean(name, known) or f"outputs: {known}"
            ) from exc
    return ports


def compiled_precisions(compiled: Any) -> dict[str, int]:
    """``{"Convolution:u8": 53, "FullyConnected:f32": 1, ...}``: compute layers of the runtime model by the
    precision they run in (what ran, not what was asked)."""
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        layer = str(info["layerType"].astype(str)) if "layerType" in info else op.get_type_name()
        if layer not in COMPUTE_LAYERS or layer == "Eltwise":
            continue
        precision = str(info["runtimePrecision"].astype(str)) if "runtimePrecision" in info else "?"
        key = f"{layer}:{precision}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def precision_label(precisions: Mapping[str, int]) -> str:
    """``"int8"`` when any compute layer runs u8/i8, else ``"bf16"`` when any runs bf16, else ``"fp32"``."""
    kinds = {key.rsplit(":", 1)[1] for key in precisions}
    if kinds.intersection(_INT8):
        return "int8"
    if "bf16" in kinds:
        return "bf16"
    return "fp32"


def fake_quantize_count(ov_model: Any) -> int:
    """FakeQuantize nodes in an (uncompiled) OpenVINO model: what NNCF inserted."""
    return sum(1 for op in ov_model.get_ops() if op.get_type_name() == "FakeQuantize")


@dataclass(frozen=True)
class Agreement:
    """How a candidate's outputs agree with the reference's (the TF FP32 graph) on the same inputs.

    Attributes:
        max_abs: largest absolute difference over every output element.
        max_rel: largest ``max|ref - cand| / max|ref|`` over the outputs (error relative to each
            output's range, so values near zero do not blow it up).
        cosine: smallest cosine similarity of an output (flattened) with its reference.
        top1: share of rows whose arg-max agrees (rank-2 outputs with more than one class), or None.
        samples: rows compared.
    """

    max_abs: float
    max_rel: float
    cosine: float
    top1: float | None
    samples: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_abs": self.max_abs,
            "max_rel": self.max_rel,
            "cosine": self.cosine,
            "top1": self.top1,
            "samples": self.samples,
        }

    def text(self) -> str:
        top1 = "n/a" if self.top1 is None else f"{self.top1:.2%}"
        return f"max abs err {self.max_abs:.3g}, max rel err {self.max_rel:.3g}, cosine {self.cosine:.6f}, top-1 {top1}"


def agreement(reference: Sequence[Sequence[np.ndarray]], candidate: Sequence[Sequence[np.ndarray]]) -> Agreement:
    """Compare batches of outputs (each batch: outputs in model order) through the one comparator
    (`tfcpu.graph.compare.compare_outputs`), summarised as an `Agreement`."""
    from tfcpu.graph.compare import compare_outputs

    def stacked(batches: Sequence[Sequence[np.ndarray]]) -> dict[str, np.ndarray]:
        width = len(batches[0]) if batches else 0
        return {str(k): np.concatenate([np.atleast_1d(np.asarray(b[k])) for b in batches]) for k in range(width)}

    want, got = stacked(reference), stacked(candidate)
    for key in want:
        if want[key].shape != got[key].shape:
            raise RunnerError(
                "an output's shape differs from the reference", why=f"{got[key].shape} vs {want[key].shape}"
            )
    cmp = compare_outputs(want, got, label="tensorflow fp32 vs openvino")
    first = reference[0][0] if reference and reference[0] else None
    rows = sum(int(np.shape(b[0])[0]) if np.ndim(b[0]) else 1 for b in reference) if first is not None else 0
    cosine = cmp.cosine
    return Agreement(cmp.max_abs, cmp.max_rel, 1.0 if cosine is None else cosine, cmp.top1, rows)
