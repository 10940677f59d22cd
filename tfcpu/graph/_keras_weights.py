"""Trained-like batch-norm statistics and biases for random-weight Keras models.

``tf.keras.applications.<Name>(weights=None)`` initialises every batch norm to identity
(mean 0, variance 1, gamma 1, beta 0) and every bias to zero. Grappler and tfcpu's passes then
fold or drop those ops as no-ops, so a benchmark or a numerical check on such a model measures a
graph no trained model has. `realistic_weights()` gives them seeded values in the ranges
trained networks show, so folds change weights and every BiasAdd survives.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = ["realistic_weights"]

log = logging.getLogger(__name__)

_BN_NAMES = ("BatchNormalization", "SyncBatchNormalization")


_BN_VARIABLES = ("gamma", "beta", "moving_mean", "moving_variance")
# layer type -> (the count it adds to, its normalisation variables)
_NORMS = {
    **{name: ("batch_norms", _BN_VARIABLES) for name in _BN_NAMES},
    "LayerNormalization": ("layer_norms", ("gamma", "beta")),
}


def _bn_value(rng: np.random.Generator, name: str, shape: tuple[int, ...]) -> Any:
    """Scales (gamma, variance) ~ U(0.5, 1.5); shifts (beta, mean) ~ N(0, 0.1)."""
    if name in ("gamma", "moving_variance"):
        return rng.uniform(0.5, 1.5, shape)
    return rng.normal(0.0, 0.1, shape)


def _assign(variable: Any, value: Any) -> None:
    variable.assign(np.asarray(value).astype(np.dtype(str(getattr(variable.dtype, "name", variable.dtype)))))


def _shape(variable: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in variable.shape)


def _layers(model: Any) -> list[Any]:
    """Every layer, nested models included (Keras 3 and tf_keras both have ``_flatten_layers``)."""
    flatten = getattr(model, "_flatten_layers", None)
    if flatten is not None:
        return [layer for layer in flatten(include_self=False, recursive=True)]
    return list(getattr(model, "layers", []))


def realistic_weights(model: Any, *, seed: int = 0) -> dict[str, int]:
    """Give a Keras model's batch norms and biases trained-like values, in place.

    Batch norms: gamma ~ U(0.5, 1.5), beta ~ N(0, 0.1), moving mean ~ N(0, 0.1), moving variance
    ~ U(0.5, 1.5). Layer norms: gamma ~ U(0.5, 1.5), beta ~ N(0, 0.1). Biases of every layer that
    has one (Dense, EinsumDense, Conv, DepthwiseConv...): ~ N(0, 0.05). Kernels and embeddings keep
    their initialiser's values.

    Args:
        model: a Keras 3 or tf_keras model.
        seed: the random seed; the same seed gives the same values.

    Returns:
        How many layers were changed: ``{"batch_norms": n, "layer_norms": k, "biases": m}``.
    """
    rng = np.random.default_rng(seed)
    counts = {"batch_norms": 0, "layer_norms": 0, "biases": 0}
    for layer in _layers(model):
        norm = _NORMS.get(type(layer).__name__)
        if norm is not None:
            kind, names = norm
            for name in names:
                variable = getattr(layer, name, None)
                if variable is not None:
                    _assign(variable, _bn_value(rng, name, _shape(variable)))
            counts[kind] += 1
            continue
        bias = getattr(layer, "bias", None)
        if bias is not None and hasattr(bias, "assign") and getattr(layer, "use_bias", True):
            _assign(bias, rng.normal(0.0, 0.05, _shape(bias)))
            counts["biases"] += 1
    log.debug("realistic_weights: %s randomised (seed %d)", counts, seed)
    return counts
