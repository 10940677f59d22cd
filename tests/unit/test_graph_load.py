"""tfcpu.load, Model.summary/save and the inspect/optimize CLI on tiny graphs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from test_graph_builders import tf, tf1_style_graph

import tfcpu
from tfcpu.cli.main import main
from tfcpu.errors import GraphError, ModelError, TfcpuError
from tfcpu.graph.summary import GraphSummary


@pytest.fixture
def pb(tmp_path: Path) -> Path:
    path = tmp_path / "tf1.pb"
    path.write_bytes(tf1_style_graph().SerializeToString())
    return path


def _untouched(path: Path):
    before = (path.read_bytes() if path.is_file() else None, path.stat().st_mtime_ns)

    def check() -> None:
        assert (path.read_bytes() if path.is_file() else None, path.stat().st_mtime_ns) == before

    return check


def test_load_pb_infers_signature_and_accepts_names_with_or_without_index(pb: Path):
    model = tfcpu.load(pb)
    assert model.input_names == ("x:0",)
    assert set(model.output_names) == {"out:0", "unused:0"}  # the sinks
    named = tfcpu.load(pb, inputs="x:0", outputs=["out"])
    assert named.outputs[0].name == "out:0" and named.outputs[0].shape == (None, 5)
    assert named.inputs[0].shape == (None, 8, 8, 3) and named.inputs[0].dtype == "float32"


def test_unknown_name_says_did_you_mean(pb: Path):
    check = _untouched(pb)
    with pytest.raises(ModelError, match="did you mean 'out'"):
        tfcpu.load(pb, outputs="outt")
    check()


@pytest.mark.parametrize("damage", ["empty", "truncated_mid", "truncated_at_node", "garbage"])
def test_damaged_files_raise_and_stay_untouched(pb: Path, damage: str):
    data = pb.read_bytes()
    if damage == "empty":
        pb.write_bytes(b"")
    elif damage == "truncated_mid":
        pb.write_bytes(data[: len(data) // 2 + 3])
    elif damage == "truncated_at_node":
        # Cut exactly after the first complete node: protobuf parses it happily.
        graph = tf.compat.v1.GraphDef()
        graph.node.add().CopyFrom(tf1_style_graph().node[0])
        pb.write_bytes(graph.SerializeToString())
    else:
        pb.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    check = _untouched(pb)
    with pytest.raises(TfcpuError) as info:
        tfcpu.load(pb)
    assert str(pb) in str(info.value)
    check()


def test_a_complete_graph_without_versions_loads_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """TensorFlow's C++ graph_transforms writes GraphDefs without a versions field: such a file is the
    paper's own step 4 output, so it loads (saying so); a truncated one still fails (test above)."""
    graph = tf1_style_graph()
    graph.ClearField("versions")
    path = tmp_path / "transformed.pb"
    path.write_bytes(graph.SerializeToString())
    with caplog.at_level("WARNING", logger="tfcpu.graph.load"):
        model = tfcpu.load(path)
    assert len(model.graph_def.node) >= len(graph.node) - 1 and model.outputs
    assert "no versions field" in caplog.text


def test_missing_file_and_non_saved_model_directory(tmp_path: Path):
    with pytest.raises(ModelError, match="not found"):
        tfcpu.load(tmp_path / "nope.pb")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "variables").mkdir()
    check = _untouched(tmp_path / "d")
    with pytest.raises(ModelError, match="not a SavedModel"):
        tfcpu.load(tmp_path / "d")
    check()


def test_file_over_2_gib_is_refused_before_reading(tmp_path: Path):
    big = tmp_path / "big.pb"
    with open(big, "wb") as fh:
        fh.truncate(2 * 1024**3 + 10)  # sparse: no 2 GiB written
    with pytest.raises(ModelError, match="larger than 2 GiB"):
        tfcpu.load(big)
    assert big.stat().st_size == 2 * 1024**3 + 10


def _write(tmp_path: Path, graph_def) -> Path:
    path = tmp_path / "g.pb"
    graph_def.versions.producer = 1000
    path.write_bytes(graph_def.SerializeToString())
    return path


def test_cycle_duplicates_dangling_and_variables_are_refused(tmp_path: Path):
    def graph(*nodes):
        g = tf.compat.v1.GraphDef()
        for name, op, inputs in nodes:
            n = g.node.add()
            n.name, n.op = name, op
            n.input.extend(inputs)
            n.attr["T"].type = 1
        return g

    cases = [
        (graph(("a", "Relu", ["b"]), ("b", "Relu", ["a"])), GraphError, "cycle"),
        (graph(("a", "Relu", []), ("a", "Relu", [])), GraphError, "duplicate"),
        (graph(("a", "Relu", ["ghost"])), GraphError, "does not exist"),
        (graph(("v", "VariableV2", [])), ModelError, "not frozen"),
    ]
    for g, error, needle in cases:
        path = _write(tmp_path, g)
        check = _untouched(path)
        with pytest.raises(error, match=needle):
            tfcpu.load(path)
        check()


