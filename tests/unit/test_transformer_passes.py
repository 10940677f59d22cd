"""The transformer passes on tiny graphs built in code, checked against numpy."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from test_graph_builders import graph_def_of, tf, v1

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from transformer_models import runtime_ops

from tfcpu.graph._execute import run_graph
from tfcpu.graph._graphdef import const_array
from tfcpu.graph.passes import PassContext, run_pass
from tfcpu.graph.passes.projections_to_matmul import _NoMatch, parse_projection


def ops(graph_def):
    return [n.op for n in graph_def.node]


def nodes(graph_def):
    return {n.name: n for n in graph_def.node}


def _einsum_graph(equation: str, x_shape, w, bias=None):
    def build() -> None:
        x = v1.placeholder(tf.float32, x_shape, name="x")
        y = tf.raw_ops.Einsum(inputs=[x, tf.constant(w, name="w")], equation=equation, name="proj")
        if bias is not None:
            y = tf.raw_ops.AddV2(x=y, y=tf.constant(bias, name="b"), name="bias")
        tf.identity(y, name="out")

    return graph_def_of(build)


@pytest.mark.parametrize(
    ("equation", "x_shape", "w_shape", "bias_shape", "feed_shape"),
    [
        ("abc,cde->abde", [None, None, 8], (8, 4, 2), (4, 2), (3, 5, 8)),  # q/k/v of MultiHeadAttention
        ("abcd,cde->abe", [None, None, 4, 2], (4, 2, 8), (8,), (3, 5, 4, 2)),  # its output projection
        ("abc,cd->abd", [None, 5, 8], (8, 6), None, (3, 5, 8)),  # a Dense on 3-D, one unknown dim
        ("abc,dc->abd", [None, None, 8], (6, 8), None, (2, 7, 8)),  # the weight stored transposed
    ],
)
def test_einsum_projection_becomes_matmul_and_computes_the_same(equation, x_shape, w_shape, bias_shape, feed_shape):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(w_shape).astype(np.float32)
    bias = None if bias_shape is None else rng.standard_normal(bias_shape).astype(np.float32)
    graph = _einsum_graph(equation, x_shape, w, bias)
    new, report = run_pass("projections_to_matmul", graph, PassContext(("x",), ("out",)))
    assert "Einsum" not in ops(new) and ops(new).count("MatMul") == 1, ops(new)
    assert len(report.changed) == 1 and not report.skipped
    if bias is not None:
        assert "BiasAdd" in ops(new) and "AddV2" not in ops(new)  # the bias moved before the reshape
    x = rng.standard_normal(feed_shape).astype(np.float32)
    want = np.einsum(equation, x.astype(np.float64), w.astype(np.float64))
    if bias is not None:
        want = want + bias
    (got,) = run_graph(new, {"x:0": x}, ["out:0"], grappler=False)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    weight = const_array(nodes(new)[next(n for n in new.node if n.op == "MatMul").input[1]])
    assert weight.ndim == 2


@pytest.mark.parametrize("adj_y", [False, True])
def test_batch_matmul_with_a_constant_weight_becomes_matmul(adj_y):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((6, 8) if adj_y else (8, 6)).astype(np.float32)

    def build() -> None:
        x = v1.placeholder(tf.float32, [None, None, 8], name="x")
        y = tf.raw_ops.BatchMatMulV2(x=x, y=tf.constant(w), adj_y=adj_y, name="proj")
        tf.identity(y, name="out")

    new, _ = run_pass("projections_to_matmul", graph_def_of(build), PassContext(("x",), ("out",)))
    assert "BatchMatMulV2" not in ops(new) and "MatMul" in ops(new)
    assert "equation" not in nodes(new)["proj"].attr  # the reused node carries only Reshape's attributes
    assert set(nodes(new)["proj"].attr) == {"T", "Tshape"}
    x = rng.standard_normal((2, 3, 8)).astype(np.float32)
    (got,) = run_graph(new, {"x:0": x}, ["out:0"], grappler=False)
    np.testing.assert_allclose(got, x @ (w.T if adj_y else w), rtol=1e-5, atol=1e-5)


def test_attention_product_of_two_activations_is_left_alone():
    def build() -> None:
        q = v1.placeholder(tf.float32, [None, 4, 2, 8], name="q")
        k = v1.placeholder(tf.float32, [None, 4, 2, 8], name="k")
        tf.identity(tf.raw_ops.Einsum(inputs=[q, k], equation="BTNH,BSNH->BNTS"), name="out")

    new, report = run_pass("projections_to_matmul", graph_def_of(build), PassContext(("q", "k"), ("out",)))
    assert "Einsum" in ops(new) and not report.changed


@pytest.mark.parametrize(
    ("equation", "why"),
    [("abc,acd->abd", "batch letter"), ("abc,cde->adbe", "free letters"), ("abc,bde->acde", "trailing")],
)
def test_non_projection_equations_are_refused_with_the_reason(equation, why):
    assert parse_projection("abc,bcd->ad", 3, (2, 3, 4)).contracted == 6  # two trailing axes contracted: fine
    with pytest.raises(_NoMatch, match=why):
        parse_projection(equation, 3, (2, 3, 4))


def test_shape_arithmetic_on_known_dims_folds_and_keeps_minus_one_for_the_batch():
    """x[?, 6, 8] -> Shape -> GatherV2([1, 2]) -> Prod and GatherV2(0) -> Pack -> Reshape(x): [-1, 48]."""

    def build() -> None:
        x = v1.placeholder(tf.float32, [None, 6, 8], name="x")
        shape = tf.shape(x, name="shape")
        inner = tf.raw_ops.Prod(input=tf.gather(shape, [1, 2], name="inner_dims"), axis=[0], name="inner")
        batch = tf.raw_ops.StridedSlice(input=shape, begin=[0], end=[1], strides=[1], shrink_axis_mask=1, name="b")
        width = tf.raw_ops.StridedSlice(input=shape, begin=[2], end=[3], strides=[1], shrink_axis_mask=1, name="w")
        flat = tf.reshape(x, tf.stack([batch, inner], name="target"), name="flat")
        tf.identity(flat * tf.cast(width, tf.float32), name="out")

    graph = graph_def_of(build)
    new, report = run_pass("fold_shape_arithmetic", graph, PassContext(("x",), ("out",)))
    by = nodes(new)
    for op in ("Shape", "StridedSlice", "GatherV2", "Prod", "Pack"):
        assert op not in ops(new), ops(new)
    assert const_array(by["Cast"]).tolist() == 8  # the width (known dims only) became a constant
    target = by[by["flat"].input[1]]
    assert target.op == "Const" and const_array(target).tolist() == [-1, 48]
    assert "Shape" not in ops(new) and report.changed
    x = np.random.default_rng(2).standard_normal((3, 6, 8)).astype(np.float32)
    (got,) = run_graph(new, {"x:0": x}, ["out:0"], grappler=False)
    np.testing.assert_allclose(got, x.reshape(3, 48) * 8, rtol=1e-6)


def test_shape_of_two_unknown_dims_stays_and_is_reported():
    def build() -> None:
        x = v1.placeholder(tf.float32, [None, None, 8], name="x")
        lead = tf.shape(x)[:2]
        y = tf.reshape(tf.reshape(x, [-1, 8]) * 2.0, tf.concat([lead, [8]], 0, name="target"), name="back")
        tf.identity(y, name="out")

    new, report = run_pass("fold_shape_arithmetic", graph_def_of(build), PassContext(("x",), ("out",)))
    assert "Shape" in ops(new)
    assert any("2 run-time dims" in s.reason for s in report.skipped)
    x = np.ones((2, 3, 8), np.float32)
    (got,) = run_graph(new, {"x:0": x}, ["out:0"], grappler=False)
    np.testing.assert_array_equal(got, 2 * x)


def test_identity_transpose_is_removed():
    def build() -> None:
        x = v1.placeholder(tf.float32, [None, 4, 8], name="x")
        tf.identity(tf.transpose(x, [0, 1, 2], name="t") + 1.0, name="out")

    new, _ = run_pass("fold_shape_arithmetic", graph_def_of(build), PassContext(("x",), ("out",)))
    assert "Transpose" not in ops(new)


def test_fold_constants_already_folds_reshapes_and_transposes_of_weights():
    """The attention's weight reshapes/transposes (W -> Reshape -> Transpose -> MatMul) become one Const."""
    rng = np.random.default_rng(4)
    w = rng.standard_normal((4, 2, 8)).astype(np.float32)

    def build() -> None:
        x = v1.placeholder(tf.float32, [None, 8], name="x")
        w2 = tf.transpose(tf.reshape(tf.constant(w), [8, 8], name="w_reshape"), [1, 0], name="w_transpose")
        tf.identity(tf.matmul(x, w2, name="mm"), name="out")

    new, report = run_pass("fold_constants", graph_def_of(build), PassContext(("x",), ("out",)))
    assert "Transpose" not in ops(new) and "Reshape" not in ops(new)
    weight = nodes(new)[nodes(new)["mm"].input[1]]
    assert weight.op == "Const"
    np.testing.assert_array_equal(const_array(weight), w.reshape(8, 8).T)
    assert report.changed


