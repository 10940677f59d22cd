"""The OpenVINO backend on tiny graphs built in code: conversion, settings, the first-use check, the async
timed loop, NNCF INT8 / BF16 through the Quantizer, the IR files (atomic save, truncated files), and the
error a missing ``openvino`` gives.

The test net (trained-like numbers: random batch-norm statistics and biases)::

    x[?,16,16,3] → Conv2D 3x3x8 → FusedBatchNormV3(random γ β mean var) → Relu ─┬→ Mean[1,2] = "feat"
                                                                               │   → MatMul → BiasAdd
                                                                               │   → Softmax = "probs"
                                                                               └→ ArgMax(3) → int32 = "idx"
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.openvino_nets import bn_classifier
from tfcpu.errors import ConfigError, ModelError, RunnerError
from tfcpu.graph.model import Model, TensorSpec


def conv_bn_net(seed: int = 0) -> Model:
    return bn_classifier(seed, size=16, classes=5, extra_outputs=True)


@pytest.fixture(scope="module")
def net() -> Model:
    return conv_bn_net()


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return np.random.default_rng(3).standard_normal((4, 16, 16, 3)).astype(np.float32)


_ACTIVE: list[Any] = []


@pytest.fixture(autouse=True)
def _release_backends() -> Any:
    """Deactivate every backend a test made (OpenVINO's compiled models and threads go with the test)."""
    yield
    while _ACTIVE:
        _ACTIVE.pop().deactivate()


def backend(model: Model, config: Any = None, **options: Any) -> Any:
    from tfcpu.runtime.backends._base import backend_class

    b = backend_class("openvino")(model, config, options)
    _ACTIVE.append(b)
    b.activate()
    return b


def tf_outputs(model: Model, x: np.ndarray) -> list[np.ndarray]:
    from tfcpu.graph._execute import run_graph

    return run_graph(model.graph_def, {"x:0": x}, model.output_names)


# -- conversion and results ------------------------------------------------------------------------
def test_fp32_outputs_match_tensorflow_in_order_dtype_and_shape(net: Model, batch: np.ndarray) -> None:
    b = backend(net)
    got = b.infer([batch])
    want = tf_outputs(net, batch)
    assert [g.dtype for g in got] == [w.dtype for w in want] == [np.float32, np.int32, np.float32]
    assert [g.shape for g in got] == [w.shape for w in want] == [(4, 5), (4, 16, 16), (4, 8)]
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-4, atol=1e-6)
    assert (got[1] == want[1]).mean() > 0.99  # arg-max ties aside
    info = b.describe()
    assert info["backend"] == "openvino" and info["precision"] == "fp32"
    assert info["inference_precision_hint"] == "float32"  # forced f32: OpenVINO would pick bf16 here
    assert info["check"]["max_rel"] <= 1e-4 and info["check"]["cosine"] > 0.9999
    assert "vs TensorFlow FP32" in info["check_note"]
    b.deactivate()
    b.deactivate()  # twice is fine
    with pytest.raises(RunnerError, match="not active"):
        b.infer([batch])


def test_settings_reach_the_compiled_model(net: Model) -> None:
    from tfcpu.session.config import SessionConfig

    latency = backend(net, SessionConfig(intra_op=1), hint="latency", pinning=False, check=False)
    info = latency.describe()
    assert info["hint"] == "LATENCY" and info["streams"] == 1 and info["threads"] == 1
    assert info["pinning"] is False and info["check"] is None and "skipped" in info["check_note"]
    throughput = backend(net, None, hint="throughput", streams=2, check=False)
    assert throughput.describe()["streams"] == 2


def test_bad_options_are_config_errors(net: Model) -> None:
    from tfcpu.runtime.backends.openvino import OpenVinoBackend

    with pytest.raises(ConfigError, match="did you mean 'streams'"):
        OpenVinoBackend(net, None, {"stream": 2})
    with pytest.raises(ConfigError, match="hint"):
        OpenVinoBackend(net, None, {"hint": "fastest"})
    with pytest.raises(ConfigError, match="precision"):
        OpenVinoBackend(net, None, {"precision": "int4"})
    with pytest.raises(ConfigError, match="INT8 on OpenVINO comes from the model"):
        OpenVinoBackend(net, None, {"precision": "int8"})


