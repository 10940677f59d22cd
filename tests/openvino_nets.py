"""A tiny classifier with trained-like numbers for the OpenVINO tune / demo / ray / multi-instance tests.

::

    x[?,8,8,3] → Conv2D 3x3x8 (random) → FusedBatchNormV3(random γ β mean var) → Relu ─┬→ Mean[1,2] = "feat"
               → MatMul 8x6 → BiasAdd(random) → Softmax = "probs"                      └→ ArgMax(3) = "idx"
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfcpu.graph.model import Model, TensorSpec


def bn_classifier(seed: int = 0, *, size: int = 8, classes: int = 6, extra_outputs: bool = False) -> Model:
    """The classifier at ``size`` x ``size`` x 3 with ``classes`` logits; ``extra_outputs`` adds
    ``idx`` (int32 ArgMax over the channels, [?, size, size]) and ``feat`` (the pooled features)
    after ``probs``, for tests of output order and dtypes."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)

    def f32(*shape: int, scale: float = 1.0) -> Any:
        return tf.constant((rng.standard_normal(shape) * scale).astype(np.float32))

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, size, size, 3], name="x")
        y = tf.nn.conv2d(x, f32(3, 3, 3, 8, scale=0.3), 1, "SAME")
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            y,
            rng.uniform(0.5, 1.5, 8).astype(np.float32),
            rng.normal(0, 0.2, 8).astype(np.float32),
            mean=rng.normal(0, 0.3, 8).astype(np.float32),
            variance=rng.uniform(0.5, 2.0, 8).astype(np.float32),
            is_training=False,
        )
        y = tf.nn.relu(y)
        feat = tf.identity(tf.reduce_mean(y, [1, 2]), name="feat")
        logits = tf.nn.bias_add(tf.matmul(feat, f32(8, classes)), f32(classes, scale=0.3))
        tf.nn.softmax(logits, name="probs")
        tf.cast(tf.argmax(y, axis=3), tf.int32, name="idx")
    outputs = [TensorSpec("probs:0", "float32", (None, classes), "Softmax")]
    if extra_outputs:
        outputs += [
            TensorSpec("idx:0", "int32", (None, size, size), "Cast"),
            TensorSpec("feat:0", "float32", (None, 8), "Identity"),
        ]
    return Model(
        g.as_graph_def(),
        (TensorSpec("x:0", "float32", (None, size, size, 3), "Placeholder"),),
        tuple(outputs),
        source="bn_classifier",
    )
