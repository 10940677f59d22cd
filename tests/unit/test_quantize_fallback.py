"""The accuracy-driven loop: nodes go back to FP32 one at a time until the metric is within tolerance.

The evaluation here reads the graph it is given (a stand-in for an accuracy that only recovers
once the classifier MatMul is back in FP32), so the test pins the loop's behaviour exactly:
trial 1 all INT8 (rejected), trial 2 MatMul in FP32 (accepted). Evaluating INT8 graphs needs
oneDNN, hence a fresh interpreter with TF_ENABLE_ONEDNN_OPTS=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = """
import json
from tests.graphs import tiny_convnet
from tfcpu import Quantizer

def metric(model):
    ops = {n.name: n.op for n in model.graph_def.node}
    return 1.0 if ops.get("MatMul") == "MatMul" else 0.5

def never(model):
    ops = {n.name: n.op for n in model.graph_def.node}
    return 1.0 if not any(op.startswith("Quantized") for op in ops.values()) else 0.5

plan = Quantizer().calibrate("synthetic", batches=1).evaluate(metric).tolerance(0.01, max_trials=4)
ok = plan.run(tiny_convnet())
bad = plan.evaluate(never).tolerance(0.01, max_trials=2).run(tiny_convnet())
print(json.dumps({"ok": ok.to_dict(), "bad": bad.to_dict()}))
"""


def test_fallback_keeps_nodes_in_fp32_until_within_tolerance() -> None:
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=env, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout.strip().splitlines()[-1])

    ok = data["ok"]
    assert [t["fp32_nodes"] for t in ok["trials"]] == [[], ["MatMul"]]
    assert [t["accepted"] for t in ok["trials"]] == [False, True]
    assert ok["kept_fp32_nodes"] == ["MatMul"]
    assert ok["fp32_metric"] == 1.0 and ok["int8_metric"] == 1.0 and ok["quantized"]
    rows = {r["op"]: r for r in ok["op_types"]}
    assert rows["MatMul"]["kept_fp32"] == 1 and rows["Conv2D"]["quantized"] == 1

    bad = data["bad"]
    assert len(bad["trials"]) == 2 and not any(t["accepted"] for t in bad["trials"])
    assert any("outside the tolerance" in w for w in bad["warnings"])