def test_tf_function_concrete_function_and_keras_models(tmp_path: Path):
    weights = tf.Variable(np.eye(3, dtype=np.float32) * 2)

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="inp")])
    def fn(x):
        return tf.matmul(x, weights)

    for source in (fn, fn.get_concrete_function()):
        model = tfcpu.load(source)
        assert "VarHandleOp" not in model.op_counts() and model.inputs[0].shape == (None, 3)
    keras_model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)])
    path = tmp_path / "m.keras"
    keras_model.save(path)
    for source in (keras_model, path):
        model = tfcpu.load(source)
        assert model.outputs[0].shape == (None, 2) and "MatMul" in model.op_counts()
    import tf_keras

    legacy = tf_keras.Sequential([tf_keras.layers.Dense(2, input_shape=(4,))])
    assert tfcpu.load(legacy).outputs[0].shape == (None, 2)


def test_saved_model_signature_choice(tmp_path: Path):
    module = tf.Module()
    module.w = tf.Variable(3.0)
    module.f = tf.function(lambda x: x * module.w, input_signature=[tf.TensorSpec([2], tf.float32)])
    module.g = tf.function(lambda x: x + module.w, input_signature=[tf.TensorSpec([2], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"times": module.f, "plus": module.g})
    with pytest.raises(ModelError, match="several signatures"):
        tfcpu.load(tmp_path / "sm")
    with pytest.raises(ModelError, match="did you mean 'times'"):
        tfcpu.load(tmp_path / "sm", signature="time")
    model = tfcpu.load(tmp_path / "sm", signature="plus")
    assert "AddV2" in model.op_counts() and model.metadata["signature"] == "plus"


def test_summary_counts_and_renders(pb: Path):
    summary = tfcpu.load(pb, outputs="out").summary()
    assert summary.unfolded_batch_norms == 2 and summary.variables == ()
    assert summary.op_counts["Conv2D"] == 2 and summary.control_edges == 0
    # 3*3*3*4 + 4*4 + 3*3*4*2 + 4*8 + 8*5 + 5*3 + 1*1*3*2 + the Mean axes (2)
    assert summary.const_parameters == 108 + 16 + 72 + 32 + 40 + 15 + 6 + 2
    assert summary.next_command.startswith("tfcpu bench ") and "--outputs out:0" in summary.next_command
    assert GraphSummary.from_dict(json.loads(json.dumps(summary.to_dict()))) == summary
    assert "x:0" in summary._repr_html_()


def test_save_is_atomic_and_round_trips(tmp_path: Path, pb: Path):
    model = tfcpu.load(pb, outputs="out")
    for name in ("a.pb", "a.pbtxt"):
        path = model.save(tmp_path / name)
        again = tfcpu.load(path, outputs="out")
        assert again.graph_def == model.graph_def
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pb", "a.pbtxt", "tf1.pb"]
    with pytest.raises(ModelError, match=r"\.pb, \.pbtxt, \.xml, or a directory"):
        model.save(tmp_path / "a.onnx")


def test_cli_inspect_and_optimize(pb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["inspect", str(pb), "--outputs", "out", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unfolded_batch_norms"] == 2
    out = tmp_path / "opt.pb"
    paper = (
        "strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) "
        "fold_constants(ignore_errors=true) fold_old_batch_norms fold_batch_norms"
    )
    check = _untouched(pb)
    assert main(["optimize", str(pb), "-o", str(out), "--outputs", "out", "--transforms", paper, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["check"]["passed"] and "FusedBatchNorm" not in data["ops_after"]
    assert tfcpu.load(out, outputs="out").summary().unfolded_batch_norms == 0
    check()
    assert main(["optimize", str(pb), "-o", str(pb)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "missing.pb")]) == 2
    assert main(["optimize", str(pb), "-o", str(out), "--transforms", "fold_constant"]) == 2
    assert "did you mean" in capsys.readouterr().err
    check()
    assert os.path.exists(out)


def test_bare_application_names_resolve_only_when_no_file_exists(tmp_path: Path):
    from tfcpu.graph.load import _application_name

    assert _application_name("keras:ResNet50") == "ResNet50"
    assert _application_name("MobileNetV2") == "MobileNetV2"
    with pytest.raises(tfcpu.ConfigError, match="did you mean 'ResNet50'"):
        _application_name("keras:ResNet5")
    with pytest.raises(ModelError, match="did you mean 'ResNet50'"):
        tfcpu.load("ResNet5")  # neither a file nor an application: suggest the application
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        (tmp_path / "ResNet50").mkdir()
        assert _application_name("ResNet50") is None
    finally:
        os.chdir(cwd)


def test_needs_onednn_is_read_from_the_ops(tmp_path: Path) -> None:
    from dataclasses import replace

    from tests.graphs import tiny_convnet
    from tfcpu.cli.bench import _looks_quantised

    fp32 = tiny_convnet()
    assert fp32.needs_onednn is False
    assert replace(fp32, metadata={"needs_onednn": True}).needs_onednn is True  # a BF16 rewrite says so
    gd = tf.compat.v1.GraphDef()
    gd.CopyFrom(fp32.graph_def)
    conv = next(n for n in gd.node if n.op == "Conv2D")
    conv.op = "QuantizedConv2DWithBiasAndReluAndRequantize"  # only the op type matters here
    int8 = replace(fp32, graph_def=gd)
    assert int8.needs_onednn is True
    assert _looks_quantised(str(int8.save(tmp_path / "int8.pb"))) is True
    assert _looks_quantised(str(fp32.save(tmp_path / "fp32.pb"))) is False
    assert _looks_quantised(str(tmp_path / "missing.pb")) is False
