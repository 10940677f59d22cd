"""Acceptance (issue 18): every transformer family through ``GraphOptimizer.default()`` and INT8.

For each family (Keras 3 / tf_keras encoders, ViT, keras-hub BERT; random trained-like weights,
dynamic sequence length, token ids + masks): the optimised graph computes what the original
computes (rel err <= 1e-4 on realistic inputs at sequence 16, and the optimiser's own check),
no projection is left a ``BatchMatMulV2``/``Einsum`` with a constant weight, and no ``Shape``
chain is left whose value depends only on known dimensions.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import transformer_models as tm

from tfcpu.graph._execute import run_graph
from tfcpu.graph._graphdef import GraphIndex, const_array, data_inputs
from tfcpu.graph.optimizer import GraphOptimizer
from tfcpu.graph.passes._shapes import infer, key


def constant_weight_projections(graph_def: Any) -> list[str]:
    index = GraphIndex(graph_def)
    found = []
    for node in graph_def.node:
        if node.op not in ("Einsum", "BatchMatMulV2", "BatchMatMul"):
            continue
        producer = index.producer(data_inputs(node)[1])
        while producer is not None and producer.op == "Identity":
            producer = index.producer(data_inputs(producer)[0])
        if producer is not None and producer.op == "Const":
            found.append(f"{node.name} ({node.op})")
    return found


def known_shape_chains(graph_def: Any) -> list[str]:
    """Shape nodes of fully known tensors, and slices/gathers of a Shape that pick only known dims."""
    static = infer(graph_def)
    index = GraphIndex(graph_def)
    found = []
    for node in graph_def.node:
        if node.op != "Shape":
            continue
        shape = static[key(data_inputs(node)[0])].shape
        if shape is not None and all(d is not None for d in shape):
            found.append(f"{node.name}: Shape of a fully known {shape}")
            continue
        dims = np.asarray([-1 if d is None else d for d in (shape or ())])
        for user, _ in index.data_consumers(node.name):
            args = [index.producer(t) for t in data_inputs(user)[1:]]
            if any(a is None or a.op != "Const" for a in args):
                continue
            values = [const_array(a) for a in args]
            if user.op == "GatherV2":
                picked = dims[values[0]]
            elif user.op == "StridedSlice" and not user.attr["shrink_axis_mask"].i:
                picked = dims[int(values[0][0]) : int(values[1][0]) or None : int(values[2][0])]
            elif user.op == "StridedSlice":
                picked = dims[int(values[0][0])]
            else:
                continue
            if np.all(np.asarray(picked) >= 0):
                found.append(f"{user.name}: picks known dims {np.asarray(picked).tolist()} of {node.name}")
    return found


def _rel_error(original: Any, optimised: Any, feeds: dict[str, Any]) -> float:
    want = run_graph(original.graph_def, feeds, original.output_names, grappler=False)
    got = run_graph(optimised.graph_def, feeds, original.output_names, grappler=False)
    return max(float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30)) for a, b in zip(want, got, strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("family", tm.FAMILIES)
def test_family_optimises_exactly_with_projections_as_matmul(family):
    model = tm.frozen(family)
    before = dict(model.op_counts())
    assert before.get("Einsum", 0) + before.get("BatchMatMulV2", 0) > 0  # the model has projections to rewrite
    folded = GraphOptimizer().remove_nodes().fold_constants().run(model, check=False).model
    assert constant_weight_projections(folded.graph_def)  # what the old plan left (weights folded, not rewritten)
    result = GraphOptimizer.default().run(model)
    assert result.check is not None and result.check.passed
    new = result.model
    assert constant_weight_projections(new.graph_def) == []
    assert known_shape_chains(new.graph_def) == []
    assert _rel_error(model, new, tm.feeds(model, batch=3, seq=16)) <= 1e-4
    ops = new.op_counts()
    assert ops["MatMul"] >= 4 * 2 + 2 * 2  # q/k/v/o and the MLP of 2 layers at least
    # What the runtime executes (Grappler on, so fused ops) agrees too. (Not against the exact maths:
    # TF's own fusion of tf_keras's epsilon-1e-6 LayerNorms uses epsilon 1e-3, in the original as well.)
    runtime = run_graph(new.graph_def, tm.feeds(model, batch=3, seq=16), new.output_names)
    before = run_graph(model.graph_def, tm.feeds(model, batch=3, seq=16), model.output_names)
    for a, b in zip(before, runtime, strict=True):
        assert float(np.abs(a - b).max() / np.abs(a).max()) <= 1e-4
    for rep in ("projections_to_matmul", "fold_shape_arithmetic"):
        assert result.report(rep).changed, rep
    gelu = {"keras3": "GeluExact", "tf_keras": "GeluApproximate", "vit": "GeluExact"}.get(family)
    if gelu and tm.onednn_on():  # what the runtime runs: Grappler fuses MatMul + BiasAdd + GELU (oneDNN only)
        fused = tm.runtime_ops(new.graph_def, [o.split(":")[0] for o in new.output_names])
        assert fused.count(("_FusedMatMul", ("BiasAdd", gelu))) == 2, fused
        if family != "tf_keras":  # 1 LayerNorm per block has Keras's epsilon 1e-3: fused (tf_keras's: all 4)
            assert fused.count(("_MklLayerNorm", ())) == 2, fused


@pytest.mark.slow
def test_int8_quantises_at_least_90_percent_of_the_encoder_matmul_flops():
    """Keras 3 encoder at the benchmark's width/sequence (2 of its 4 layers: the share does not depend on depth)."""
    import tfcpu
    from tfcpu.graph.flops import matmul_flops

    model = tm.frozen("keras3", layers=2, width=256)
    data = tm.feeds(model, batch=16, seq=128, seed=1)
    result = tfcpu.Quantizer().int8().calibrate(data, batches=2, batch_size=8).run(model)
    assert result.quantized
    share = matmul_flops(result.model.graph_def, {"token_ids": (8, 128), "mask": (8, 128)})
    print(f"INT8 share of MatMul/Einsum FLOPs: {share.share:.1%}", [r.to_dict() for r in share.rows])
    assert share.share >= 0.90, share.to_dict()
    fp32 = matmul_flops(GraphOptimizer.default().run(model, check=False).model.graph_def,
                        {"token_ids": (8, 128), "mask": (8, 128)})  # fmt: skip
    assert abs(share.total - fp32.total) <= 0.01 * fp32.total  # the same compute, counted in both graphs
