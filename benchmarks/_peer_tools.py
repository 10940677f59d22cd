"""The ONNX Runtime and LiteRT paths of the peer benchmark (benchmarks/peers.py): conversion,
quantisation with each runtime's documented CPU settings, labels read from what ran, and the check of
a path's outputs against TensorFlow's.

Nothing here imports TensorFlow, ONNX or LiteRT at module level. The label readers and the agreement
check take plain data (op-type names, tensor dtypes, arrays) so they are unit-tested without the peers
installed (tests/unit/test_peer_tools.py).
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# -- tolerances: a path whose outputs disagree beyond these is marked in the table ----------------------
#: FP32 paths: same maths, another kernel order. Cosine over the whole output and max |error| relative to
#: the largest |reference| value.
FP32_MIN_COSINE = 0.9999
FP32_MAX_REL_ABS = 1e-3
#: INT8 paths: cosine over the whole output (top-1 agreement is printed beside it; on random weights the
#: classes are near ties, so top-1 is shown, not judged).
INT8_MIN_COSINE = 0.99

#: ISA flags with 8-bit dot products (ORT's U8S8 kernels do not saturate there).
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8", "avx_vnni_int8"})


# -- the Erfc rewrite (tf2onnx has no ONNX op for TensorFlow's Erfc) --------------------------------------
def rewrite_erfc(graph_def: Any) -> tuple[Any, int]:
    """A copy of ``graph_def`` with every ``Erfc(x)`` replaced by ``1 + Erf(-x)`` (erfc(x) = 1 - erf(x)).

    The sum keeps the Erfc node's name, so its consumers are untouched. Keras 3's exact GELU is
    ``0.5 x erfc(-x / sqrt 2)``; ONNX has ``Erf`` but no ``Erfc``. Returns (new GraphDef, nodes rewritten).
    """
    out = type(graph_def)()
    out.CopyFrom(graph_def)
    del out.node[:]
    count = 0
    for node in graph_def.node:
        if node.op != "Erfc":
            out.node.add().CopyFrom(node)
            continue
        count += 1
        dtype = node.attr["T"]
        base = node.name
        neg = out.node.add(name=f"{base}/erfc_rewrite/neg", op="Neg", input=[node.input[0]], device=node.device)
        neg.attr["T"].CopyFrom(dtype)
        erf = out.node.add(name=f"{base}/erfc_rewrite/erf", op="Erf", input=[neg.name], device=node.device)
        erf.attr["T"].CopyFrom(dtype)
        one = out.node.add(name=f"{base}/erfc_rewrite/one", op="Const", device=node.device)
        one.attr["dtype"].type = dtype.type
        one.attr["value"].tensor.dtype = dtype.type
        one.attr["value"].tensor.tensor_shape.SetInParent()
        if dtype.type == 2:  # DT_DOUBLE
            one.attr["value"].tensor.double_val.append(1.0)
        else:  # DT_FLOAT, DT_HALF, DT_BFLOAT16 all read float_val / half_val; float covers what Keras emits
            one.attr["value"].tensor.float_val.append(1.0)
        add = out.node.add(name=base, op="AddV2", input=[one.name, erf.name], device=node.device)
        add.attr["T"].CopyFrom(dtype)
        for ctrl in (i for i in node.input[1:] if i.startswith("^")):
            add.input.append(ctrl)
    return out, count


# -- ONNX Runtime ------------------------------------------------------------------------------------------
def ort_quant_settings(isa: Iterable[str]) -> dict[str, Any]:
    """The arguments of ``onnxruntime.quantization.quantize_static`` that ORT's quantisation guide advises
    for this CPU ("Quantize ONNX models": QDQ format, per-channel weights; S8S8 is the default and first
    choice, but on x86-64 without VNNI the U8S8 kernels (VPMADDUBSW) can saturate: u8 activations with
    ``reduce_range`` there). Returned as names so the report can print them."""
    vnni = bool(VNNI_FLAGS & set(isa))
    return {
        "quant_format": "QDQ",
        "activation_type": "QInt8" if vnni else "QUInt8",
        "weight_type": "QInt8",
        "per_channel": True,
        "reduce_range": not vnni,
        "why": "VNNI: S8S8, ORT's default" if vnni else "no VNNI: U8S8 with reduce_range (saturation)",
    }


def onnx_from_graph(model: Any, path: Path, opset: int = 17) -> dict[str, Any]:
    """tf2onnx of a tfcpu Model's frozen graph (after :func:`rewrite_erfc`) into ``path``."""
    import tf2onnx

    graph_def, rewritten = rewrite_erfc(model.graph_def)
    tf2onnx.convert.from_graph_def(
        graph_def,
        input_names=list(model.input_names),
        output_names=list(model.output_names),
        opset=opset,
        output_path=str(path),
    )
    return {"erfc_rewritten": rewritten, "opset": opset}


