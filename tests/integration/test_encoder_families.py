"""Encoders that take segment / token-type ids optimise exactly; Keras dict inputs load (issue 27).

The optimiser's numerical check used to feed every integer input random values in [0, 8): a
segment-id table has 2 (BERT, ALBERT, ELECTRA) or 4 (FNet) rows, so TensorFlow's GatherV2 failed
("the graph fails when TensorFlow runs it [.../segment_embedding...]") and those models could not
be optimised at all. The check now reads each id's table size from the graph. Each model here is
small (2 layers, width 64, vocabulary 1000, dynamic sequence checked at length 16) with trained-like
layer norms and biases (tests/encoder_families.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tfcpu
from tests.encoder_families import FAMILIES, VOCAB, build
from tfcpu.errors import ConfigError
from tfcpu.graph._input_ranges import input_ranges
from tfcpu.graph.optimizer import GraphOptimizer

SEQ = 16


def _shapes(model: tfcpu.Model) -> dict[str, tuple[int, int]]:
    return {spec.name: (2, SEQ) for spec in model.inputs}


@pytest.fixture(scope="module")
def loaded() -> dict[str, tfcpu.Model]:
    return {}


def _model(loaded: dict[str, tfcpu.Model], family: str) -> tfcpu.Model:
    if family not in loaded:
        loaded[family] = tfcpu.load(build(family))
    return loaded[family]


@pytest.mark.parametrize("family", FAMILIES)
def test_family_optimises_exactly(loaded: dict[str, tfcpu.Model], family: str) -> None:
    model = _model(loaded, family)
    assert {s.node for s in model.inputs} >= {"segment_ids", "token_ids"}

    result = GraphOptimizer.default().run(model, shapes=_shapes(model))

    assert result.check is not None
    assert result.check.passed, result.check.line()
    assert result.check.max_rel_error <= 1e-4
    assert not result.check.degenerate
    assert result.nodes_after < result.nodes_before  # the passes did something the check then proved


def test_ids_and_masks_come_from_the_graph(loaded: dict[str, tfcpu.Model]) -> None:
    ranges = input_ranges(_model(loaded, "bert_classifier"))
    assert ranges["segment_ids:0"].kind == "index" and ranges["segment_ids:0"].high == 2
    assert "segment_embedding" in ranges["segment_ids:0"].why
    assert ranges["token_ids:0"].kind == "index" and ranges["token_ids:0"].high == VOCAB
    assert ranges["padding_mask:0"].kind == "mask"
    fnet = input_ranges(_model(loaded, "fnet"))
    assert fnet["segment_ids:0"].high == 4  # FNet has 4 segment types

    feeds = tfcpu.graph.random_inputs(
        _model(loaded, "bert_classifier"), 4, shapes={"token_ids": (4, SEQ)}, unknown_dims=SEQ
    )
    assert feeds["segment_ids:0"].max() < 2 and feeds["token_ids:0"].max() < VOCAB
    assert set(np.unique(feeds["padding_mask:0"])) <= {0, 1}
    assert feeds["token_ids:0"].max() >= 8  # ids cover the vocabulary, not [0, 8) as before


def test_user_check_inputs_from_the_api_and_the_cli(loaded: dict[str, tfcpu.Model], tmp_path: Path) -> None:
    from tfcpu.cli.main import main

    model = _model(loaded, "electra")
    rng = np.random.default_rng(1)
    sample = {
        "token_ids": rng.integers(0, VOCAB, (3, 12)).astype(np.int32),
        "segment_ids": np.repeat([[0] * 6 + [1] * 6], 3, axis=0).astype(np.int32),
        "padding_mask": np.ones((3, 12), np.int32),
    }
    result = GraphOptimizer.default().run(model, check_inputs=sample)
    assert result.check is not None and result.check.passed
    assert result.check.comparison is not None
    assert result.check.comparison.outputs[0].shape[0] == 3  # the user's 3 samples ran, not a random batch

    pb, npz, out = tmp_path / "electra.pb", tmp_path / "sample.npz", tmp_path / "opt.pb"
    pb.write_bytes(model.graph_def.SerializeToString())
    np.savez(npz, **sample)
    argv = ["optimize", str(pb), "--inputs", "padding_mask", "segment_ids", "token_ids"]
    argv += ["--outputs", *[o.node for o in model.outputs], "-o", str(out), "--check-inputs", str(npz)]
    assert main(argv) == 0
    assert out.exists()
    assert main([*argv[:-1], str(tmp_path / "missing.npz")]) == 2  # refused before the model loads


def _tiny_gather_graph() -> Any:
    """ids (int32) -> GatherV2(params = Relu(Const 3x4)): a table whose size is not a Const."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        ids = tf.compat.v1.placeholder(tf.int32, (None, 5), name="ids")
        table = tf.nn.relu(tf.constant(np.arange(12, dtype=np.float32).reshape(3, 4)), name="table")
        tf.identity(tf.gather(table, ids) * 2.0, name="out")
    return graph.as_graph_def()


def test_a_check_without_valid_inputs_names_the_input_and_the_fix() -> None:
    model = tfcpu.load(_tiny_gather_graph(), inputs=["ids"], outputs=["out"])
    with pytest.raises(ConfigError) as info:
        GraphOptimizer.default().run(model)
    message = str(info.value)
    assert "ids:0" in message and "whose size is not a constant" in message
    assert "check_inputs=" in message and "--check-inputs" in message
    ok = GraphOptimizer.default().run(model, check_inputs={"ids": np.array([[0, 1, 2, 2, 1]], np.int32)})
    assert ok.check is not None and ok.check.passed


def test_load_keras_hub_backbone_with_dict_inputs() -> None:
    import keras_hub

    from tfcpu.graph._execute import run_graph
    from tfcpu.graph._keras_weights import realistic_weights

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=VOCAB, num_layers=2, num_heads=2, hidden_dim=64, intermediate_dim=128, max_sequence_length=32
    )
    realistic_weights(backbone, seed=0)
    model = tfcpu.load(backbone)  # "The structure of inputs doesn't match the expected structure" before

    assert sorted(s.node for s in model.inputs) == ["padding_mask", "segment_ids", "token_ids"]
    feeds = tfcpu.graph.random_inputs(model, 2, unknown_dims=SEQ)
    got = run_graph(model.graph_def, feeds, model.output_names)
    want = backbone({s.node: feeds[s.name] for s in model.inputs}, training=False)
    by_shape = {tuple(np.shape(v)): np.asarray(v) for v in want.values()}
    for value in got:
        np.testing.assert_allclose(value, by_shape[value.shape], rtol=1e-4, atol=1e-5)