def _bf16_accelerated() -> bool:
    """Whether this CPU runs BF16 natively (AVX512_BF16/AMX_BF16): the BF16 tests assert the run where it
    is, and tfcpu's refusal (before OpenVINO compiles anything) where it is not -- never a skip."""
    from tfcpu.topology import Topology

    return bool(Topology.detect().precisions["bf16"].accelerated)


def test_bf16_runs_bf16_layers_and_reports_agreement(net: Model, batch: np.ndarray) -> None:
    if not _bf16_accelerated():  # OpenVINO would emulate BF16, slower than f32: refused with the reason
        with pytest.raises(ConfigError, match=r"BF16 is not accelerated on this CPU.*AVX512_BF16"):
            backend(net, precision="bf16")
        with pytest.raises(ConfigError, match="AVX512_BF16"):
            backend(net, precision="bfloat16")
        return
    b = backend(net, precision="bf16")
    info = b.describe()
    assert info["precision"] == "bf16" and info["inference_precision_hint"] == "bfloat16"
    assert any(k.endswith(":bf16") for k in info["compute_layers"])
    assert 0.99 <= info["check"]["cosine"] < 1.0  # BF16 rounding shows, within the gross-error bound
    np.testing.assert_allclose(b.infer([batch])[0], tf_outputs(net, batch)[0], atol=0.02)


def test_check_refuses_disagreement_with_the_numbers(net: Model) -> None:
    # real numbers, tightened bounds: FP32 differs from TF by float rounding, BF16 by more
    with pytest.raises(RunnerError, match=r"FP32 conversion does not agree.*max rel err"):
        backend(net, rtol=1e-12)
    if not _bf16_accelerated():  # refused before any check could run
        with pytest.raises(ConfigError, match="AVX512_BF16"):
            backend(net, precision="bf16", min_cosine=1.0)
        return
    with pytest.raises(RunnerError, match=r"BF16 model disagrees grossly.*cosine"):
        backend(net, precision="bf16", min_cosine=1.0)


def test_unconvertible_graph_is_one_runner_error() -> None:
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        s = tf.compat.v1.placeholder(tf.string, [None], name="s")
        tf.strings.length(tf.strings.regex_replace(s, "a", "b"), name="n")
    model = Model(
        g.as_graph_def(),
        (TensorSpec("s:0", "string", (None,), "Placeholder"),),
        (TensorSpec("n:0", "int32", (None,), "StringLength"),),
        source="strings",
    )
    with pytest.raises(RunnerError, match="OpenVINO cannot convert the graph"):
        backend(model)


# -- the timed loop ------------------------------------------------------------------------------------
def test_timed_keeps_requests_in_flight_and_returns_outputs_in_order(net: Model) -> None:
    b = backend(net, requests=3)
    rng = np.random.default_rng(5)
    feeds = [[rng.standard_normal((2, 16, 16, 3)).astype(np.float32)] for _ in range(12)]
    seen: list[int] = []
    before = time.monotonic()
    timing = b.timed(iter(feeds), collect=True, progress=lambda i, n: seen.append(i), total=12)
    assert len(timing.batches) == 12 and timing.items == 24 and seen == list(range(1, 13))
    assert all(before <= s <= e <= time.monotonic() for s, e, _ in timing.batches)
    for feed, outputs in zip(feeds, timing.outputs, strict=True):
        want = b.infer(feed)
        assert [o.shape for o in outputs] == [w.shape for w in want]
        np.testing.assert_allclose(outputs[0], want[0], rtol=1e-5)
    # a deadline already passed: the first request is submitted, and it is the last
    late = b.timed(iter(feeds), deadline=time.monotonic() - 1)
    assert len(late.batches) == 1 and late.outputs == ()
    odd = [rng.standard_normal((3, 16, 16, 3)).astype(np.float32)]
    with pytest.raises(RunnerError, match="first batch's shapes"):
        b.timed(iter([*feeds[:2], odd]))
    assert b.timed(iter([])).batches == ()