class _Reader:
    """ORT's CalibrationDataReader over the benchmark's calibration batches (dicts keyed by ONNX input)."""

    def __init__(self, batches: Sequence[Mapping[str, Any]]) -> None:
        self._items = iter([dict(b) for b in batches])

    def get_next(self) -> dict[str, Any] | None:
        return next(self._items, None)


def ort_int8(fp32: Path, out: Path, batches: Sequence[Mapping[str, Any]], isa: Iterable[str]) -> dict[str, Any]:
    """``quant_pre_process`` (ORT's advised first step) then ``quantize_static`` with
    :func:`ort_quant_settings`; returns the settings used and the QDQ node counts of the file."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    settings = ort_quant_settings(isa)
    pre = out.with_name(out.stem + "_pre.onnx")
    source, pre_note = fp32, "quant_pre_process failed; quantised as converted"
    for skip_symbolic in (False, True):  # its symbolic shape inference fails on some reshapes: retry without
        try:
            with contextlib.chdir(out.parent):  # its shape inference leaves temporary files in the cwd
                quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=skip_symbolic)
        except Exception:  # noqa: BLE001 - ORT's pre-processing is advice, not a requirement
            continue
        source, pre_note = pre, "quant_pre_process" + (" (symbolic shapes skipped)" if skip_symbolic else "")
        break

    class Reader(_Reader, CalibrationDataReader):  # type: ignore[misc]
        pass

    quantize_static(
        str(source),
        str(out),
        Reader(batches),
        quant_format=QuantFormat.QDQ,
        activation_type=getattr(QuantType, settings["activation_type"]),
        weight_type=getattr(QuantType, settings["weight_type"]),
        per_channel=settings["per_channel"],
        reduce_range=settings["reduce_range"],
    )
    ops = collections.Counter(n.op_type for n in onnx.load(str(out), load_external_data=False).graph.node)
    return {**settings, "pre_process": pre_note, "file_ops": qdq_counts(ops)}


def qdq_counts(ops: Mapping[str, int]) -> dict[str, int]:
    """QuantizeLinear / DequantizeLinear / QLinear* / *Integer counts of an ONNX graph's op types."""
    return {k: int(v) for k, v in sorted(ops.items()) if _is_quant_op(k) and v}


def _is_quant_op(op: str) -> bool:
    return op in ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QAttention") or (
        op.startswith("QLinear") or op.endswith("Integer") or op.startswith("QGemm")
    )


#: ORT ops that do a float matrix product / convolution (after ORT's own fusions).
_ORT_FLOAT_COMPUTE = ("Conv", "FusedConv", "MatMul", "FusedMatMul", "Gemm", "FusedGemm", "Attention", "NhwcFusedConv")
#: ORT ops that do the product in 8 bits (after it folds QDQ pairs into them).
_ORT_INT8_COMPUTE = ("QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger", "QGemm", "QAttention",
                     "DynamicQuantizeMatMul", "MatMulIntegerToFloat")  # fmt: skip


