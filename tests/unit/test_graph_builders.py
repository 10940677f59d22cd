"""Tiny graphs built in code for the graph tests (drawn in each docstring)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tfcpu._lazy import import_tensorflow

tf = import_tensorflow()
v1 = tf.compat.v1


def graph_def_of(build: Any) -> Any:
    """Run ``build()`` inside a fresh TF1 graph and return its GraphDef."""
    graph = tf.Graph()
    with graph.as_default():
        build()
    return graph.as_graph_def()


def const(rng: np.random.Generator, *shape: int, low: float | None = None) -> Any:
    value = rng.standard_normal(shape).astype(np.float32)
    if low is not None:
        value = np.abs(value) + low
    return value


def tf1_style_graph(seed: int = 0) -> Any:
    """The acceptance graph for TF1-era batch norms::

    x[1,8,8,3] -> Identity -> Conv2D(w1) -> FusedBatchNorm(v1) -> Relu
      -> DepthwiseConv2dNative(w2, multiplier 2) -> BatchNormWithGlobalNormalization
      -> CheckNumerics -> Mean(1,2) -> MatMul(w3) -> BiasAdd -> Mul(c) -> Add(c) -> out
    x -> Conv2D(w_unused) -> unused (nobody reads it)
    """
    rng = np.random.default_rng(seed)

    def build() -> None:
        x = v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        h = tf.identity(x, name="x_identity")
        h = tf.raw_ops.Conv2D(
            input=h, filter=const(rng, 3, 3, 3, 4), strides=[1, 1, 1, 1], padding="SAME", name="conv1"
        )
        h = tf.raw_ops.FusedBatchNorm(
            x=h,
            scale=const(rng, 4),
            offset=const(rng, 4),
            mean=const(rng, 4),
            variance=const(rng, 4, low=0.5),
            epsilon=1e-3,
            is_training=False,
            name="bn1",
        )[0]
        h = tf.nn.relu(h, name="relu1")
        h = tf.raw_ops.DepthwiseConv2dNative(
            input=h, filter=const(rng, 3, 3, 4, 2), strides=[1, 1, 1, 1], padding="SAME", name="dw"
        )
        # BatchNormWithGlobalNormalization was removed from GraphDef version 9 on: build a stand-in
        # now and rewrite it below, in a graph that declares producer version 8.
        for part, low in (("m", None), ("v", 0.5), ("beta", None), ("gamma", None)):
            tf.constant(const(rng, 8, low=low), name=f"bn2_{part}")
        h = tf.identity(h, name="bn2")
        h = tf.debugging.check_numerics(h, "bad", name="check")
        h = tf.reduce_mean(h, axis=[1, 2], name="gap")
        h = tf.raw_ops.MatMul(a=h, b=const(rng, 8, 5), name="fc")
        h = tf.nn.bias_add(h, const(rng, 5), name="fc_bias")
        h = tf.multiply(h, const(rng, 5), name="fc_scale")
        tf.add(h, const(rng, 5), name="out")
        tf.raw_ops.Conv2D(input=x, filter=const(rng, 1, 1, 3, 2), strides=[1, 1, 1, 1], padding="SAME", name="unused")

    graph_def = graph_def_of(build)
    graph_def.versions.producer = 8
    for node in graph_def.node:
        if node.name == "bn2":
            node.op = "BatchNormWithGlobalNormalization"
            node.input.extend(["bn2_m", "bn2_v", "bn2_beta", "bn2_gamma"])
            node.attr["variance_epsilon"].f = 1e-3
            node.attr["scale_after_normalization"].b = True
    return graph_def