def _dense_gelu_graph(kind: str, rng: np.random.Generator):
    """x[?, ?, 8] -> Reshape[-1, 8] -> MatMul(w) -> Reshape[b, s, 6] -> BiasAdd -> GELU -> out (a 3-D Dense)."""
    w = rng.standard_normal((8, 6)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)

    def build() -> None:
        x = v1.placeholder(tf.float32, [None, None, 8], name="x")
        lead = tf.shape(x)[:2]
        y = tf.reshape(tf.matmul(tf.reshape(x, [-1, 8]), tf.constant(w), name="Dense/mm"), tf.concat([lead, [6]], 0))
        y = tf.nn.bias_add(y, tf.constant(b), name="bias")
        if kind == "erfc":  # Keras 3's spelling
            y = 0.5 * y * tf.math.erfc(-y * (1.0 / np.sqrt(2.0)))
        else:
            y = tf.nn.gelu(y, approximate=kind == "tanh")
        tf.identity(y, name="out")

    return graph_def_of(build), w, b


def _remapped_ops(graph_def):
    """The graph after Grappler with every node on the CPU: what the runtime executes."""
    return runtime_ops(graph_def, ["out"])


def _onednn_on() -> bool:
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


# The MatMul is named "Dense/mm": measured on TF 2.21, Grappler fuses the tanh GELU only when the
# BiasAdd's name sorts before the GELU's nodes ("Gelu/..."), as Keras layer names do ("dense_1" <
# "lambda_1"); see the fuse_matmul_gelu docstring.
@pytest.mark.parametrize(
    ("kind", "fused"),
    [("erfc", ("BiasAdd", "GeluExact")), ("erf", ("BiasAdd", "GeluExact")), ("tanh", ("BiasAdd", "GeluApproximate"))],
)
def test_dense_gelu_is_rewritten_into_the_form_the_remapper_fuses(kind, fused):
    from tfcpu.graph.passes.fuse_matmul_gelu import gelu_exact, gelu_tanh

    rng = np.random.default_rng(5)
    graph, w, b = _dense_gelu_graph(kind, rng)
    new, report = run_pass("fuse_matmul_gelu", graph, PassContext(("x",), ("out",)))
    assert any("bias moved" in c for c in report.changed) and any("GELU" in c for c in report.changed), report
    by = nodes(new)
    bias_add = next(n for n in new.node if n.op == "BiasAdd")
    assert by[bias_add.input[0]].op == "MatMul"  # adjacent now
    x = rng.standard_normal((2, 5, 8)).astype(np.float32)
    z = x.astype(np.float64) @ w + b
    want = gelu_tanh(z) if kind == "tanh" else gelu_exact(z)
    (got,) = run_graph(new, {"x:0": x}, ["out:0"], grappler=False)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    after = _remapped_ops(new)
    if not _onednn_on():  # the remapper fuses GELU only with oneDNN (TF_ENABLE_ONEDNN_OPTS=0 leaves the ops)
        fused = ("BiasAdd",)
    assert ("_FusedMatMul", fused) in after, after
    assert ("_FusedMatMul", fused) not in _remapped_ops(graph)  # the original form did not fuse


