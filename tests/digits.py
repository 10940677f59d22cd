"""The digits CNN of the accuracy acceptance tests: scikit-learn's bundled digits (8x8 upsampled to 16x16)
and a small conv/batch-norm network trained on them with op determinism on (the same weights every run).

Imported by the fresh interpreters those tests start (op determinism is a process-wide switch), which put
the repository root on ``sys.path`` first (``CHILD_PRELUDE``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHILD_PRELUDE = f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n"


def train_digits() -> tuple[Any, Any, Any, Any, Any]:
    """Train the digits CNN.

    Returns:
        ``(net, x_train, x_test, y_train, y_test)``: the fitted Keras model and the 70/30 stratified split.
    """
    import keras
    import numpy as np
    import tensorflow as tf
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.images.astype("float32") / 16.0
    x = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)[..., None]  # 8x8 -> 16x16
    y = digits.target.astype("int64")
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()  # same weights every run: no flaky accuracy
    net = keras.Sequential(
        [
            keras.Input((16, 16, 1)),
            keras.layers.Conv2D(16, 3, padding="same"),
            keras.layers.BatchNormalization(momentum=0.8),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, padding="same"),
            keras.layers.BatchNormalization(momentum=0.8),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    net.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    net.fit(x_train, y_train, epochs=12, batch_size=32, verbose=0)
    return net, x_train, x_test, y_train, y_test
