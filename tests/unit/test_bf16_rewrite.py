"""The offline BF16 rewrite: BF16 constants instead of Casts, fusable chains, FP32 borders, agreement."""

from __future__ import annotations

import numpy as np
import pytest

import tfcpu
from tests.keras_models import tiny_resnet
from tfcpu.quantize._bf16 import _grappler_amp, agreement, bf16_rewrite, cast_report

_BF16 = 14


def _run(graph_def, model: tfcpu.Model, x: np.ndarray) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    tf = tfcpu._lazy.import_tensorflow()  # type: ignore[attr-defined]
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        return list(sess.run(list(model.output_names), {model.input_names[0]: x}))


@pytest.fixture(scope="module")
def fp32() -> tfcpu.Model:
    return tfcpu.GraphOptimizer.default().run(tfcpu.load(tiny_resnet())).model


def test_constants_are_bf16_and_casts_only_at_the_borders(fp32: tfcpu.Model) -> None:
    before = fp32.graph_def.SerializeToString(deterministic=True)
    amp = cast_report(_grappler_amp(fp32.graph_def, fp32.output_names))
    assert amp["casts_of_constants"] == 8  # what Grappler alone leaves: one Cast per weight and bias
    new = bf16_rewrite(fp32.graph_def, fp32.output_names, source="tiny")
    report = cast_report(new)
    assert report["casts_of_constants"] == 0 and report["bf16_constants"] == 8
    assert report["casts"] == 2  # the input to BF16, the logits back to FP32
    assert report["casts_inside_fusable_chains"] == 0
    assert not any(n.op == "Const" and n.attr["dtype"].type == 1 and "folded_bias" in n.name for n in new.node)
    assert fp32.graph_def.SerializeToString(deterministic=True) == before  # the input GraphDef is not changed
    assert cast_report(fp32.graph_def)["casts"] == 0


def test_fusable_chains_stay_in_bf16(fp32: tfcpu.Model) -> None:
    new = bf16_rewrite(fp32.graph_def, fp32.output_names, source="tiny")
    by_name = {n.name: n for n in new.node}
    for node in new.node:
        if node.op == "Relu" and by_name[node.input[0]].op == "BiasAdd":
            bias_add = by_name[node.input[0]]
            producer = by_name[bias_add.input[0]]
            assert producer.op in ("Conv2D", "MatMul")
            assert {node.attr["T"].type, bias_add.attr["T"].type, producer.attr["T"].type} == {_BF16}


def test_output_softmax_runs_in_fp32_and_outputs_keep_their_type(fp32: tfcpu.Model) -> None:
    new = bf16_rewrite(fp32.graph_def, fp32.output_names, source="tiny")
    soft = next(n for n in new.node if n.op == "Softmax")
    assert soft.attr["T"].type == 1
    x = np.random.default_rng(0).standard_normal((4, 32, 32, 3)).astype(np.float32)
    out = _run(new, fp32, x)
    assert out[0].dtype == np.float32 and out[0].shape == (4, 10)
    assert np.allclose(out[0].sum(axis=1), 1.0, atol=1e-5)


def test_bf16_agrees_with_fp32(fp32: tfcpu.Model) -> None:
    x = np.random.default_rng(1).standard_normal((32, 32, 32, 3)).astype(np.float32)
    ref = _run(fp32.graph_def, fp32, x)
    new = _run(bf16_rewrite(fp32.graph_def, fp32.output_names, source="tiny"), fp32, x)
    stats = agreement(ref, new)
    assert stats["cosine"] >= 0.999
    assert stats["top1_agreement"] >= 0.9
    assert 0.0 < stats["max_abs_diff"] < 0.05  # BF16 did run: outputs differ, a little


def test_agreement_measures_disagreement() -> None:
    a = np.array([[0.9, 0.1], [0.2, 0.8]])
    stats = agreement([a], [a[:, ::-1]])
    assert stats["top1_agreement"] == 0.0 and stats["cosine"] < 0.7
    assert agreement([a], [a])["cosine"] == pytest.approx(1.0)
