"""Tiny graphs built in code for unit tests (no files, no downloads)."""

from __future__ import annotations

import numpy as np

from tfcpu.graph.model import Model, TensorSpec

W = np.arange(12, dtype=np.float32).reshape(4, 3) / 10.0
B = np.array([0.1, -0.2, 0.3], dtype=np.float32)


def dense_softmax() -> Model:
    """x[?,4] → MatMul(W) → BiasAdd(B) → Softmax = "probs"."""
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        y = tf.nn.bias_add(tf.matmul(x, tf.constant(W)), tf.constant(B))
        tf.nn.softmax(y, name="probs")
    return Model(
        g.as_graph_def(),
        (TensorSpec("x:0", "float32", (None, 4), "Placeholder"),),
        (TensorSpec("probs:0", "float32", (None, 3), "Softmax"),),
        source="dense_softmax",
    )


def dense_softmax_reference(x: np.ndarray) -> np.ndarray:
    z = x @ W + B
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def two_inputs() -> Model:
    """a[?,3] float32, n[?] int32 → a * cast(n)[:, None] = "out"."""
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        a = tf.compat.v1.placeholder(tf.float32, [None, 3], name="a")
        n = tf.compat.v1.placeholder(tf.int32, [None], name="n")
        tf.multiply(a, tf.expand_dims(tf.cast(n, tf.float32), 1), name="out")
    return Model(
        g.as_graph_def(),
        (
            TensorSpec("a:0", "float32", (None, 3), "Placeholder"),
            TensorSpec("n:0", "int32", (None,), "Placeholder"),
        ),
        (TensorSpec("out:0", "float32", (None, 3), "Mul"),),
        source="two_inputs",
    )


def echo_ids() -> Model:
    """ids[?,1] float32 → ids * 1 + 0 = "echo" (lets tests see which items were processed)."""
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        ids = tf.compat.v1.placeholder(tf.float32, [None, 1], name="ids")
        tf.add(tf.multiply(ids, tf.constant(1.0)), tf.constant(0.0), name="echo")
    return Model(
        g.as_graph_def(),
        (TensorSpec("ids:0", "float32", (None, 1), "Placeholder"),),
        (TensorSpec("echo:0", "float32", (None, 1), "AddV2"),),
        source="echo_ids",
    )


def tiny_convnet() -> Model:
    """x[?,8,8,1] → Conv2D(3x3, 4, SAME) → BiasAdd → Relu → Reshape[?,256] → MatMul → BiasAdd → Softmax = "probs".

    Seeded weights; the smallest graph INC turns into QuantizedConv2D/QuantizedMatMul chains.
    """
    import tensorflow as tf

    rng = np.random.default_rng(7)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 1], name="x")
        w = tf.constant(rng.standard_normal((3, 3, 1, 4)).astype(np.float32))
        y = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, w, 1, "SAME"), tf.constant(np.full(4, 0.1, np.float32))))
        y = tf.reshape(y, [-1, 8 * 8 * 4])
        d = tf.constant((rng.standard_normal((256, 5)) * 0.1).astype(np.float32))
        tf.nn.softmax(tf.nn.bias_add(tf.matmul(y, d), tf.constant(np.zeros(5, np.float32))), name="probs")
    return Model(
        g.as_graph_def(),
        (TensorSpec("x:0", "float32", (None, 8, 8, 1), "Placeholder"),),
        (TensorSpec("probs:0", "float32", (None, 5), "Softmax"),),
        source="tiny_convnet",
    )


def reads_file(path: str, *, in_function: bool = False) -> Model:
    """x[?,4] → x + len(ReadFile(path)) = "out"; with ``in_function`` the ReadFile hides in a library function.

    A model that touches the file system: the safety scan must refuse it unless ReadFile is allowed.
    """
    import tensorflow as tf

    def file_length() -> tf.Tensor:
        return tf.cast(tf.strings.length(tf.io.read_file(tf.constant(path))), tf.float32)

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        n = tf.function(file_length, autograph=False)() if in_function else file_length()
        tf.add(x, n, name="out")
    return Model(
        g.as_graph_def(),
        (TensorSpec("x:0", "float32", (None, 4), "Placeholder"),),
        (TensorSpec("out:0", "float32", (None, 4), "AddV2"),),
        source="reads_file",
    )
