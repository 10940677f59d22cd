"""Transformer model builders for the tests and benchmarks (random, trained-like weights).

Every builder returns a Keras model whose token inputs have a *dynamic* sequence length
(``shape=(None, None)``), with non-trivial LayerNorm gamma/beta and biases, so the frozen
graph carries the run-time shape arithmetic a served model has. :func:`frozen` turns one into
a tfcpu Model with ``tfcpu.load``; :func:`feeds` makes matching inputs.

Families (``FAMILIES``):

* ``keras3``: Keras 3 encoder (tfcpu's built-in ``encoder`` with a dynamic sequence length): token
  ids + attention mask, Embedding, MultiHeadAttention, LayerNormalization, exact (Erf) GELU MLP,
  mean pooling, a classifier head;
* ``tf_keras``: the same in tf_keras (Keras 2), with the tanh GELU;
* ``vit``: a small ViT: 8x8 patch Conv2D, position embedding, attention blocks;
* ``bert``: keras-hub's ``BertBackbone`` from a small config (no weights download).

Test size: 2 layers, width 64; the benchmark size: ``layers=4, width=256`` (sequence 128 in the feeds).
"""

from __future__ import annotations

from typing import Any

import numpy as np

FAMILIES = ("keras3", "tf_keras", "vit", "bert")
VOCAB = 100


