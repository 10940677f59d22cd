"""The offline BF16 rewrite: BF16 constants instead of Casts, fusable chains, FP32 borders, agreement.

The rewrite is Grappler's oneDNN pass, so the checks run in one child with ``TF_ENABLE_ONEDNN_OPTS=1``
(the same on every CPU and under both oneDNN legs of CI); the child reports what it found as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tfcpu
from tfcpu.quantize._bf16 import agreement

CHILD = """
import json
import numpy as np
import tensorflow as tf
import tfcpu
from tests.keras_models import tiny_resnet
from tfcpu.quantize._bf16 import _grappler_amp, agreement, bf16_rewrite, cast_report

fp32 = tfcpu.GraphOptimizer.default().run(tfcpu.load(tiny_resnet())).model
before = fp32.graph_def.SerializeToString(deterministic=True)
amp = _grappler_amp(fp32.graph_def, fp32.output_names)
new = bf16_rewrite(fp32.graph_def, fp32.output_names, source="tiny")
by_name = {n.name: n for n in new.node}
chains = []
for node in new.node:
    if node.op == "Relu" and by_name[node.input[0]].op == "BiasAdd":
        bias_add = by_name[node.input[0]]
        producer = by_name[bias_add.input[0]]
        chains.append([producer.op, producer.attr["T"].type, bias_add.attr["T"].type, node.attr["T"].type])
out = {
    "amp": cast_report(amp), "new": cast_report(new), "input_unchanged": fp32.graph_def.SerializeToString(
        deterministic=True) == before, "fp32_casts": cast_report(fp32.graph_def)["casts"], "chains": chains,
    "softmax_T": next(n.attr["T"].type for n in new.node if n.op == "Softmax"),
    "fp32_consts_left": sum(1 for n in new.node if n.op == "Const" and n.attr["dtype"].type == 1
                            and "folded_bias" in n.name),
}
x = np.random.default_rng(1).standard_normal((32, 32, 32, 3)).astype(np.float32)
def run(gd, meta=None):
    g = tf.Graph()
    with g.as_default():
        tf.compat.v1.import_graph_def(gd, name="")
    with tf.compat.v1.Session(graph=g) as s:
        opts = tf.compat.v1.RunOptions(output_partition_graphs=True)
        return s.run(list(fp32.output_names), {fp32.input_names[0]: x}, options=opts, run_metadata=meta)
try:
    meta = tf.compat.v1.RunMetadata()
    ref, got = run(fp32.graph_def), run(new, meta)
    out["agreement"] = agreement(ref, got)
    out["dtype"], out["row_sums"] = str(got[0].dtype), got[0].sum(axis=1).tolist()
    out["ran"] = [[n.op, n.attr["T"].type if "T" in n.attr else 0, [f.decode() for f in n.attr["fused_ops"].list.s]]
                  for g in meta.partition_graphs for n in g.node if n.op not in ("Const", "_Recv", "_Send")]
except Exception as exc:
    out["run_error"] = f"{type(exc).__name__}: {exc}"[:500]
print(json.dumps(out))
"""
_BF16 = 14


@pytest.fixture(scope="module")
def facts() -> dict[str, Any]:
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300,
        cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return data


def test_constants_are_bf16_and_casts_only_at_the_borders(facts: dict[str, Any]) -> None:
    assert facts["amp"]["casts_of_constants"] == 8  # what Grappler alone leaves: one Cast per weight and bias
    new = facts["new"]
    assert new["casts_of_constants"] == 0 and new["bf16_constants"] == 8
    assert new["casts"] == 2  # the input to BF16, the logits back to FP32
    assert new["casts_inside_fusable_chains"] == 0
    assert facts["fp32_consts_left"] == 0  # the FP32 copies of the folded constants are gone
    assert facts["input_unchanged"] and facts["fp32_casts"] == 0


def test_fusable_chains_stay_in_bf16(facts: dict[str, Any]) -> None:
    assert len(facts["chains"]) == 2  # stem and first block conv: Conv2D -> BiasAdd -> Relu
    for op, *types in facts["chains"]:
        assert op == "Conv2D" and types == [_BF16, _BF16, _BF16]


def test_output_softmax_runs_in_fp32(facts: dict[str, Any]) -> None:
    assert facts["softmax_T"] == 1


def _bf16_cpu() -> bool:
    return tfcpu.Topology.detect().precisions["bf16"].accelerated


def test_bf16_runs_fused_and_agrees_with_fp32(facts: dict[str, Any]) -> None:
    if not _bf16_cpu():
        # without AVX512_BF16/AMX oneDNN has no fast BF16 kernels (.bf16() is refused there); the rewrite itself
        # does not depend on the CPU, so only that is checked here
        assert facts["new"]["bf16_ops"] >= 10
        return
    assert "run_error" not in facts, facts.get("run_error")
    stats = facts["agreement"]
    assert stats["cosine"] >= 0.999
    assert stats["top1_agreement"] >= 0.9
    assert 0.0 < stats["max_abs_diff"] < 0.05  # BF16 did run: outputs differ, a little
    assert facts["dtype"] == "float32" and np.allclose(facts["row_sums"], 1.0, atol=1e-5)
    # TensorFlow's remapper fused every BF16 chain into one oneDNN op with post-ops
    fused = [(t, ops) for op, t, ops in facts["ran"] if "FusedConv2D" in op]
    assert len(fused) == 3 and all(t == _BF16 and ops[0] == "BiasAdd" for t, ops in fused)
    assert not any(op == "BiasAdd" for op, _, _ in facts["ran"])


def test_agreement_measures_disagreement() -> None:
    a = np.array([[0.9, 0.1], [0.2, 0.8]])
    stats = agreement([a], [a[:, ::-1]])
    assert stats["top1_agreement"] == 0.0 and stats["cosine"] < 0.7
    assert agreement([a], [a])["cosine"] == pytest.approx(1.0)
