"""Tiny Keras models with trained-like weights, built in code (no files, no downloads)."""

from __future__ import annotations

from typing import Any


def tiny_resnet(*, seed: int = 0, realistic: bool = True, size: int = 32) -> Any:
    """Input[?,size,size,3] → Conv-BN-ReLU stem → one residual block (Conv-BN-ReLU, Conv-BN, Add, ReLU) →
    MaxPool → GlobalAveragePool → Dense(10, softmax): the ResNet pattern in a few hundred KB."""
    import tensorflow as tf

    from tfcpu.graph._keras_weights import realistic_weights

    keras = tf.keras
    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem_conv")(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = skip = keras.layers.ReLU(name="stem_relu")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", name="block_conv1")(x)
    x = keras.layers.BatchNormalization(name="block_bn1")(x)
    x = keras.layers.ReLU(name="block_relu1")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", name="block_conv2")(x)
    x = keras.layers.BatchNormalization(name="block_bn2")(x)
    x = keras.layers.ReLU(name="block_out")(keras.layers.Add(name="block_add")([x, skip]))
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs, name="tiny_resnet")
    if realistic:
        realistic_weights(model, seed=seed)
    return model
