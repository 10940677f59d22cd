"""The built-in transformer encoder (``tfcpu demo --model encoder``, ``keras:encoder``) and the demo's unit."""

from __future__ import annotations

import numpy as np
import pytest

import tfcpu
from tfcpu.demo import default_batch_size
from tfcpu.demo._result import unit_of
from tfcpu.errors import ConfigError
from tfcpu.graph.encoder import VOCAB, build_encoder
from tfcpu.graph.model import TensorSpec


def _layers(model, kind: str):  # type: ignore[no-untyped-def]
    return [layer for layer in model._flatten_layers(include_self=False) if type(layer).__name__ == kind]


def test_the_encoder_has_token_and_mask_inputs_and_trained_like_norms() -> None:
    model = build_encoder(layers=1, width=32, heads=2, seq_len=16, classes=3)
    assert [(t.name, str(t.dtype), tuple(t.shape)) for t in model.inputs] == [
        ("token_ids", "int32", (None, 16)),
        ("mask", "int32", (None, 16)),
    ]
    assert tuple(model.outputs[0].shape) == (None, 3)
    norms = _layers(model, "LayerNormalization")
    assert len(norms) == 2 and sorted(n.epsilon for n in norms) == [1e-6, 1e-3]
    for norm in norms:  # Keras's init (gamma 1, beta 0) would let a wrong LayerNorm rewrite pass
        assert not np.allclose(np.asarray(norm.gamma), 1.0) and not np.allclose(np.asarray(norm.beta), 0.0)
    dense = _layers(model, "Dense") + _layers(model, "EinsumDense")
    assert dense and all(np.all(np.asarray(d.bias) != 0.0) for d in dense)


def test_the_mask_changes_the_logits_and_the_seed_the_weights() -> None:
    model = build_encoder(layers=1, width=32, heads=2, seq_len=16)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, VOCAB, (2, 16)).astype("int32")
    full = np.ones((2, 16), "int32")
    half = full.copy()
    half[:, 8:] = 0
    a, b = (np.asarray(model([ids, m])) for m in (full, half))
    assert not np.allclose(a, b)  # the mask is used by the attention
    other = build_encoder(layers=1, width=32, heads=2, seq_len=16, seed=1)
    assert not np.allclose(np.asarray(other([ids, full])), a)


def test_plain_weights_keep_keras_init() -> None:
    model = build_encoder(layers=1, width=32, heads=2, seq_len=8, realistic=False)
    assert all(np.allclose(np.asarray(n.gamma), 1.0) for n in _layers(model, "LayerNormalization"))


def test_a_dynamic_sequence_length() -> None:
    model = build_encoder(layers=1, width=32, heads=2, seq_len=None)
    assert tuple(model.inputs[0].shape) == (None, None)


@pytest.mark.parametrize(
    ("sizes", "says"),
    [
        ({"width": 30, "heads": 4}, "not a multiple of heads 4"),
        ({"layers": 0}, "layers must be >= 1"),
        ({"seq_len": 0}, "seq_len must be >= 1"),
    ],
)
def test_sizes_that_cannot_build_are_refused(sizes: dict[str, int], says: str) -> None:
    with pytest.raises(ConfigError, match="do not build") as info:
        build_encoder(**sizes)
    assert says in str(info.value)


def test_keras_encoder_loads_by_name_with_its_metadata() -> None:
    model = tfcpu.load("keras:encoder")
    assert [s.name for s in model.inputs] == ["token_ids:0", "mask:0"]
    assert [s.shape for s in model.inputs] == [(None, 128), (None, 128)]
    assert model.source == "keras:encoder" and "randomised" in model.metadata["weights"]
    assert any(n.op == "Einsum" for n in model.graph_def.node)  # attention as Keras 3 freezes it
    with pytest.raises(ConfigError, match="unknown Keras application") as info:
        tfcpu.load("keras:encodr")
    assert "encoder" in str(info.value)


def test_the_demo_counts_images_or_sequences() -> None:
    image = TensorSpec("x:0", "float32", (None, 224, 224, 3))
    tokens = TensorSpec("token_ids:0", "int32", (None, 128))
    mask = TensorSpec("mask:0", "int32", (None, 128))
    assert unit_of([image]) == "img/s"
    assert unit_of([tokens, mask]) == "seq/s"
    assert unit_of([TensorSpec("x:0", "float32", (None, 10))]) == "items/s"
    assert default_batch_size("encoder") == default_batch_size("keras:encoder") == 8
    assert default_batch_size("ResNet50") == 16


def test_the_predict_child_feeds_every_input_by_dtype() -> None:
    from tfcpu.demo._predict import _batch

    model = build_encoder(layers=1, width=32, heads=2, seq_len=16)
    ids, mask = _batch(model.inputs, 4)
    assert ids.shape == mask.shape == (4, 16) and ids.dtype == np.int32 and ids.max() < VOCAB
    with pytest.raises(ValueError, match="unknown dimension"):
        _batch(build_encoder(layers=1, width=32, heads=2, seq_len=None).inputs, 4)
