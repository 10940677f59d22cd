"""FLOP counting of MatMul/Einsum/Conv ops and the quantised share (tfcpu.graph.flops)."""

from __future__ import annotations

import json

import numpy as np
from test_graph_builders import graph_def_of, tf, v1

from tfcpu.graph.flops import FlopRow, FlopShare, matmul_flops


def _graph():
    rng = np.random.default_rng(0)

    def build() -> None:
        x = v1.placeholder(tf.float32, [None, None, 8], name="x")
        q = tf.raw_ops.Einsum(inputs=[x, tf.constant(rng.standard_normal((8, 2, 4)), tf.float32)],
                              equation="abc,cde->abde", name="proj")  # fmt: skip
        s = tf.raw_ops.Einsum(inputs=[q, q], equation="BTNH,BSNH->BNTS", name="scores")
        flat = tf.reshape(x, [-1, 8])
        m = tf.matmul(flat, tf.constant(rng.standard_normal((8, 16)), tf.float32), name="dense")
        b = tf.raw_ops.BatchMatMulV2(x=s, y=s, adj_x=True, name="bmm")
        tf.identity(m, name="out")
        tf.identity(b, name="out2")

    return graph_def_of(build)


def test_flops_follow_the_formulas_for_each_op_type():
    share = matmul_flops(_graph(), {"x": (3, 5, 8)})
    by = {r.op: r for r in share.rows}
    proj = 2 * (3 * 5 * 2 * 4) * 8  # out [3,5,2,4], contracted c=8
    scores = 2 * (3 * 2 * 5 * 5) * 4  # out [3,2,5,5], contracted H=4
    bmm = 2 * (3 * 2 * 5 * 5) * 5  # adj_x: K is the second-to-last axis of s
    assert by["Einsum"].nodes == 2 and by["Einsum"].flops == proj + scores
    assert by["MatMul"].flops == 2 * 15 * 16 * 8
    assert by["BatchMatMulV2"].flops == bmm
    assert share.quantized == 0 and share.share == 0.0
    assert share.total == proj + scores + 2 * 15 * 16 * 8 + bmm


def test_share_counts_quantized_op_types_and_round_trips():
    share = FlopShare((FlopRow("MatMul", 1, 100, False), FlopRow("_QuantizedMatMul", 3, 300, True)), (("x", (2, 3)),))
    assert share.share == 0.75
    again = FlopShare.from_dict(json.loads(json.dumps(share.to_dict())))
    assert again == share


def test_flops_grow_with_the_batch():
    small = matmul_flops(_graph(), {"x": (1, 5, 8)})
    big = matmul_flops(_graph(), {"x": (4, 5, 8)})
    assert big.total == 4 * small.total


def test_convolutions_count_only_when_asked():
    rng = np.random.default_rng(1)

    def build() -> None:
        x = v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        y = tf.nn.conv2d(x, tf.constant(rng.standard_normal((3, 3, 3, 4)), tf.float32), 1, "SAME", name="conv")
        tf.identity(tf.matmul(tf.reshape(y, [-1, 256]), tf.ones([256, 2])), name="out")

    graph = graph_def_of(build)
    assert [r.op for r in matmul_flops(graph, {"x": (1, 8, 8, 3)}).rows] == ["MatMul"]
    with_conv = matmul_flops(graph, {"x": (1, 8, 8, 3)}, include_conv=True)
    assert {r.op: r.flops for r in with_conv.rows} == {"Conv2D": 2 * 8 * 8 * 4 * 27, "MatMul": 2 * 2 * 256}