def ort_label(ops: Mapping[str, int]) -> tuple[str, str]:
    """(precision, detail) of the graph ORT runs (op types after its graph optimisations): ``int8`` when
    every product is 8-bit, ``int8+fp32`` when some stay float, ``fp32`` when none is 8-bit."""
    q = {k: v for k, v in ops.items() if k in _ORT_INT8_COMPUTE and v}
    f = {k: v for k, v in ops.items() if k in _ORT_FLOAT_COMPUTE and v}
    nq, nf = sum(q.values()), sum(f.values())
    precision = "fp32" if not nq else ("int8" if not nf else "int8+fp32")
    parts = [f"{v} {k}" for k, v in sorted(q.items())]
    if nf and nq:
        parts.append("fp32 left: " + ", ".join(f"{v} {k}" for k, v in sorted(f.items())))
    elif nf:
        parts = [", ".join(f"{v} {k}" for k, v in sorted(f.items()))]
    return precision, "; ".join(parts)


def ort_session(path: Path | str, threads: int, optimized_to: Path | None = None) -> Any:
    """An ORT CPU session: ``threads`` intra-op threads, sequential execution, every graph optimisation;
    ``optimized_to`` also writes the graph ORT runs (for :func:`ort_label`)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if optimized_to is not None:
        options.optimized_model_filepath = str(optimized_to)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_ran(path: Path, threads: int) -> tuple[Any, tuple[str, str]]:
    """(session, label) of ``path``: the label from the graph ORT optimised for this CPU."""
    import onnx

    optimised = path.with_name(path.stem + "_ort_optimised.onnx")
    session = ort_session(path, threads, optimised)
    ops = collections.Counter(n.op_type for n in onnx.load(str(optimised), load_external_data=False).graph.node)
    return session, ort_label(ops)


def ort_feeds(session: Any, feeds: Mapping[str, Any]) -> dict[str, Any]:
    """``feeds`` keyed by the session's input names (``token_ids:0`` or ``token_ids`` either way)."""
    by_base = {k.split(":")[0]: v for k, v in feeds.items()}
    out = {}
    for i, spec in enumerate(session.get_inputs()):
        base = spec.name.split(":")[0]
        out[spec.name] = by_base[base] if base in by_base else list(feeds.values())[i]
    return out


# -- LiteRT -------------------------------------------------------------------------------------------------
LITERT_MODES = ("fp32", "int8", "dynamic")


def litert_convert(saved_model: Path, mode: str, batches: Sequence[Mapping[str, Any]], out: Path) -> Path:
    """TFLiteConverter on the SavedModel: ``fp32`` (no optimisation), ``dynamic`` (dynamic-range: int8
    weights, float activations; ``Optimize.DEFAULT``) or ``int8`` (full integer: representative dataset,
    TFLITE_BUILTINS_INT8; float input/output kept so every path takes the same feeds)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if mode in ("dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "int8":

        def representative() -> Any:
            for batch in batches:
                for i in range(len(next(iter(batch.values())))):
                    yield {k.split(":")[0]: v[i : i + 1] for k, v in batch.items()}

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    out.write_bytes(converter.convert())
    return out


def litert_interpreter(path: Path | str, threads: int, batch: int) -> Any:
    """The LiteRT interpreter (``ai_edge_litert``, XNNPACK applied by default) with ``threads`` threads and
    every input resized to ``batch``."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    for detail in interpreter.get_input_details():
        shape = list(detail["shape"])
        shape[0] = batch
        interpreter.resize_tensor_input(detail["index"], shape)
    interpreter.allocate_tensors()
    return interpreter


def litert_run(interpreter: Any, feeds: Mapping[str, Any]) -> list[Any]:
    """One invoke with ``feeds`` matched by name (``serving_default_token_ids:0`` ~ ``token_ids``)."""
    details = interpreter.get_input_details()
    by_base = {k.split(":")[0]: v for k, v in feeds.items()}
    for i, d in enumerate(details):
        name = d["name"].split(":")[0].removeprefix("serving_default_")
        value = by_base[name] if name in by_base else list(feeds.values())[i]
        interpreter.set_tensor(d["index"], value.astype(d["dtype"], copy=False))
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