def test_static_and_dynamic_shapes_give_the_same_outputs(net: Model, batch: np.ndarray) -> None:
    static, dynamic = backend(net, check=False), backend(net, check=False, static_shapes=False)
    for x in (batch, batch[:1], batch):  # a new shape compiles again; a known one is reused
        for a, b in zip(static.infer([x]), dynamic.infer([x]), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert static._compiled.input(0).get_partial_shape().is_static
    assert not dynamic._compiled.input(0).get_partial_shape().is_static


def test_a_dynamic_sequence_length_is_checked_and_run_at_each_length() -> None:
    """Token inputs of shape (batch, ?): the first-use check picks a length itself, every length compiles."""
    import tfcpu
    from tfcpu.graph._execute import run_graph
    from tfcpu.graph.encoder import build_encoder

    model = tfcpu.load(build_encoder(layers=1, width=32, heads=2, seq_len=None))
    b = backend(model)  # check on (the default): it used to refuse the unknown dimension 1
    check = b.describe()["check"]
    assert check["samples"] == 2 and check["max_rel"] <= 1e-4, check
    rng = np.random.default_rng(0)
    for seq in (24, 7):
        feeds = {"token_ids:0": rng.integers(0, 100, (3, seq)).astype(np.int32), "mask:0": np.ones((3, seq), np.int32)}
        (want,) = run_graph(model.graph_def, feeds, model.output_names)
        (got,) = b.infer([feeds["token_ids:0"], feeds["mask:0"]])
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


# -- NNCF INT8, BF16 and the IR files ----------------------------------------------------------------
@pytest.fixture(scope="module")
def int8_result(net: Model) -> Any:
    from tfcpu.quantize import Quantizer

    return Quantizer().int8().calibrate("synthetic", batches=4, batch_size=4).backend("openvino").run(net)


def test_nncf_int8_report_reads_the_openvino_model(int8_result: Any) -> None:
    r = int8_result
    assert r.quantized and r.precision == "int8"
    assert r.model.preferred_backend == "openvino" and r.model.op_counts()["FakeQuantize"] >= 2
    assert r.quantized_ops["FakeQuantize"] == r.model.op_counts()["FakeQuantize"]
    rows = {row.op: row for row in r.op_types}
    assert rows["Convolution"].quantized == rows["Convolution"].total == 1
    assert r.top1_agreement is not None and r.top1_agreement >= 0.9
    assert r.model.metadata["openvino_report"]["agreement"]["cosine"] > 0.99
    assert any("synthetic" in w for w in r.warnings)
    data = json.loads(json.dumps(r.to_dict()))
    assert data["model"]["format"] == "openvino-ir" and data["precision"] == "int8"
    b = backend(r.model)
    assert b.describe()["precision"] == "int8"
    assert "skipped" in b.describe()["check_note"]  # checked when made; an IR has no TF graph


def test_ir_round_trip_keeps_signature_and_outputs(int8_result: Any, batch: np.ndarray, tmp_path: Path) -> None:
    import tfcpu

    path = int8_result.model.save(tmp_path / "q.xml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.bin", "q.xml"]  # no temporary left
    loaded = tfcpu.load(tmp_path / "q.xml")
    assert loaded.preferred_backend == "openvino" and loaded.source == str(path)
    assert loaded.output_names == ("probs:0", "idx:0", "feat:0") and loaded.input_names == ("x:0",)
    assert [t.dtype for t in loaded.outputs] == ["float32", "int32", "float32"]
    a, b = backend(int8_result.model).infer([batch]), backend(loaded).infer([batch])
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    picked = tfcpu.load(tmp_path / "q.xml", outputs=["feat"])
    assert picked.output_names == ("feat:0",)
    with pytest.raises(ModelError, match="no tensor 'nope:0'"):
        tfcpu.load(tmp_path / "q.xml", outputs=["nope"])
    with pytest.raises(ModelError, match=r"cannot be written as graphdef"):
        loaded.save(tmp_path / "q.pb")


def test_bf16_ir_remembers_its_precision(net: Model, tmp_path: Path) -> None:
    import tfcpu
    from tfcpu.quantize import Quantizer

    if not _bf16_accelerated():  # no BF16 IR is made on this CPU
        with pytest.raises(ConfigError, match="AVX512_BF16"):
            Quantizer().bf16().backend("openvino").run(net)
        assert not list(tmp_path.iterdir())
        return
    r = Quantizer().bf16().backend("openvino").run(net)
    assert r.precision == "bf16" and any(k.endswith(":bf16") for k in r.quantized_ops)
    r.model.save(tmp_path / "b.xml")
    loaded = tfcpu.load(tmp_path / "b.xml")
    assert loaded.metadata["openvino_precision"] == "bf16"
    assert backend(loaded).describe()["precision"] == "bf16"
    assert backend(loaded, precision="f32").describe()["precision"] == "fp32"  # the user can force f32


def test_an_int8_ir_with_a_bf16_remainder_runs_its_float_layers_in_bf16(tmp_path: Path) -> None:
    """On an encoder NNCF leaves the attention MatMuls in float: the remainder runs them in BF16."""
    import tfcpu
    from tfcpu.graph.encoder import build_encoder
    from tfcpu.quantize import Quantizer

    net = tfcpu.load(build_encoder(layers=1, width=32, heads=2, seq_len=16))
    int8 = Quantizer().int8().calibrate("synthetic", batches=2, batch_size=4).backend("openvino")
    plan = int8.remainder("bf16")
    if not tfcpu.Topology.detect().precisions["bf16"].accelerated:
        with pytest.raises(ConfigError, match="AVX512_BF16"):
            plan.run(net)
        return
    r = plan.run(net)
    r.model.save(tmp_path / "m.xml")
    loaded = tfcpu.load(tmp_path / "m.xml")
    assert loaded.metadata["openvino_precision"] == "bf16"
    layers = backend(loaded).describe()["compute_layers"]
    plain = backend(
        Quantizer().int8().calibrate("synthetic", batches=2, batch_size=4).backend("openvino").run(net).model
    )
    assert any(k.endswith(":bf16") for k in layers) and any(k.endswith((":i8", ":u8")) for k in layers), layers
    assert not any(k.endswith(":bf16") for k in plain.describe()["compute_layers"])  # the default stays f32


def _one_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0]


