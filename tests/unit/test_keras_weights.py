"""realistic_weights: trained-like batch norms and biases, so Grappler and the optimiser keep real work."""

from __future__ import annotations

import numpy as np
import pytest

import tfcpu
from tests.keras_models import tiny_resnet
from tfcpu.graph._keras_weights import realistic_weights


def _bn_and_bias(model):  # type: ignore[no-untyped-def]
    bns = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    biased = [layer for layer in model.layers if getattr(layer, "bias", None) is not None]
    return bns, biased


def test_no_batch_norm_is_identity_and_no_bias_is_zero() -> None:
    model = tiny_resnet(realistic=False)
    bns, biased = _bn_and_bias(model)
    assert all(np.all(np.asarray(b.moving_variance) == 1.0) for b in bns)  # Keras's init: identity
    counts = realistic_weights(model, seed=3)
    assert counts == {"batch_norms": 3, "layer_norms": 0, "biases": 3}  # block_conv1, block_conv2, probs
    for bn in bns:
        gamma, beta = np.asarray(bn.gamma), np.asarray(bn.beta)
        mean, var = np.asarray(bn.moving_mean), np.asarray(bn.moving_variance)
        assert not np.allclose(gamma, 1.0) and not np.allclose(beta, 0.0)
        assert not np.allclose(mean, 0.0) and not np.allclose(var, 1.0)
        assert np.all(var > 0) and np.all(gamma > 0)
    for layer in biased:
        assert np.all(np.asarray(layer.bias) != 0.0)


def test_same_seed_same_values_other_seed_other_values() -> None:
    a, b, c = tiny_resnet(realistic=False), tiny_resnet(realistic=False), tiny_resnet(realistic=False)
    realistic_weights(a, seed=1)
    realistic_weights(b, seed=1)
    realistic_weights(c, seed=2)
    va, vb, vc = (np.asarray(m.get_layer("stem_bn").moving_mean) for m in (a, b, c))
    assert np.array_equal(va, vb) and not np.array_equal(va, vc)


def _bias_adds(model: tfcpu.Model) -> int:
    return sum(1 for n in model.graph_def.node if n.op == "BiasAdd")


def test_optimised_graph_keeps_its_bias_adds_and_folds_change_weights() -> None:
    realistic = tfcpu.GraphOptimizer.default().run(tfcpu.load(tiny_resnet(realistic=True))).model
    # 3 convolutions (batch norms folded into a bias) + the dense head
    assert _bias_adds(realistic) == 4
    identity = tfcpu.GraphOptimizer.default().run(tfcpu.load(tiny_resnet(realistic=False))).model
    # the fold of a trained-like batch norm changes the kernel; of an identity batch norm (eps aside) it barely does
    kernels = {}
    for name, m in (("realistic", realistic), ("identity", identity)):
        raw = tiny_resnet(realistic=name == "realistic").get_layer("stem_conv").kernel
        folded = next(
            tfcpu._lazy.import_tensorflow().make_ndarray(n.attr["value"].tensor)  # type: ignore[attr-defined]
            for n in m.graph_def.node
            if n.op == "Const" and "stem_conv" in n.name and len(n.attr["value"].tensor.tensor_shape.dim) == 4
        )
        kernels[name] = float(np.max(np.abs(folded - np.asarray(raw))))
    assert kernels["realistic"] > 0.01 > kernels["identity"]


@pytest.mark.slow
def test_keras_application_models_carry_realistic_weights() -> None:
    from tfcpu.graph.load import resolve_application

    model = tfcpu.load("keras:MobileNetV3Small")
    assert "randomised" in model.metadata["weights"]
    keras_model = resolve_application("MobileNetV3Small")
    bns = [layer for layer in keras_model.layers if type(layer).__name__ == "BatchNormalization"]
    assert bns and not any(np.allclose(np.asarray(b.moving_variance), 1.0) for b in bns)
    plain = resolve_application("MobileNetV3Small", realistic_weights=False)
    assert all(
        np.allclose(np.asarray(b.moving_variance), 1.0)
        for b in plain.layers
        if type(b).__name__ == "BatchNormalization"
    )
    assert tfcpu.load("keras:MobileNetV3Small", realistic_weights=False).metadata["weights"] == "random (Keras init)"
