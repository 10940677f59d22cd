"""Quantizer: the fluent plan (immutability, eager validation), calibration checking, BF16
refusal/acceptance by CPU, and quantisation of tiny graphs built in code.

INC itself runs in this process on tiny graphs: quantising works whether or not oneDNN is
on; only *running* INT8 graphs needs it (tested in tests/integration/test_quantize_*.py).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.children import run_snippet
from tests.graphs import dense_softmax, echo_ids, tiny_convnet, two_inputs
from tfcpu import ConfigError, QuantizationError, Quantizer
from tfcpu.graph.model import Model
from tfcpu.quantize import QuantizationResult
from tfcpu.quantize.calibration import materialise
from tfcpu.quantize.quantizer import SLOW_INT8_WARNING, SYNTHETIC_WARNING, _fallback_order
from tfcpu.topology import Topology

TopologyFactory = Callable[[str], Topology]


# -- the plan -------------------------------------------------------------------------------
def test_builder_returns_new_objects_and_leaves_the_original_alone() -> None:
    base = Quantizer()
    planned = base.int8(per_channel=False, algorithm="kl").smooth_quant(0.7).tolerance(0.02, max_trials=3)
    assert planned is not base
    assert (base.per_channel, base.algorithm, base.smooth_quant_alpha) == (True, "minmax", None)
    assert base.relative_loss == 0.01
    assert (planned.per_channel, planned.algorithm, planned.smooth_quant_alpha) == (False, "kl", 0.7)
    assert (planned.relative_loss, planned.max_trials) == (0.02, 3)
    assert planned.optimize(False).optimize_first is False and planned.optimize_first is True
    with pytest.raises(AttributeError):
        planned.precision = "bf16"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda q: q.int8(algorithm="kll"), "did you mean 'kl'"),
        (lambda q: q.smooth_quant(alpha=1.5), "alpha must be in [0, 1]"),
        (lambda q: q.tolerance(relative_loss=-0.1), "relative_loss"),
        (lambda q: q.tolerance(max_trials=0), "max_trials"),
        (lambda q: q.calibrate(None), "calibration data is None"),
        (lambda q: q.calibrate("imagenet"), "unknown calibration source"),
        (lambda q: q.calibrate("synthetic", batches=0), "batches must be"),
        (lambda q: q.calibrate("synthetic", batch_size=0), "batch_size must be"),
        (lambda q: q.evaluate(0.5), "evaluate needs a callable"),
        (lambda q: q.int8().remainder("fp16"), "unknown remainder precision 'fp16'"),
    ],
)
def test_bad_settings_fail_eagerly(call: Callable[[Quantizer], Quantizer], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        call(Quantizer())
    assert fragment in str(info.value)


def test_bf16_is_refused_without_bf16_instructions(topology: TopologyFactory) -> None:
    this = topology("this_machine")
    assert not this.precisions["bf16"].accelerated
    with pytest.raises(ConfigError, match="BF16 is not accelerated"):
        Quantizer(topology=this).bf16()


def test_bf16_for_openvino_is_refused_by_run_without_bf16_instructions(topology: TopologyFactory) -> None:
    """``.bf16().backend("openvino")`` made a BF16 IR on an AVX2 server (issue 27): refused by run() now,
    before OpenVINO converts anything, like the TensorFlow target."""
    plan = Quantizer().bf16().backend("openvino")
    with pytest.raises(ConfigError, match="BF16 is not accelerated"):
        replace(plan, topology=topology("this_machine")).run(dense_softmax())


def test_a_bf16_remainder_is_refused_without_bf16_and_outside_int8(topology: TopologyFactory) -> None:
    with pytest.raises(ConfigError, match="BF16 is not accelerated"):
        Quantizer(topology=topology("this_machine")).int8().remainder("bf16")
    plan = Quantizer(topology=topology("vm_no_numa")).int8().remainder("bf16")  # AMX-BF16: accepted
    assert plan.rest == "bf16" and plan.to_dict()["remainder"] == "bf16"
    with pytest.raises(ConfigError, match="an INT8 option"):
        plan.bf16().run(dense_softmax())


BF16_CHILD = """
import json, sys
from tests.graphs import dense_softmax
from tfcpu import Quantizer, Topology
spr = Topology.from_json(open(sys.argv[1]).read())
model = dense_softmax()
result = Quantizer(topology=spr).bf16().run(model)
casts = [n.name for n in result.model.graph_def.node if n.op == "Cast" and n.attr["DstT"].type == 14]
print(json.dumps({"precision": result.precision, "quantized": result.quantized, "casts": casts,
                  "same_signature": result.model.inputs == model.inputs and result.model.outputs == model.outputs}))