def test_truncated_or_incomplete_ir_is_one_clear_error(int8_result: Any, tmp_path: Path) -> None:
    import tfcpu

    good = int8_result.model.save(tmp_path / "good.xml")
    xml, weights = good.read_bytes(), good.with_suffix(".bin").read_bytes()
    cases = {
        "cut_xml": (xml[: len(xml) // 2], weights, "cannot read the OpenVINO IR"),
        "cut_bin": (xml, weights[: len(weights) // 2], "cannot read the OpenVINO IR"),
        "no_bin": (xml, None, "no .bin beside its .xml"),
    }
    for name, (x, w, message) in cases.items():
        (tmp_path / f"{name}.xml").write_bytes(x)
        if w is not None:
            (tmp_path / f"{name}.bin").write_bytes(w)
        with pytest.raises(ModelError) as info:
            tfcpu.load(tmp_path / f"{name}.xml")
        assert message in _one_line(info.value) and f"{name}.xml" in _one_line(info.value)
        assert "Exception from src" not in str(info.value)


def test_failed_save_leaves_nothing_behind(int8_result: Any, tmp_path: Path) -> None:
    (tmp_path / "out.bin").mkdir()  # the .bin cannot be replaced
    with pytest.raises(ModelError, match="cannot write the OpenVINO IR"):
        int8_result.model.save(tmp_path / "out.xml")
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_quantize_cli_writes_ir(net: Model, tmp_path: Path) -> None:
    src = net.save(tmp_path / "net.pb")
    out = tmp_path / "net.xml"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    argv = [sys.executable, "-m", "tfcpu", "quantize", str(src), "-o", str(out), "--batches", "2", "--json"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)  # NNCF's progress bars stayed off stdout
    assert data["precision"] == "int8" and data["output"] == str(out) and out.with_suffix(".bin").is_file()
    bad = subprocess.run([*argv[:6], str(tmp_path / "x.pb"), "--backend", "openvino"], capture_output=True, text=True)
    assert bad.returncode == 2 and "must end in .xml" in bad.stderr


# -- the missing extra ---------------------------------------------------------------------------------
MISSING = """
import sys
sys.modules["openvino"] = None  # what an environment without the package looks like to import
import tfcpu
from tfcpu.errors import MissingDependencyError
from tfcpu.runtime.backends._base import backend_class
for call in (lambda: backend_class("openvino"), lambda: tfcpu.load(sys.argv[1])):
    try:
        call()
    except MissingDependencyError as exc:
        print(str(exc).replace("\\n", " | "))
    else:
        print("no error")
"""


def test_missing_openvino_names_the_extra(tmp_path: Path) -> None:
    xml = tmp_path / "m.xml"
    xml.write_text("<net/>")
    xml.with_suffix(".bin").write_bytes(b"\0")
    proc = subprocess.run([sys.executable, "-c", MISSING, str(xml)], capture_output=True, text=True, timeout=300)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and len(lines) == 2, proc.stderr[-2000:]
    for line in lines:
        assert line.startswith("openvino is not installed") and 'pip install "tfcpu[openvino]"' in line
