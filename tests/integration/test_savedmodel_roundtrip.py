"""Round trips of real models through a SavedModel export, read back by TensorFlow alone.

The trained digits CNN in FP32 and INT8 (calibrated on its training split) and ResNet-50 (random,
trained-like weights) are exported with ``Model.save(dir)``; a fresh interpreter that imports only
TensorFlow loads each with ``tf.saved_model.load`` and calls ``signatures["serving_default"]``. Its
outputs must equal `Runner`'s on the same graph: FP32 within 1e-5, INT8 as the Runner gives them
(the same kernels on the same inputs). INT8 graphs need oneDNN, so the children run with
``TF_ENABLE_ONEDNN_OPTS=1``, as the export's note tells a user to.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.digits import CHILD_PRELUDE

EXPORT = CHILD_PRELUDE + textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tfcpu
    from tfcpu.runtime import Runner

    kind, out = sys.argv[1], sys.argv[2]
    if kind == "digits":
        from tests.digits import train_digits
        net, x_train, x_test, y_train, y_test = train_digits()
        model = tfcpu.GraphOptimizer.default().run(tfcpu.load(net)).model
        x = x_test[:64]
        models = {"fp32": model}
        models["int8"] = tfcpu.Quantizer().int8().calibrate(x_train, batches=5, batch_size=32).run(model).model
    else:
        model = tfcpu.GraphOptimizer.default().run(tfcpu.load("keras:ResNet50")).model
        x = np.random.default_rng(0).uniform(0, 255, size=(2, 224, 224, 3)).astype(np.float32)
        models = {"fp32": model}
    np.save(out + "/x.npy", x)
    report = {}
    for name, m in models.items():
        with Runner(m) as runner:
            np.save(f"{out}/{name}.npy", runner.run(x)[m.output_names[0]])
        m.save(f"{out}/{name}")
        report[name] = {"ops": m.op_counts(), "input": m.inputs[0].name.split(":")[0]}
    print(json.dumps(report))
    """
)

PLAIN = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    assert "tfcpu" not in sys.modules
    directory, x_path, key = sys.argv[1], sys.argv[2], sys.argv[3]
    fn = tf.saved_model.load(directory).signatures["serving_default"]
    (out,) = fn(**{key: tf.constant(np.load(x_path))}).values()
    np.save(directory + ".plain.npy", out.numpy())
    print(json.dumps({"keys": sorted(fn.structured_input_signature[1])}))
    """
)


def _child(code: str, *args: str, cwd: Path | None = None) -> dict[str, Any]:
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=1200, cwd=cwd
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return data


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["digits", "resnet50"])
def test_exported_saved_model_gives_the_runners_outputs_in_plain_tensorflow(tmp_path: Path, kind: str) -> None:
    report = _child(EXPORT, kind, str(tmp_path))
    for name, info in report.items():
        plain = _child(PLAIN, str(tmp_path / name), str(tmp_path / "x.npy"), info["input"], cwd=Path("/"))
        assert plain["keys"] == [info["input"]]
        got = np.load(tmp_path / f"{name}.plain.npy")
        expected = np.load(tmp_path / f"{name}.npy")
        if name == "int8":
            assert any("Quantized" in op for op in info["ops"])  # the label is what ran: INT8 kernels
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        record = json.loads((tmp_path / name / "assets.extra" / "tfcpu.json").read_text())
        assert record["precision"] == name and record["needs_onednn"] is (name == "int8")