def randomise(model: Any, seed: int = 0) -> Any:
    """Give LayerNorm gamma/beta, biases and embeddings trained-like random values (in place)."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        name = str(getattr(weight, "path", None) or weight.name)
        shape = tuple(int(d) for d in weight.shape)
        if name.endswith(("gamma", "gamma:0", "scale")):
            value = 1.0 + 0.2 * rng.standard_normal(shape)
        elif name.endswith(("beta", "beta:0", "bias", "bias:0")):
            value = 0.1 * rng.standard_normal(shape)
        else:
            continue
        weight.assign(value.astype(np.float32))
    return model


def keras3_encoder(layers: int = 2, width: int = 64, heads: int = 4, classes: int = 3, seed: int = 0) -> Any:
    """Keras 3 encoder: ``token_ids`` and ``mask`` (int32, 1 = attend), logits of ``classes``: tfcpu's
    built-in encoder (`tfcpu.graph.encoder.build_encoder`) with a dynamic sequence length."""
    from tfcpu.graph.encoder import build_encoder

    return build_encoder(layers, width, heads, seq_len=None, classes=classes, seed=seed)


def tf_keras_encoder(layers: int = 2, width: int = 64, heads: int = 4, classes: int = 3, seed: int = 0) -> Any:
    """The same encoder in tf_keras (Keras 2), with the tanh GELU."""
    import tensorflow as tf
    import tf_keras

    tf_keras.utils.set_random_seed(seed)
    ids = tf_keras.Input((None,), dtype="int32", name="token_ids")
    mask = tf_keras.Input((None,), dtype="int32", name="mask")
    x = tf_keras.layers.Embedding(VOCAB, width)(ids)
    attend = tf_keras.layers.Lambda(lambda m: tf.cast(m[:, None, :], tf.bool))(mask)
    for _ in range(layers):
        attn = tf_keras.layers.MultiHeadAttention(heads, width // heads)(x, x, attention_mask=attend)
        x = tf_keras.layers.LayerNormalization(epsilon=1e-6)(x + attn)
        h = tf_keras.layers.Dense(4 * width)(x)
        h = tf_keras.layers.Lambda(lambda t: tf.nn.gelu(t, approximate=True))(h)
        h = tf_keras.layers.Dense(width)(h)
        x = tf_keras.layers.LayerNormalization(epsilon=1e-6)(x + h)
    pooled = tf_keras.layers.GlobalAveragePooling1D()(x)
    out = tf_keras.layers.Dense(classes, name="logits")(pooled)
    return randomise(tf_keras.Model([ids, mask], out, name="tf_keras_encoder"), seed)


def vit(layers: int = 2, width: int = 64, heads: int = 4, classes: int = 3, seed: int = 0, image: int = 32) -> Any:
    """A small ViT: ``image`` x ``image`` x 3 input, 8x8 patches, the encoder's blocks, mean pooling."""
    import keras

    from tfcpu.graph.encoder import encoder_block

    keras.utils.set_random_seed(seed)
    pixels = keras.Input((image, image, 3), name="pixels")
    patches = keras.layers.Conv2D(width, 8, strides=8)(pixels)
    x = keras.layers.Reshape((-1, width))(patches)
    tokens = (image // 8) ** 2
    positions = keras.layers.Embedding(tokens, width)(keras.ops.arange(tokens)[None, :])
    x = x + positions
    for _ in range(layers):
        x = encoder_block(keras, x, None, width, heads)
    pooled = keras.layers.GlobalAveragePooling1D()(x)
    out = keras.layers.Dense(classes, name="logits")(pooled)
    return randomise(keras.Model(pixels, out, name="vit"), seed)


def bert(layers: int = 2, width: int = 64, heads: int = 4, seed: int = 0, max_sequence: int = 128) -> Any:
    """keras-hub's ``BertBackbone`` from a small config (random weights, nothing downloaded)."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=VOCAB,
        num_layers=layers,
        num_heads=heads,
        hidden_dim=width,
        intermediate_dim=4 * width,
        max_sequence_length=max_sequence,
        num_segments=8,  # tfcpu's random check feeds small ints (0..7) to every int input
    )
    randomise(backbone, seed)
    # tfcpu.load calls a model with a list of inputs; the backbone takes a dict: wrap it.
    names = ("token_ids", "segment_ids", "padding_mask")
    inputs = [keras.Input((None,), dtype="int32", name=n) for n in names]
    outputs = backbone(dict(zip(names, inputs, strict=True)))
    return keras.Model(inputs, [outputs["sequence_output"], outputs["pooled_output"]], name="bert")


def build(family: str, **sizes: Any) -> Any:
    """The Keras model of ``family`` (one of ``FAMILIES``) at ``sizes`` (layers, width, heads)."""
    builders = {"keras3": keras3_encoder, "tf_keras": tf_keras_encoder, "vit": vit, "bert": bert}
    return builders[family](**sizes)


def frozen(family: str, **sizes: Any) -> Any:
    """``tfcpu.load`` of :func:`build`: a frozen tfcpu Model."""
    import tfcpu

    return tfcpu.load(build(family, **sizes))


def feeds(model: Any, batch: int = 2, seq: int = 16, seed: int = 0) -> dict[str, Any]:
    """Inputs for a frozen Model: token ids in [0, VOCAB), masks with padded tails, images."""
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    lengths = rng.integers(seq // 2, seq + 1, batch)
    lengths[0] = seq
    for spec in model.inputs:
        name = spec.name
        if spec.dtype.startswith("float"):
            shape = tuple(batch if i == 0 else d for i, d in enumerate(spec.shape))
            out[name] = rng.standard_normal(shape).astype(spec.dtype)
        elif "mask" in name:
            value = (np.arange(seq)[None, :] < lengths[:, None]).astype(spec.dtype)
            out[name] = value
        elif "segment" in name:
            out[name] = (np.arange(seq)[None, :] >= seq // 2).astype(spec.dtype).repeat(batch, 0)
        else:
            out[name] = rng.integers(0, VOCAB, (batch, seq)).astype(spec.dtype)
    return out


def runtime_ops(graph_def: Any, outputs: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(op, fused_ops) of every node after Grappler with all nodes on the CPU: what the runtime executes."""
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
    from tensorflow.python.grappler import tf_optimizer

    work = type(graph_def)()
    work.CopyFrom(graph_def)
    for node in work.node:
        node.device = "/device:CPU:0"
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(work, name="")
        meta = tf.compat.v1.train.export_meta_graph(graph=graph)
    fetch = meta_graph_pb2.CollectionDef()
    fetch.node_list.value.extend(outputs)
    meta.collection_def["train_op"].CopyFrom(fetch)
    config = config_pb2.ConfigProto()
    config.graph_options.rewrite_options.min_graph_nodes = -1
    optimised = tf_optimizer.OptimizeGraph(config, meta)
    return [(n.op, tuple(s.decode() for s in n.attr["fused_ops"].list.s)) for n in optimised.node]


def onednn_on() -> bool:
    """Whether this TensorFlow process runs oneDNN (TF_ENABLE_ONEDNN_OPTS or the CPU's default)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())