def test_a_chain_that_is_not_a_gelu_is_left_alone_and_reported():
    def build() -> None:
        x = v1.placeholder(tf.float32, [None, 8], name="x")
        y = tf.nn.bias_add(tf.matmul(x, tf.ones([8, 4])), tf.ones([4]))
        tf.identity(0.5 * y * (1.0 + tf.math.erf(y * 0.9)), name="out")  # wrong constant: not a GELU

    _new, report = run_pass("fuse_matmul_gelu", graph_def_of(build), PassContext(("x",), ("out",)))
    assert not report.changed and report.skipped and "neither" in report.skipped[0].reason


def _keras3_layer_norm(epsilon: float):
    """A Keras 3 LayerNormalization frozen and constant-folded: Mean/SquaredDifference/Rsqrt/Neg/Mul chains."""
    import keras

    import tfcpu
    from tfcpu.graph.optimizer import GraphOptimizer

    rng = np.random.default_rng(6)
    layer = keras.layers.LayerNormalization(epsilon=epsilon)
    net = keras.Sequential([keras.Input((None, 32), name="x"), layer])
    layer.gamma.assign((1 + 0.2 * rng.standard_normal(32)).astype("float32"))
    layer.beta.assign((0.1 * rng.standard_normal(32)).astype("float32"))
    model = tfcpu.load(net)
    graph = GraphOptimizer().remove_nodes().fold_constants().run(model, check=False).model.graph_def
    return model, graph, layer.gamma.numpy(), layer.beta.numpy()


