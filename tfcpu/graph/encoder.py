"""tfcpu's built-in transformer encoder: the model behind ``tfcpu demo --model encoder`` and ``keras:encoder``.

A BERT-like classifier of the size people serve on CPUs, built in Keras 3 with random weights
(nothing is downloaded): token ids and an attention mask (both ``int32``, ``batch x seq``), an
``Embedding``, ``layers`` blocks of ``MultiHeadAttention`` + residual + ``LayerNormalization`` +
a GELU MLP (``4 x width``, exact GELU) + residual + ``LayerNormalization``, mean pooling and a
``Dense`` head. The first LayerNorm of a block keeps Keras's epsilon (1e-3), the second uses a
BERT-like 1e-6, so both the LayerNorm form TensorFlow's runtime fuses and the one it does not
are in the graph. LayerNorm gamma/beta and every bias get trained-like seeded values
(`tfcpu.graph._keras_weights.realistic_weights`), so no fold or fusion can pass by accident.

The default is 4 layers of width 256 with 4 heads at a fixed sequence length of 128 (what
``tfcpu demo --model encoder`` times at batch 8); ``seq_len=None`` leaves the sequence length
dynamic, as a served model with variable-length requests has.
"""

from __future__ import annotations

from typing import Any

from tfcpu.errors import ConfigError

__all__ = ["BUILTIN_MODELS", "VOCAB", "build_encoder", "encoder_block"]

#: Names tfcpu builds itself (accepted wherever a Keras application name is).
BUILTIN_MODELS = ("encoder",)

#: The encoder's vocabulary size (token ids must be in ``[0, VOCAB)``).
VOCAB = 1000


def encoder_block(keras: Any, x: Any, mask: Any, width: int, heads: int) -> Any:
    """One post-norm transformer block on ``x`` (``batch x seq x width``); ``mask`` is a boolean
    ``batch x 1 x seq`` attention mask or None."""
    attn = keras.layers.MultiHeadAttention(heads, width // heads)(x, x, attention_mask=mask)
    x = keras.layers.LayerNormalization()(x + attn)  # Keras's default epsilon 1e-3: the runtime fuses it
    h = keras.layers.Dense(4 * width)(x)
    h = keras.layers.Activation("gelu")(h)  # Keras 3's gelu: the exact (erf) form
    h = keras.layers.Dense(width)(h)
    return keras.layers.LayerNormalization(epsilon=1e-6)(x + h)  # BERT-like epsilon: kept as written


def build_encoder(
    layers: int = 4,
    width: int = 256,
    heads: int = 4,
    *,
    seq_len: int | None = 128,
    classes: int = 2,
    seed: int = 0,
    realistic: bool = True,
) -> Any:
    """Build the encoder as a Keras 3 model (inputs ``token_ids`` and ``mask``, output ``logits``).

    Args:
        layers: transformer blocks.
        width: the model width (a multiple of ``heads``).
        heads: attention heads per block.
        seq_len: the fixed sequence length of both inputs, or None for a dynamic one.
        classes: logits of the head.
        seed: Keras's initialisers and the trained-like LayerNorm/bias values.
        realistic: give LayerNorms and biases trained-like values (default); False keeps Keras's
            initial gamma 1, beta 0 and zero biases.

    Raises:
        ConfigError: a size that cannot build (``width`` not a multiple of ``heads``, a size < 1).
    """
    sizes = {"layers": layers, "width": width, "heads": heads, "classes": classes}
    if seq_len is not None:  # None: a dynamic length; 0 is not one
        sizes["seq_len"] = seq_len
    small = [name for name, value in sizes.items() if value < 1]
    if small or width % heads:
        raise ConfigError(
            "the encoder's sizes do not build",
            where=", ".join(f"{k}={v}" for k, v in sizes.items()),
            why=f"{', '.join(small)} must be >= 1" if small else f"width {width} is not a multiple of heads {heads}",
            hint="for example build_encoder(layers=4, width=256, heads=4, seq_len=128)",
        )
    from tfcpu._lazy import import_tensorflow
    from tfcpu.graph._keras_weights import realistic_weights

    import_tensorflow()  # TensorFlow's start-up chatter filtered, before Keras imports it
    import keras

    keras.utils.set_random_seed(seed)
    ids = keras.Input((seq_len,), dtype="int32", name="token_ids")
    mask = keras.Input((seq_len,), dtype="int32", name="mask")
    x = keras.layers.Embedding(VOCAB, width)(ids)
    attend = keras.ops.cast(mask[:, None, :], "bool")
    for _ in range(layers):
        x = encoder_block(keras, x, attend, width, heads)
    pooled = keras.layers.GlobalAveragePooling1D()(x)
    out = keras.layers.Dense(classes, name="logits")(pooled)
    model = keras.Model([ids, mask], out, name="encoder")
    if realistic:
        realistic_weights(model, seed=seed)
    return model
