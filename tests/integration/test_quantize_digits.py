"""Acceptance: INT8 on a real trained model keeps its accuracy.

A small CNN with batch norms is trained inside the test on scikit-learn's bundled digits
(8x8 upsampled to 16x16), then quantised by tfcpu with real calibration data and an
accuracy evaluation on a held-out split. INT8 graphs need oneDNN, which stock TensorFlow
leaves off on CPUs without VNNI, so the work runs in a fresh interpreter started with
TF_ENABLE_ONEDNN_OPTS=1 (the pytest process may have imported TensorFlow already).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.digits import CHILD_PRELUDE

CHILD = CHILD_PRELUDE + textwrap.dedent(
    """
    import json, sys

    import tfcpu
    from tests.digits import train_digits
    from tfcpu.runtime import Runner

    net, x_train, x_test, y_train, y_test = train_digits()
    model = tfcpu.load(net)
    before = model.to_bytes()

    def accuracy(m):
        with Runner(m) as runner:
            probs = runner.run(x_test)[m.output_names[0]]
        return float((probs.argmax(axis=1) == y_test).mean())

    result = (
        tfcpu.Quantizer()
        .int8()
        .calibrate(x_train, batches=10, batch_size=32)
        .evaluate(accuracy)
        .tolerance(relative_loss=0.01)
        .run(model)
    )
    data = result.to_dict()
    data["input_unchanged"] = model.to_bytes() == before
    data["keras_accuracy"] = float(net.evaluate(x_test, y_test, verbose=0)[1])
    data["int8_rerun"] = accuracy(result.model)
    json.dump(data, open(sys.argv[1], "w"))
    """
)


def _run_child(code: str, tmp_path: Path) -> dict[str, Any]:
    """Run ``code`` in a fresh oneDNN process (the result's JSON path as its argument) and read what it wrote."""
    script = tmp_path / "child.py"
    script.write_text(code)
    out = tmp_path / "result.json"
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, str(script), str(out)], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    data: dict[str, Any] = json.loads(out.read_text())
    return data


@pytest.mark.slow
def test_int8_accuracy_on_trained_digits_cnn(tmp_path: Path) -> None:
    data = _run_child(CHILD, tmp_path)

    assert data["input_unchanged"]
    assert data["onednn_enabled"] is True
    assert data["quantized"] is True and data["precision"] == "int8"
    # FP32 accuracy of the frozen (optimised) graph on the held-out split.
    assert data["fp32_metric"] >= 0.95, data
    assert abs(data["fp32_metric"] - data["keras_accuracy"]) < 1e-6
    # INT8 within 1 point of FP32, and the number is reproducible from the returned model.
    assert data["int8_metric"] >= data["fp32_metric"] - 0.01, data
    assert data["int8_rerun"] == pytest.approx(data["int8_metric"])
    rows = {r["op"]: r for r in data["op_types"]}
    assert rows["Conv2D"]["total"] == 2 and rows["Conv2D"]["quantized"] >= 1
    # the batch norms were folded before INC, so nothing of them is left between the convs
    assert not any(op in data["model"]["op_counts"] for op in ("Rsqrt", "FusedBatchNormV3"))
    assert any(op.startswith("Quantized") or op.startswith("_Quantized") for op in data["quantized_ops"])
    assert data["top1_agreement"] is not None and data["top1_agreement"] >= 0.95
    assert data["calibration"]["synthetic"] is False and data["calibration"]["batches"] == 10
    assert not any("synthetic" in w for w in data["warnings"])


BF16_CHILD = CHILD_PRELUDE + textwrap.dedent(
    """
    import json, sys

    import tfcpu
    from tests.digits import train_digits
    from tfcpu.errors import ConfigError
    from tfcpu.runtime import Runner

    net, x_train, x_test, y_train, y_test = train_digits()
    model = tfcpu.load(net)

    def accuracy(m):
        with Runner(m) as runner:
            probs = runner.run(x_test)[m.output_names[0]]
        return float((probs.argmax(axis=1) == y_test).mean())

    data = {"accelerated": bool(tfcpu.Topology.detect().precisions["bf16"].accelerated)}
    try:
        result = tfcpu.Quantizer().bf16().run(model)
    except ConfigError as exc:
        data["refused"] = str(exc)
    else:
        data["fp32"] = accuracy(model)
        data["bf16"] = accuracy(result.model)
        data["precision"] = result.precision
        data["bf16_types"] = sum(
            1 for n in result.model.graph_def.node for a in n.attr.values() if a.type == 14  # DT_BFLOAT16
        )
        data["cosine"] = result.cosine
    json.dump(data, open(sys.argv[1], "w"))
    """
)


@pytest.mark.slow
def test_bf16_accuracy_on_trained_digits_cnn(tmp_path: Path) -> None:
    """BF16 (issue 17): within 0.5 point of FP32 where the CPU has AVX512_BF16/AMX_BF16, refused elsewhere."""
    data = _run_child(BF16_CHILD, tmp_path)
    if not data["accelerated"]:
        assert "BF16" in data["refused"], data
        return
    assert data["precision"] == "bf16" and data["bf16_types"] > 0, data  # the label is read from the graph
    assert data["fp32"] >= 0.95, data
    assert data["bf16"] >= data["fp32"] - 0.005, data
    assert data["cosine"] is not None and data["cosine"] >= 0.99, data
