"""Loading inlines function calls and ungroups grouped convolutions (issue 27, part 3).

The Keras model of most tests::

    x[16,16,8] -> Conv2D(16, 3x3)                    (ordinary)
      -> Conv2D(32, 3x3, groups=4)                     (Keras: an XLA function; here Split/4 x Conv2D/ConcatV2)
      -> BatchNormalization -> ReLU
      -> Conv2D(32, 7x7, groups=32)                    (depthwise: DepthwiseConv2dNative)
      -> GlobalAveragePooling2D -> Dense(10) -> out
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from test_graph_builders import tf

import tfcpu
from tfcpu.graph.flops import matmul_flops
from tfcpu.graph.passes import PassContext, run_pass
from tfcpu.graph.passes.inline_functions import CALL_OPS, remaining_calls
from tfcpu.runtime import Runner

CALLS = CALL_OPS | {"If", "While", "StatelessIf", "StatelessWhile"}


def grouped_keras_model():  # type: ignore[no-untyped-def]
    import keras

    from tfcpu.graph._keras_weights import realistic_weights

    keras.utils.set_random_seed(0)
    x = keras.Input((16, 16, 8), name="pixels")
    y = keras.layers.Conv2D(16, 3, padding="same")(x)
    y = keras.layers.Conv2D(32, 3, groups=4, padding="same")(y)
    y = keras.layers.BatchNormalization()(y)
    y = keras.layers.ReLU()(y)
    y = keras.layers.Conv2D(32, 7, groups=32, padding="same")(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    y = keras.layers.Dense(10)(y)
    model = keras.Model(x, y)
    realistic_weights(model)
    return model


@pytest.fixture(scope="module")
def keras_model():  # type: ignore[no-untyped-def]
    return grouped_keras_model()


def _feed(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((4, 16, 16, 8)).astype(np.float32)


def test_keras_runs_grouped_convolutions_as_xla_calls(keras_model) -> None:  # type: ignore[no-untyped-def]
    """The premise: what Keras hands over calls a jit_compile function per grouped convolution."""
    spec = tf.TensorSpec((None, 16, 16, 8), tf.float32)
    concrete = tf.function(lambda x: keras_model(x, training=False)).get_concrete_function(spec)
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    graph_def = convert_variables_to_constants_v2(concrete).graph.as_graph_def()
    calls = [n for n in graph_def.node if n.op in CALL_OPS]
    assert len(calls) == 2
    assert all(n.attr["_XlaMustCompile"].b for n in calls)


def test_load_leaves_no_function_call_and_no_grouped_conv(keras_model) -> None:  # type: ignore[no-untyped-def]
    model = tfcpu.load(keras_model)
    ops = Counter(n.op for n in model.graph_def.node)
    assert not remaining_calls(model.graph_def)
    assert not CALLS & set(ops), ops
    assert len(model.graph_def.library.function) == 0
    assert ops["DepthwiseConv2dNative"] == 1  # groups == channels
    assert ops["Split"] == 1 and ops["ConcatV2"] >= 1  # 4 groups of 4 channels
    assert ops["Conv2D"] == 1 + 4


def test_loaded_graph_equals_keras(keras_model) -> None:  # type: ignore[no-untyped-def]
    """On TensorFlow's CPU kernels (Grappler fuses Conv2D+BiasAdd, which refuses groups) and on OpenVINO."""
    model = tfcpu.load(keras_model)
    x = _feed()
    want = keras_model(x, training=False).numpy()
    for backend in ("tensorflow", "openvino"):
        with Runner(model, backend=backend) as runner:
            got = next(iter(runner.run({model.input_names[0]: x}).values()))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=backend)


def _nested_call_graph():  # type: ignore[no-untyped-def]
    """A tf.function calling a jit_compile function that calls another function::

    x[2,8] -> outer: inner_xla(x, w) = relu(leaf(x @ w)) + 1, leaf(t) = t * 2 -> out
    """
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    w = tf.Variable(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32))

    @tf.function
    def leaf(t):  # type: ignore[no-untyped-def]
        return t * 2.0

    @tf.function(jit_compile=True)
    def inner(x):  # type: ignore[no-untyped-def]
        return tf.nn.relu(leaf(tf.matmul(x, w))) + 1.0

    @tf.function
    def outer(x):  # type: ignore[no-untyped-def]
        return tf.identity(inner(x), name="out")

    concrete = outer.get_concrete_function(tf.TensorSpec((2, 8), tf.float32, name="x"))
    frozen = convert_variables_to_constants_v2(concrete)
    return frozen.graph.as_graph_def(), frozen.inputs[0].name, frozen.outputs[0].name


def _run(graph_def, feed_name, fetch_name, x):  # type: ignore[no-untyped-def]
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return session.run(fetch_name, {feed_name: x})


def test_the_pass_inlines_nested_calls_and_keeps_the_outputs() -> None:
    graph_def, x_name, out_name = _nested_call_graph()
    assert any(n.op in CALL_OPS for n in graph_def.node)
    ctx = PassContext(inputs=(x_name.split(":")[0],), outputs=(out_name.split(":")[0],))
    inlined, report = run_pass("inline_functions", graph_def, ctx)
    assert report.changed and not report.skipped
    assert not remaining_calls(inlined) and len(inlined.library.function) == 0
    assert not any(k.startswith("_Xla") for n in inlined.node for k in n.attr)
    x = np.random.default_rng(2).standard_normal((2, 8)).astype(np.float32)
    np.testing.assert_allclose(_run(inlined, x_name, out_name, x), _run(graph_def, x_name, out_name, x), rtol=1e-6)


def test_optimizer_offers_the_passes_and_explains_them() -> None:
    plan = tfcpu.GraphOptimizer().inline_functions().ungroup_convolutions()
    assert "inline_functions" in plan.explain() and "ungroup_convolutions" in plan.explain()


def _while_graph():  # type: ignore[no-untyped-def]
    """x[2,8] -> While(i < 3: h = h @ w) -> out: a MatMul inside a loop body, which is not inlined."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    w = tf.constant(np.eye(8, dtype=np.float32))

    @tf.function
    def looped(x):  # type: ignore[no-untyped-def]
        i = tf.constant(0)
        _, h = tf.while_loop(lambda i, h: i < 3, lambda i, h: (i + 1, tf.matmul(h, w)), (i, x))
        return tf.identity(h, name="out")

    concrete = looped.get_concrete_function(tf.TensorSpec((2, 8), tf.float32, name="x"))
    return convert_variables_to_constants_v2(concrete, lower_control_flow=False).graph.as_graph_def()


def test_a_loop_stays_and_is_reported() -> None:
    graph_def = _while_graph()
    loop = next(n for n in graph_def.node if "While" in n.op)
    _, report = run_pass("inline_functions", graph_def, PassContext(inputs=("x",), outputs=("out",)))
    assert any(s.node == loop.name and "control flow" in s.reason for s in report.skipped)


def test_flops_count_inside_calls_and_never_overstate_a_share() -> None:
    """A MatMul inside a (jit) call is counted; one inside a loop body cannot be: no share then."""
    graph_def, x_name, _ = _nested_call_graph()
    share = matmul_flops(graph_def, {x_name: (2, 8)})
    assert share.total == 2 * 2 * 4 * 8 and share.share == 0.0 and not share.hidden
    looped = matmul_flops(_while_graph(), {"x": (2, 8)})
    assert looped.hidden and looped.share is None
    assert type(looped).from_dict(looped.to_dict()) == looped