"""


def test_bf16_is_accepted_with_amx_and_rewrites_the_graph(topology: TopologyFactory, tmp_path: Path) -> None:
    spr = topology("vm_no_numa")  # Xeon 8480C: AMX-BF16
    assert Quantizer(topology=spr).bf16().precision == "bf16"
    # The rewrite needs oneDNN on, i.e. a fresh interpreter here (no VNNI/AMX on this CPU).
    topo_file = tmp_path / "spr.json"
    topo_file.write_text(spr.to_json())
    data = run_snippet(BF16_CHILD, str(topo_file), env={"TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert data["precision"] == "bf16" and data["quantized"] and data["same_signature"]
    assert data["casts"], "expected Cast-to-bfloat16 nodes"


def test_run_without_calibration_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no calibration data"):
        Quantizer().int8().run(dense_softmax())


def test_run_needs_a_model() -> None:
    with pytest.raises(ConfigError, match="tfcpu Model"):
        Quantizer().calibrate("synthetic").run("model.pb")  # type: ignore[arg-type]


# -- calibration data -----------------------------------------------------------------------
def test_every_calibration_form_becomes_checked_batches() -> None:
    import tensorflow as tf

    model = dense_softmax()
    rng = np.random.default_rng(0)
    data = rng.standard_normal((10, 4)).astype(np.float32)
    labels = np.arange(10)

    def gen():
        for i in range(0, 10, 4):
            yield data[i : i + 4], labels[i : i + 4]

    forms = {
        "array": data,
        "array-float64": data.astype(np.float64),
        "list": [data[:4], data[4:8], data[8:]],
        "pairs": list(gen()),
        "iterator": iter([data[:4], data[4:8], data[8:]]),
        "dict": {"x": data},
        "callable": gen,
        "dataset": tf.data.Dataset.from_tensor_slices((data, labels)).batch(4),
    }
    for name, form in forms.items():
        batches = materialise(model, form, batches=10, batch_size=4)
        assert [b["x:0"].shape[0] for b in batches] == [4, 4, 2], name
        assert all(b["x:0"].dtype == np.float32 for b in batches), name
        np.testing.assert_allclose(np.concatenate([b["x:0"] for b in batches]), data, rtol=1e-6, err_msg=name)
    assert len(materialise(model, data, batches=2, batch_size=4)) == 2


def test_synthetic_batches_follow_the_signature() -> None:
    batches = materialise(two_inputs(), "synthetic", batches=3, batch_size=5)
    assert len(batches) == 3
    assert batches[0]["a:0"].shape == (5, 3) and batches[0]["n:0"].dtype == np.int32
    assert not np.array_equal(batches[0]["a:0"], batches[1]["a:0"])


def test_synthetic_calibration_fills_a_dynamic_sequence_and_says_so() -> None:
    """A text model's sequence length is unknown (every keras-hub backbone): synthetic calibration
    used to refuse it ("unknown dimension 1"), so no BERT could be quantised with "synthetic"."""
    import tensorflow as tf

    from tfcpu.graph.model import TensorSpec
    from tfcpu.quantize._pipeline import prepare
    from tfcpu.quantize.calibration import SYNTHETIC_UNKNOWN_DIM

    g = tf.Graph()
    with g.as_default():
        ids = tf.compat.v1.placeholder(tf.int32, [None, None], name="ids")
        table = tf.constant(np.arange(15, dtype=np.float32).reshape(5, 3))
        tf.identity(tf.gather(table, ids), name="out")
    model = Model(
        g.as_graph_def(),
        (TensorSpec("ids:0", "int32", (None, None), "Placeholder"),),
        (TensorSpec("out:0", "float32", (None, None, 3), "Identity"),),
        source="dynamic_ids",
    )
    batches = materialise(model, "synthetic", batches=2, batch_size=3)
    assert [b["ids:0"].shape for b in batches] == [(3, SYNTHETIC_UNKNOWN_DIM)] * 2
    assert all(b["ids:0"].min() >= 0 and b["ids:0"].max() < 5 for b in batches)  # rows of the table
    prepared = prepare(Quantizer().int8().calibrate("synthetic", batches=1, batch_size=2), model, seed=0)
    assert prepared.calibration is not None
    assert any(f"ids:0): {SYNTHETIC_UNKNOWN_DIM}" in line for line in prepared.calibration.assumed)
    # an image of any size is still refused: no size is a safe guess for a float input
    images = Model(
        g.as_graph_def(),
        (TensorSpec("ids:0", "float32", (None, None, None, 3), "Placeholder"),),
        (TensorSpec("out:0", "float32", (None, None, 3), "Identity"),),
        source="any_size_images",
    )
    with pytest.raises(ConfigError, match="unknown dimension 1"):
        materialise(images, "synthetic", batches=1, batch_size=2)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (np.zeros((4, 5), np.float32), "expects shape (?, 4)"),
        (np.zeros((4,), np.float32), "expects rank 2"),
        (np.zeros((4, 4), np.complex64), "expects float32"),
        ([np.zeros((2, 4), np.float32), np.zeros((2, 3), np.float32), np.zeros(2)], "calibration batch 1"),
        ({"y": np.zeros((2, 4), np.float32)}, "unknown input"),
        ([], "yielded no batch"),
    ],
)
def test_bad_calibration_is_a_config_error_before_inc_starts(
    data: object, fragment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tfcpu.quantize._inc as inc

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("INC was called with bad calibration data")

    monkeypatch.setattr(inc, "quantize_graph", must_not_run)
    with pytest.raises(ConfigError) as info:
        Quantizer().int8().calibrate(data).run(dense_softmax())
    assert fragment in str(info.value)


# -- quantising tiny graphs -----------------------------------------------------------------
def test_a_model_without_conv_or_matmul_is_returned_unchanged(caplog: pytest.LogCaptureFixture) -> None:
    model = echo_ids()
    with caplog.at_level(logging.WARNING, logger="tfcpu.quantize"):
        result = Quantizer().int8().calibrate(np.ones((8, 1), np.float32)).run(model)
    assert result.quantized is False and result.precision == "fp32"
    assert result.model is model
    assert any("no Conv/MatMul" in w for w in result.warnings)
    assert any("no Conv/MatMul" in r.getMessage() for r in caplog.records)


def test_tiny_convnet_is_quantised_and_the_input_model_is_not_touched(
    topology: TopologyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    model = tiny_convnet()
    before = model.to_bytes()
    with caplog.at_level(logging.WARNING, logger="tfcpu.quantize"):
        result = Quantizer(topology=topology("this_machine")).int8().calibrate("synthetic", batches=2).run(model)
    assert model.to_bytes() == before
    assert isinstance(result, QuantizationResult) and result.quantized and result.precision == "int8"
    assert result.model is not model
    assert result.model.inputs == model.inputs and result.model.outputs == model.outputs
    rows = {r.op: r for r in result.op_types}
    assert rows["Conv2D"].total == 1 and rows["Conv2D"].quantized == 1
    assert rows["MatMul"].total == 1 and rows["MatMul"].quantized == 1
    assert any(op.startswith("Quantized") for op in result.quantized_ops)
    assert not any(n.op == "Conv2D" for n in result.model.graph_def.node)
    assert result.model.graph_def.versions.producer == model.graph_def.versions.producer  # INC drops it
    # synthetic data and no VNNI: both said, in the result and in the log
    assert SYNTHETIC_WARNING in result.warnings and SLOW_INT8_WARNING in result.warnings
    messages = [r.getMessage() for r in caplog.records]
    assert SYNTHETIC_WARNING in messages and SLOW_INT8_WARNING in messages
    assert result.calibration is not None and result.calibration.synthetic and result.calibration.batches == 2
    assert result.fast_int8_hardware is False
    data = result.to_dict()
    assert data["precision"] == "int8" and data["op_types"][0]["op"] == "Conv2D"
    assert "INT8" in result._repr_html_()


ONEDNN_OFF_CHILD = """
import json
import tensorflow  # imported first, with TF_ENABLE_ONEDNN_OPTS=0: what an AVX2 server does by default
from tests.graphs import tiny_convnet
from tfcpu import ModelError, Quantizer
from tfcpu.graph._execute import random_feeds, run_graph
from tfcpu.session.runtime import runtime_info
model = tiny_convnet()
result = Quantizer().int8().calibrate("synthetic", batches=2).run(model)
try:
    run_graph(result.model.graph_def, random_feeds(model), model.output_names)
    error = None
