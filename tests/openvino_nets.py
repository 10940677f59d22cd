"""A tiny classifier with trained-like numbers for the OpenVINO tune / demo / ray / multi-instance tests.

::

    x[?,8,8,3] → Conv2D 3x3x8 (random) → FusedBatchNormV3(random γ β mean var) → Relu → Mean[1,2]
               → MatMul 8x6 → BiasAdd(random) → Softmax = "probs"
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfcpu.graph.model import Model, TensorSpec


def bn_classifier(seed: int = 0) -> Model:
    import tensorflow as tf

    rng = np.random.default_rng(seed)

    def f32(*shape: int, scale: float = 1.0) -> Any:
        return tf.constant((rng.standard_normal(shape) * scale).astype(np.float32))

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        y = tf.nn.conv2d(x, f32(3, 3, 3, 8, scale=0.3), 1, "SAME")
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            y,
            rng.uniform(0.5, 1.5, 8).astype(np.float32),
            rng.normal(0, 0.2, 8).astype(np.float32),
            mean=rng.normal(0, 0.3, 8).astype(np.float32),
            variance=rng.uniform(0.5, 2.0, 8).astype(np.float32),
            is_training=False,
        )
        feat = tf.reduce_mean(tf.nn.relu(y), [1, 2])
        logits = tf.nn.bias_add(tf.matmul(feat, f32(8, 6)), f32(6, scale=0.3))
        tf.nn.softmax(logits, name="probs")
    return Model(
        g.as_graph_def(),
        (TensorSpec("x:0", "float32", (None, 8, 8, 3), "Placeholder"),),
        (TensorSpec("probs:0", "float32", (None, 6), "Softmax"),),
        source="bn_classifier",
    )
