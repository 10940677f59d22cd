"""Issue 23, parts 6 and 7: errors keep the runtime's cause; the OpenVINO IR and multi-input paths work.

* a TensorFlow run error says why ("You must feed a value for placeholder ..."), not only
  "Graph execution error:";
* NaN/inf calibration data is refused before INC, naming the input;
* a hostile Const that expands to terabytes is a ModelError naming the node, before allocation;
* a symlink loop is called a symlink loop;
* ``quantize`` of a valid IR works (the GraphDef optimiser is skipped) and ``--backend tensorflow``
  on an IR is refused before any work;
* multi-input models calibrate from ``.npz`` files keyed by input name (one file or a directory).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.graphs import dense_softmax, tiny_convnet, two_inputs
from tfcpu.errors import ConfigError, ModelError, RunnerError, runtime_reason
from tfcpu.graph.load import load
from tfcpu.graph.model import Model
from tfcpu.quantize import Quantizer
from tfcpu.quantize.calibration import materialise

TF_RUN_ERROR = (
    "Graph execution error:\n\nDetected at node 'y' defined at (most recent call last):\n"
    "  File \"/x/script.py\", line 3, in <module>\n    main()\nNode: 'y'\n"
    "You must feed a value for placeholder tensor 'y' with dtype float and shape [?,4]\n"
    "\t [[{{node y}}]]\n\nOriginal stack trace for 'y':\n"
)


# -- the runtime's cause -----------------------------------------------------------------------------------
def test_runtime_reason_keeps_the_cause_and_drops_the_stack_trace() -> None:
    reason = runtime_reason(RuntimeError(TF_RUN_ERROR))
    assert reason == "You must feed a value for placeholder tensor 'y' with dtype float and shape [?,4]"
    ov = "Exception from src/inference/src/cpp/infer_request.cpp:223:\n[ GENERAL_ERROR ] Shape mismatch for x\n"
    assert runtime_reason(RuntimeError(ov)) == "[ GENERAL_ERROR ] Shape mismatch for x"
    long = runtime_reason(RuntimeError("why " * 1000), limit=100)
    assert len(long) == 100 and long.endswith("…")
    assert runtime_reason(RuntimeError("")) == "RuntimeError"


def test_a_tensorflow_run_error_keeps_its_cause() -> None:
    import tensorflow as tf

    from tfcpu.runtime.runner import Runner

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        y = tf.compat.v1.placeholder(tf.float32, [None, 4], name="y")
        tf.add(x, y, name="out")
    model = load(g.as_graph_def(), inputs=["x"], outputs=["out"])  # y is needed but not an input
    with pytest.raises(RunnerError) as info, Runner(model) as runner:
        runner.run({"x": np.ones((2, 4), np.float32)})
    text = str(info.value)
    assert "You must feed a value for placeholder tensor 'y'" in text, text
    assert "Detected at node" not in text and "[[{{node" not in text


# -- calibration data that would break INC ---------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_calibration_data_is_refused_before_inc_naming_the_input(bad: float) -> None:
    data = np.random.default_rng(0).standard_normal((8, 8, 8, 1)).astype(np.float32)
    data[3, 1, 2, 0] = bad
    plan = Quantizer().int8().calibrate(data, batches=2, batch_size=4)
    with pytest.raises(ConfigError, match=r"calibration input 'x' holds (NaN|inf) \[calibration batch 0\]"):
        plan.run(tiny_convnet())


def test_calibration_batches_of_unequal_sizes_are_refused() -> None:
    batch = {"a": np.ones((2, 3), np.float32), "n": np.ones(5, np.int32)}
    with pytest.raises(ConfigError, match="different batch sizes"):
        materialise(two_inputs(), [batch], batches=1, batch_size=None)


# -- hostile files ---------------------------------------------------------------------------------------------
def _with_huge_const() -> object:
    """dense_softmax plus ``big`` = Const float32 [10**6, 10**6] stored as one value -> Mul(big, 2) = "bigmul"."""
    from tensorflow.core.framework import graph_pb2

    gd = graph_pb2.GraphDef()
    gd.CopyFrom(dense_softmax().graph_def)
    for name, shape in (("big", (1_000_000, 1_000_000)), ("two", ())):
        node = gd.node.add(name=name, op="Const")
        node.attr["dtype"].type = 1
        tensor = node.attr["value"].tensor
        tensor.dtype = 1
        tensor.float_val.append(0.5)
        for d in shape:
            tensor.tensor_shape.dim.add().size = d
    mul = gd.node.add(name="bigmul", op="Mul", input=["big", "two"])
    mul.attr["T"].type = 1
    return gd


def test_a_huge_const_is_a_model_error_naming_the_node(tmp_path: Path) -> None:
    path = tmp_path / "huge.pb"
    path.write_bytes(_with_huge_const().SerializeToString())  # type: ignore[attr-defined]
    with pytest.raises(ModelError, match=r"constant 'big' of shape \[1000000, 1000000\] needs 3,725\.3 GiB"):
        load(path)
    proc = subprocess.run(
        [sys.executable, "-m", "tfcpu", "optimize", str(path), "-o", str(tmp_path / "o.pb")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "'big'" in proc.stderr and "tfcpu bug" not in proc.stderr and "MemoryError" not in proc.stderr
    assert not (tmp_path / "o.pb").exists()


def test_a_symlink_loop_is_called_a_symlink_loop(tmp_path: Path) -> None:
    loop = tmp_path / "model.pb"
    loop.symlink_to(loop)
    with pytest.raises(ModelError, match="symlink loop") as info:
        load(loop)
    assert "did you mean" not in str(info.value)
    a, b = tmp_path / "a.pb", tmp_path / "b.pb"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(ModelError, match="symlink loop"):
        load(a)


# -- the OpenVINO IR path ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ir_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.openvino_nets import bn_classifier
    from tfcpu.graph.openvino_ir import from_ov_model
    from tfcpu.runtime.backends._openvino_util import convert_graph

    net = bn_classifier()
    path = tmp_path_factory.mktemp("ir") / "model.xml"
    from_ov_model(convert_graph(net), inputs=net.inputs, outputs=net.outputs, source="bn").save(path)
    return path


def test_quantize_of_an_ir_skips_the_graphdef_optimiser(ir_path: Path) -> None:
    model = load(ir_path)
    result = Quantizer().int8().calibrate("synthetic", batches=2, batch_size=2).backend("openvino").run(model)
    assert result.quantized and result.precision == "int8"
    assert result.optimization is None


def test_quantize_of_an_ir_for_tensorflow_is_refused_before_any_work(ir_path: Path) -> None:
    model = load(ir_path)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="cannot be quantised to int8 for tensorflow") as caught:
        Quantizer().int8().calibrate("synthetic", batches=2, batch_size=2).run(model)
    assert "--backend openvino" in (caught.value.hint or "")  # the target that can, read from the registry
    assert time.perf_counter() - start < 2.0


def test_cli_quantize_of_an_ir(ir_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "q.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "tfcpu", "quantize", str(ir_path), "-o", str(out), "--batches", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tfcpu bug" not in proc.stderr and out.exists() and out.with_suffix(".bin").exists()
    bad = tmp_path / "q.pb"
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "tfcpu", "quantize", str(ir_path), "-o", str(bad), "--backend", "tensorflow"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--backend tensorflow" in proc.stderr and not bad.exists()
    assert time.perf_counter() - start < 8.0  # refused before TensorFlow or the model loads


# -- multi-input calibration from .npz -----------------------------------------------------------------------
def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def test_an_npz_file_keyed_by_input_name_calibrates_a_multi_input_model(tmp_path: Path) -> None:
    model: Model = two_inputs()
    cal = _npz(tmp_path / "cal.npz", a=np.ones((10, 3), np.float32), n=np.arange(10, dtype=np.int32))
    batches = materialise(model, str(cal), batches=5, batch_size=4)
    assert [b["a:0"].shape[0] for b in batches] == [4, 4, 2] and set(batches[0]) == {"a:0", "n:0"}
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(3):
        _npz(calib / f"{i:02d}.npz", a=np.ones((2, 3), np.float32), **{"n:0": np.arange(2, dtype=np.int32)})
    assert len(materialise(model, calib, batches=10, batch_size=None)) == 3


def test_npz_keys_that_miss_or_name_no_input_are_refused_naming_the_file(tmp_path: Path) -> None:
    model = two_inputs()
    missing = _npz(tmp_path / "missing.npz", a=np.ones((2, 3), np.float32))
    with pytest.raises(ConfigError, match=r"no array for input\(s\) \['n'\]") as info:
        materialise(model, str(missing), batches=1, batch_size=None)
    assert "missing.npz" in str(info.value)
    extra = _npz(tmp_path / "extra.npz", a=np.ones((2, 3), np.float32), nn=np.ones(2, np.int32))
    with pytest.raises(ConfigError, match=r"names no input: 'nn'") as info:
        materialise(model, str(extra), batches=1, batch_size=None)
    assert "did you mean 'n'" in str(info.value) and "extra.npz" in str(info.value)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    np.save(mixed / "a.npy", np.ones((2, 3), np.float32))
    _npz(mixed / "b.npz", a=np.ones((2, 3), np.float32), n=np.ones(2, np.int32))
    with pytest.raises(ConfigError, match=r"mixes \.npy and \.npz"):
        materialise(model, mixed, batches=1, batch_size=None)


def test_cli_calibrates_a_multi_input_model_from_npz(tmp_path: Path) -> None:
    import tfcpu
    from tfcpu.graph.encoder import build_encoder

    bert = tfcpu.load(build_encoder(layers=1, width=32, heads=2, seq_len=16))
    model = bert.save(tmp_path / "bert.pb")
    rng = np.random.default_rng(0)
    cal = _npz(
        tmp_path / "cal.npz",
        token_ids=rng.integers(0, 1000, size=(16, 16)).astype(np.int32),
        mask=np.ones((16, 16), np.int32),
    )
    out = tmp_path / "bert_int8.pb"
    argv = ["quantize", str(model), "-o", str(out), "--calibration", str(cal), "--batch-size", "8", "--json"]
    proc = subprocess.run([sys.executable, "-m", "tfcpu", *argv], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '"batches": 2' in proc.stdout and '"samples": 16' in proc.stdout and out.exists()
