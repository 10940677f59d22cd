"""The peer benchmark's own helpers (benchmarks/_peer_tools.py, benchmarks/peers.py): the Erfc rewrite
keeps a graph's outputs, the labels read what ran, the agreement check marks what it should."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import _peer_tools as pt
import peers


def _erfc_graph():  # type: ignore[no-untyped-def]
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (None, 5), name="x")
        gelu = 0.5 * x * tf.math.erfc(-x / np.sqrt(2.0))  # Keras 3's exact GELU
        tf.identity(gelu * 2.0, name="y")
    return graph.as_graph_def()


def _run(graph_def, x):  # type: ignore[no-untyped-def]
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return session.run("y:0", {"x:0": x})


@pytest.mark.slow  # imports TensorFlow: > 30 s on a busy 2-vCPU machine
def test_erfc_rewrite_keeps_outputs_and_leaves_no_erfc() -> None:
    graph_def = _erfc_graph()
    rewritten, count = pt.rewrite_erfc(graph_def)
    assert count == 1
    assert [n.op for n in graph_def.node].count("Erfc") == 1  # the input is not mutated
    ops = [n.op for n in rewritten.node]
    assert "Erfc" not in ops and {"Erf", "Neg", "AddV2"} <= set(ops)
    x = np.random.default_rng(0).standard_normal((3, 5)).astype("float32") * 4
    np.testing.assert_allclose(_run(rewritten, x), _run(graph_def, x), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_erfc_rewrite_leaves_a_graph_without_erfc_as_it_is() -> None:
    rewritten, count = pt.rewrite_erfc(_erfc_graph())
    again, count2 = pt.rewrite_erfc(rewritten)
    assert (count, count2) == (1, 0) and again == rewritten


def test_ort_settings_follow_the_isa() -> None:
    avx2 = pt.ort_quant_settings(("sse4_2", "avx", "fma", "avx2"))
    assert (avx2["activation_type"], avx2["weight_type"], avx2["reduce_range"]) == ("QUInt8", "QInt8", True)
    vnni = pt.ort_quant_settings(("avx2", "avx512f", "avx512_vnni"))
    assert (vnni["activation_type"], vnni["reduce_range"]) == ("QInt8", False)
    assert avx2["per_channel"] and vnni["per_channel"] and avx2["quant_format"] == "QDQ"
    assert pt.ort_quant_settings(("avx2", "avx_vnni"))["reduce_range"] is False


def test_ort_label_counts_what_ort_runs() -> None:
    assert pt.ort_label({"QLinearConv": 53, "QuantizeLinear": 1, "Relu": 3}) == ("int8", "53 QLinearConv")
    precision, detail = pt.ort_label({"QLinearConv": 33, "FusedConv": 20, "Gemm": 1})
    assert precision == "int8+fp32" and "fp32 left: 20 FusedConv, 1 Gemm" in detail
    assert pt.ort_label({"MatMul": 6, "FusedMatMul": 2, "Softmax": 1}) == ("fp32", "2 FusedMatMul, 6 MatMul")
    assert pt.qdq_counts({"QuantizeLinear": 4, "DequantizeLinear": 6, "Conv": 0, "Add": 2}) == {
        "DequantizeLinear": 6,
        "QuantizeLinear": 4,
    }


def test_litert_label_tells_full_integer_from_dynamic_range() -> None:
    full = [("QUANTIZE", ["float32"], ["int8"]), ("FULLY_CONNECTED", ["int8", "int8", "int32"], ["int8"]),
            ("DELEGATE", ["int8"], ["int8"]), ("DEQUANTIZE", ["int8"], ["float32"])]  # fmt: skip
    assert pt.litert_label(full) == ("int8", "1 int8 products; 1 XNNPACK partitions")
    dynamic = [("FULLY_CONNECTED", ["float32", "int8"], ["float32"]), ("BATCH_MATMUL", ["float32"] * 2, ["float32"])]
    assert pt.litert_label(dynamic)[0] == "dynamic range+fp32"
    assert pt.litert_label([("CONV_2D", ["float32"] * 3, ["float32"]), ("ADD", ["int8"], ["int8"])])[0] == "fp32"


def test_agreement_marks_what_is_beyond_tolerance() -> None:
    ref = np.random.default_rng(1).standard_normal((8, 10))
    same = pt.agreement(ref, ref + 1e-7, int8=False)
    assert same.ok and same.top1 == 1.0 and same.cosine == pytest.approx(1.0)
    off = pt.agreement(ref, ref + 0.05 * np.abs(ref).max(), int8=False)  # cosine high, max error not
    assert not off.ok and "BEYOND" in off.text()
    noisy = ref + np.random.default_rng(2).standard_normal(ref.shape) * 0.05
    assert pt.agreement(ref, noisy, int8=True).ok and not pt.agreement(ref, noisy, int8=False).ok
    assert not pt.agreement(ref, -ref, int8=True).ok
    assert pt.agreement(ref[:, :1], ref[:, :1], int8=False).top1 is None


def test_paths_selection_by_name_or_prefix() -> None:
    names = list(peers.PATHS)
    assert peers.selected(names, "") == names
    assert peers.selected(names, "ONNX Runtime,LiteRT FP32") == [
        "ONNX Runtime FP32",
        "ONNX Runtime INT8",
        "ONNX Runtime INT8, 2 instances",
        "LiteRT FP32",
    ]
    with pytest.raises(SystemExit, match="names none"):
        peers.selected(names, "TensorRT")
