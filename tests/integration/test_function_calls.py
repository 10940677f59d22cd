"""Models people bring, with nothing hidden in function calls (issue 27, parts 3 and 4).

* Grouped convolutions (Keras runs ``Conv2D(groups>1)`` as an XLA function) load as plain ops,
  quantise to INT8 and run on OpenVINO: a small model built in code, then ConvNeXtTiny and
  RegNetX002 (random weights, trained-like normalisations) in one slow test.
* FNet's FFT, which OpenVINO cannot convert: refused before any work with the op named, and
  ``tune`` falls back to TensorFlow with OpenVINO's reason in its notes.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

import tfcpu
from tfcpu.errors import RunnerError
from tfcpu.graph.passes.inline_functions import remaining_calls
from tfcpu.runtime import Runner

pytestmark = pytest.mark.slow


def _grouped_model() -> Any:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
    from test_inline_functions import grouped_keras_model

    return grouped_keras_model()


def test_grouped_convolutions_quantise_to_int8() -> None:
    keras_model = _grouped_model()
    model = tfcpu.load(keras_model)
    result = tfcpu.Quantizer().int8().calibrate("synthetic", batches=4).run(model)
    ops = Counter(n.op for n in result.model.graph_def.node)
    quantized_convs = sum(v for k, v in ops.items() if "Quantized" in k and "Conv2D" in k and "Depthwise" not in k)
    assert quantized_convs == 1 + 4, ops  # the ordinary conv and the 4 groups of the grouped one
    assert sum(v for k, v in ops.items() if "QuantizedDepthwiseConv2D" in k) == 1, ops
    assert not any(k in ("Conv2D", "DepthwiseConv2dNative") for k in ops), ops
    # the share counts the convolutions: every counted FLOP is INT8 here, and the number says so
    assert result.matmul_flop_share == pytest.approx(1.0)


def _keras_application(name: str) -> Any:
    """ConvNeXt from Keras 3; RegNetX from tf_keras (Keras 3 has no RegNet; tf_keras also runs
    ``Conv2D(groups>1)`` as a jit_compile function)."""
    import keras
    import tf_keras

    from tfcpu.graph._keras_weights import realistic_weights

    keras.utils.set_random_seed(0)
    build = getattr(keras.applications if name.startswith("ConvNeXt") else tf_keras.applications, name)
    model = build(weights=None, input_shape=(64, 64, 3), classes=10, classifier_activation=None)
    realistic_weights(model)
    return model


@pytest.mark.parametrize(("name", "grouped"), [("ConvNeXtTiny", 18), ("RegNetX002", 13)])
def test_convnext_and_regnetx_freeze_plain_and_run_on_openvino(name: str, grouped: int) -> None:
    keras_model = _keras_application(name)
    model = tfcpu.load(keras_model)
    assert not remaining_calls(model.graph_def)
    assert len(model.graph_def.library.function) == 0
    ops = Counter(n.op for n in model.graph_def.node)
    # every grouped convolution became a depthwise op (ConvNeXt) or a Split/ConcatV2 of convolutions (RegNetX)
    assert ops["DepthwiseConv2dNative"] + ops["Split"] == grouped, ops
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    want = keras_model(x, training=False).numpy()
    for backend in ("tensorflow", "openvino"):
        with Runner(model, backend=backend) as runner:
            got = next(iter(runner.run({model.input_names[0]: x}).values()))
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got / scale, want / scale, rtol=1e-4, atol=1e-4, err_msg=f"{name} on {backend}")
    if name == "RegNetX002":  # the smaller one: its grouped convolutions quantise
        result = tfcpu.Quantizer().int8().calibrate("synthetic", batches=2).run(model)
        int8_ops = Counter(n.op for n in result.model.graph_def.node)
        assert not int8_ops["Conv2D"], int8_ops
        assert result.matmul_flop_share is not None and result.matmul_flop_share > 0.9


def _fnet() -> Any:
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.FNetBackbone(
        vocabulary_size=64,
        num_layers=1,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=16,
        num_segments=2,
    )
    return tfcpu.load(backbone)


@pytest.fixture(scope="module")
def fnet() -> Any:
    return _fnet()


def test_fnet_is_refused_by_openvino_with_the_op_named(fnet: Any) -> None:
    with pytest.raises(RunnerError) as caught, Runner(fnet, backend="openvino"):
        pass
    error = caught.value
    assert "FFT2D" in error.what  # the op, in the one-line summary
    assert "FFT2D" in (error.where or "")  # the graph's node of that op
    assert "FFT op input element type" in (error.why or "")  # OpenVINO's whole reason, not its first line


def test_fnet_int8_on_openvino_is_refused_before_any_work(fnet: Any) -> None:
    plan = tfcpu.Quantizer().int8().calibrate("synthetic", batches=2).backend("openvino")
    with pytest.raises(RunnerError, match="FFT2D"):
        plan.run(fnet)


def test_tune_falls_back_to_tensorflow_for_fnet(fnet: Any) -> None:
    from tfcpu.runtime.backends._base import BenchmarkOptions
    from tfcpu.runtime.tune import tune

    result = tune(
        fnet,
        cores_per_instance=[1],
        batch_sizes=[2],
        options=BenchmarkOptions(
            batch_size=2, warmup=1, steps=3, shapes=tuple((name, (2, 16)) for name in fnet.input_names)
        ),
        backends=["openvino"],
    )
    assert result.rows and all(r.backend == "tensorflow" for r in result.rows)
    assert result.best is not None and result.best.throughput > 0
    note = next(n for n in result.notes if n.startswith("openvino skipped"))
    assert "FFT2D" in note and "tuned on tensorflow" in note