#: LiteRT ops that do the products (the rest move data or are element-wise).
_LITERT_COMPUTE = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE_CONV")


def litert_label(ops: Iterable[tuple[str, Sequence[str], Sequence[str]]]) -> tuple[str, str]:
    """(precision, detail) from the interpreter's ops, each ``(op name, input dtypes, output dtypes)``:
    a product op is int8 when its output is 8-bit, dynamic range when its output is float but an input
    (the weights) is 8-bit, fp32 otherwise. The detail also counts the XNNPACK partitions (``DELEGATE``)."""
    eight = {"int8", "uint8"}
    kinds: collections.Counter[str] = collections.Counter()
    partitions = 0
    for name, inputs, outputs in ops:
        if name == "DELEGATE":
            partitions += 1
        if name not in _LITERT_COMPUTE:
            continue
        if any(d in eight for d in outputs):
            kinds["int8"] += 1
        elif any(d in eight for d in inputs):
            kinds["dynamic range"] += 1
        else:
            kinds["fp32"] += 1
    present = [k for k in ("int8", "dynamic range", "fp32") if kinds[k]]
    precision = "+".join(present) if present else "fp32"
    detail = ", ".join(f"{kinds[k]} {k}" for k in present) + f" products; {partitions} XNNPACK partitions"
    return precision, detail


def litert_ran(interpreter: Any) -> tuple[str, str]:
    """:func:`litert_label` of a live interpreter (after ``allocate_tensors``: XNNPACK applied)."""
    import numpy as np

    dtypes = {d["index"]: np.dtype(d["dtype"]).name for d in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()

    def names(indices: Sequence[int]) -> list[str]:
        return [dtypes.get(int(i), "?") for i in indices if i >= 0]

    return litert_label([(op["op_name"], names(op["inputs"]), names(op["outputs"])) for op in ops])


# -- agreement with TensorFlow ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Agreement:
    """How one path's outputs compare with TensorFlow's on the same inputs (first output)."""

    cosine: float
    max_abs: float
    ref_max: float
    top1: float | None  # share of rows with the same arg-max (None for a 1-column output)
    int8: bool

    @property
    def ok(self) -> bool:
        if self.int8:
            return self.cosine >= INT8_MIN_COSINE
        return self.cosine >= FP32_MIN_COSINE and self.max_abs <= FP32_MAX_REL_ABS * max(self.ref_max, 1e-12)

    def text(self) -> str:
        top1 = "" if self.top1 is None else f" top-1 {self.top1:.0%}"
        mark = "" if self.ok else " ✗ BEYOND TOLERANCE"
        return f"cos {self.cosine:.5f} max|Δ| {self.max_abs:.2g}{top1}{mark}"

    def to_dict(self) -> dict[str, Any]:
        return {"cosine": self.cosine, "max_abs": self.max_abs, "ref_max": self.ref_max, "top1": self.top1,
                "int8": self.int8, "ok": self.ok}  # fmt: skip


def agreement(reference: Any, output: Any, *, int8: bool) -> Agreement:
    """Compare ``output`` with ``reference`` (same shape): cosine, max abs error, top-1 agreement."""
    import numpy as np

    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(output, dtype=np.float64).reshape(ref.shape)
    a, b = ref.ravel(), out.ravel()
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    cosine = float(a @ b / denom) if denom > 0 else (1.0 if not a.any() and not b.any() else 0.0)
    top1 = None
    if ref.ndim >= 2 and ref.shape[-1] > 1:
        top1 = float(np.mean(ref.reshape(-1, ref.shape[-1]).argmax(-1) == out.reshape(-1, ref.shape[-1]).argmax(-1)))
    return Agreement(cosine, float(np.max(np.abs(a - b))), float(np.max(np.abs(a))), top1, int8)


def tolerance_text() -> str:
    return (
        f"marked ✗ beyond: FP32 cosine < {FP32_MIN_COSINE} or max|Δ| > {FP32_MAX_REL_ABS:g} × max|TF|; "
        f"INT8 cosine < {INT8_MIN_COSINE}"
    )