def test_keras3_layer_norm_is_respelled_exactly_and_fused_by_the_runtime():
    model, graph, gamma, beta = _keras3_layer_norm(1e-3)
    outputs = tuple(o.split(":")[0] for o in model.output_names)
    new, report = run_pass("fuse_layer_norm", graph, PassContext(("x",), outputs))
    assert len(report.changed) == 1 and "Neg" not in ops(new) and "Sub" in ops(new)
    x = (2 * np.random.default_rng(7).standard_normal((2, 5, 32)) + 1).astype(np.float32)
    mu = x.mean(-1, keepdims=True)
    want = (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-3) * gamma + beta
    (before,) = run_graph(graph, {"x:0": x}, model.output_names, grappler=False)
    (after,) = run_graph(new, {"x:0": x}, model.output_names, grappler=False)
    np.testing.assert_array_equal(after, before)  # the same IEEE operations: bit for bit
    (runtime,) = run_graph(new, {"x:0": x}, model.output_names, grappler=True)  # fused under oneDNN
    np.testing.assert_allclose(runtime, want, rtol=1e-5, atol=1e-5)
    fused = runtime_ops(new, list(outputs))
    if _onednn_on():
        assert ("_MklLayerNorm", ()) in fused and ("_MklLayerNorm", ()) not in runtime_ops(graph, list(outputs))
    else:
        assert ("_MklLayerNorm", ()) not in fused


def test_layer_norm_with_another_epsilon_is_left_alone_with_the_reason():
    model, graph, _gamma, _beta = _keras3_layer_norm(1e-6)
    outputs = tuple(o.split(":")[0] for o in model.output_names)
    new, report = run_pass("fuse_layer_norm", graph, PassContext(("x",), outputs))
    assert not report.changed and "Neg" in ops(new)
    assert "epsilon" in report.skipped[0].reason