except ModelError as exc:
    error = str(exc)
print(json.dumps({"onednn_here": runtime_info().onednn_enabled, "quantized": result.quantized,
                  "cosine": result.cosine, "top1": result.top1_agreement, "warnings": list(result.warnings),
                  "error": error}))
"""


def test_int8_agreement_is_measured_in_a_child_where_onednn_is_off_in_this_process() -> None:
    """Issue 27: TensorFlow imported with oneDNN off (AVX2 servers' default) cannot run the INT8 graph
    ("Missing 0-th output from {{node ..._eightbit_requantize}}"); the quantiser still measures its
    agreement (in a child with oneDNN on), and running it here names the fix instead."""
    data = run_snippet(ONEDNN_OFF_CHILD, env={"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert data["onednn_here"] is False and data["quantized"] is True
    assert data["cosine"] is not None and data["cosine"] > 0.99, data
    assert data["top1"] is not None and data["top1"] >= 0.5, data
    assert any("agreement check runs the INT8 graph in a child process" in w for w in data["warnings"]), data
    assert data["error"] is not None and "needs oneDNN, which is off" in data["error"], data
    assert "TF_ENABLE_ONEDNN_OPTS=1" in data["error"] and "Missing 0-th output" not in data["error"]


def test_fast_hardware_does_not_warn_about_speed(topology: TopologyFactory) -> None:
    result = Quantizer(topology=topology("vm_no_numa")).calibrate("synthetic", batches=1).run(tiny_convnet())
    assert result.fast_int8_hardware is True
    assert SLOW_INT8_WARNING not in result.warnings


def test_fallback_order_tries_classifier_then_stem() -> None:
    assert _fallback_order(tiny_convnet())[:2] == ["MatMul", "Conv2D"]
    assert _fallback_order(echo_ids()) == []


def test_nodes_can_be_kept_in_fp32() -> None:
    from tfcpu.quantize._inc import IncSettings, quantize_graph

    model = tiny_convnet()
    batches = materialise(model, "synthetic", batches=1, batch_size=4)
    graph_def = quantize_graph(
        model.graph_def, model.input_names, model.output_names, batches, IncSettings(fp32_nodes=("MatMul",)), source="t"
    )
    ops = {n.name: n.op for n in graph_def.node}
    assert ops.get("MatMul") == "MatMul"  # kept in FP32
    assert "Conv2D" not in ops or ops["Conv2D"] != "Conv2D"


def test_inc_failures_are_wrapped_with_the_original_chained() -> None:
    from tfcpu.quantize._inc import IncSettings, quantize_graph

    model = tiny_convnet()
    batches = materialise(model, "synthetic", batches=1, batch_size=4)
    with pytest.raises(QuantizationError) as info:
        quantize_graph(model.graph_def, ["nope:0"], model.output_names, batches, IncSettings(), source="tiny")
    assert "Neural Compressor failed" in str(info.value) and "[tiny]" in str(info.value)
    assert info.value.__cause__ is not None


def test_evaluation_that_fails_is_reported_in_tfcpu_terms(topology: TopologyFactory) -> None:
    def broken(model: Model) -> float:
        raise RuntimeError("boom")

    plan = Quantizer(topology=topology("vm_no_numa")).calibrate("synthetic", batches=1).evaluate(broken)
    with pytest.raises(QuantizationError) as info:
        plan.run(tiny_convnet())
    assert "boom" in str(info.value) or "cannot evaluate" in str(info.value)


@pytest.mark.parametrize(
    "plan",
    [
        Quantizer().int8(algorithm="kl"),
        Quantizer().int8(per_channel=False, symmetric=False),
        Quantizer().smooth_quant(alpha=0.5),
    ],
    ids=["kl", "per-tensor-asymmetric", "smooth-quant"],
)
def test_int8_variants_reach_inc(
    plan: Quantizer, topology: TopologyFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spr = topology("vm_no_numa")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    result = replace(plan, topology=spr).calibrate("synthetic", batches=2).run(tiny_convnet())
    assert result.quantized
    assert set(result.quantized_ops) >= {"QuantizedConv2DWithBiasAndReluAndRequantize"}
    assert list(cwd.iterdir()) == [], "INC work files leaked into the current directory"


def test_missing_inc_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from tfcpu import MissingDependencyError
    from tfcpu.quantize._inc import _import_inc

    monkeypatch.setitem(sys.modules, "neural_compressor", None)
    with pytest.raises(MissingDependencyError) as info:
        _import_inc()
    assert "pip install neural-compressor[tf]" in str(info.value)
