"""Acceptance of the OpenVINO backend on real(istic) models.

* FP32 through OpenVINO agrees with the TensorFlow graph within rel err 1e-4 on a small ResNet-like
  Keras 3 model with trained-like batch norms (random γ, β, moving mean/variance) and conv biases;
* the digits CNN (trained in the test, as in test_quantize_digits.py) quantised to INT8 by NNCF through
  ``Quantizer().backend("openvino")`` with NNCF's accuracy control stays within 1 point of FP32 accuracy;
* ``tfcpu quantize MODEL.keras -o OUT.xml --backend openvino`` then ``tfcpu.load(OUT.xml)`` runs timed.

Training runs in a fresh interpreter (op determinism is a process-wide switch).
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


def resnet_like(seed: int = 0) -> Any:
    """Stem conv → 2 residual blocks (conv-BN-relu-conv-BN + shortcut, one with a strided 1x1 projection)
    → global pool → dense softmax; every batch norm and bias randomised."""
    import keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers
    x = inp = keras.Input((32, 32, 3))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(16, 3, padding="same")(x)))
    for filters, stride in ((16, 1), (32, 2)):
        y = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(filters, 3, stride, padding="same")(x)))
        y = layers.BatchNormalization()(layers.Conv2D(filters, 3, padding="same")(y))
        shortcut = x if stride == 1 else layers.BatchNormalization()(layers.Conv2D(filters, 1, stride)(x))
        x = layers.ReLU()(layers.Add()([y, shortcut]))
    out = layers.Dense(10, activation="softmax")(layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights(
                [rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), rng.normal(0, 0.3, n), rng.uniform(0.5, 2.0, n)]
            )
        elif isinstance(layer, layers.Conv2D | layers.Dense):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.1, bias.shape).astype(np.float32)])
    return model


@pytest.mark.slow
def test_fp32_agrees_with_tensorflow_on_resnet_like_with_trained_like_batch_norms() -> None:
    import tfcpu
    from tfcpu.graph._execute import run_graph
    from tfcpu.runtime.backends.openvino import OpenVinoBackend

    model = tfcpu.load(resnet_like())
    backend = OpenVinoBackend(model, None, {"precision": "f32"})
    backend.activate()  # the first-use check itself refuses more than 1e-4
    info = backend.describe()
    assert info["precision"] == "fp32" and info["check"]["max_rel"] <= 1e-4, info
    x = np.random.default_rng(1).standard_normal((8, 32, 32, 3)).astype(np.float32)
    (want,) = run_graph(model.graph_def, {model.input_names[0]: x}, model.output_names)
    (got,) = backend.infer([x])
    assert float(np.abs(got - want).max() / np.abs(want).max()) <= 1e-4
    assert (got.argmax(1) == want.argmax(1)).all()
    assert float(want.std()) > 0.01  # the random statistics make a non-trivial output
    backend.deactivate()


DIGITS = CHILD_PRELUDE + textwrap.dedent(
    """
    import json, sys

    import tfcpu
    from tests.digits import train_digits
    from tfcpu.graph._execute import run_graph
    from tfcpu.runtime.backends.openvino import OpenVinoBackend

    net, x_train, x_test, y_train, y_test = train_digits()
    model = tfcpu.load(net)

    def ov_accuracy(m):
        backend = OpenVinoBackend(m, None, {"check": False})
        backend.activate()
        probs = backend.infer([x_test])[0]
        backend.deactivate()
        return float((probs.argmax(axis=1) == y_test).mean())

    (probs,) = run_graph(model.graph_def, {model.input_names[0]: x_test}, model.output_names)
    tf_fp32 = float((probs.argmax(axis=1) == y_test).mean())
    result = (
        tfcpu.Quantizer().int8().calibrate(x_train, batches=10, batch_size=32)
        .evaluate(ov_accuracy).tolerance(relative_loss=0.01).backend("openvino").run(model)
    )
    data = result.to_dict()
    data["tf_fp32"] = tf_fp32
    data["int8_rerun"] = ov_accuracy(result.model)
    result.model.save(sys.argv[2])
    json.dump(data, open(sys.argv[1], "w"))
    """
)


@pytest.mark.slow
def test_nncf_int8_digits_cnn_within_one_point_of_fp32(tmp_path: Path) -> None:
    script = tmp_path / "digits.py"
    script.write_text(DIGITS)
    out, xml = tmp_path / "result.json", tmp_path / "digits.xml"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, str(script), str(out), str(xml)], env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    data = json.loads(out.read_text())
    assert data["tf_fp32"] >= 0.95, data
    assert data["quantized"] is True and data["precision"] == "int8"
    # NNCF's accuracy control measured FP32 (OpenVINO) first, then the INT8 candidate
    assert data["fp32_metric"] == pytest.approx(data["tf_fp32"], abs=0.005)
    assert data["int8_metric"] >= data["fp32_metric"] - 0.01, data
    assert data["int8_rerun"] >= data["tf_fp32"] - 0.01, data
    assert data["int8_rerun"] == pytest.approx(data["int8_metric"])
    rows = {r["op"]: r for r in data["op_types"]}
    assert rows["Convolution"]["total"] == 2 and rows["Convolution"]["quantized"] >= 1
    assert data["quantized_ops"]["FakeQuantize"] >= 2
    assert data["top1_agreement"] >= 0.95 and data["calibration"]["synthetic"] is False
    assert xml.is_file() and xml.with_suffix(".bin").is_file()


@pytest.mark.slow
def test_quantize_cli_to_ir_then_load_and_time(tmp_path: Path) -> None:
    import tfcpu
    from tfcpu.runtime.backends.openvino import OpenVinoBackend

    src = tmp_path / "net.keras"
    resnet_like().save(src)
    out = tmp_path / "net.xml"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    argv = [sys.executable, "-m", "tfcpu", "quantize", str(src), "-o", str(out), "--backend", "openvino"]
    proc = subprocess.run([*argv, "--batches", "2", "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["precision"] == "int8"
    model = tfcpu.load(out)
    assert model.preferred_backend == "openvino"
    backend = OpenVinoBackend(model)
    backend.activate()
    x = np.random.default_rng(0).standard_normal((4, 32, 32, 3)).astype(np.float32)
    timing = backend.timed(iter([[x]] * 16))
    assert len(timing.batches) == 16 and timing.throughput > 0
    assert backend.describe()["precision"] == "int8"
    backend.deactivate()
