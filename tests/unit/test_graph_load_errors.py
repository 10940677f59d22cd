"""tfcpu.load's own messages where TensorFlow's would mislead: wrong input names, SavedModels without variables."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from test_graph_builders import graph_def_of, tf, tf1_style_graph, v1

import tfcpu
from tfcpu.cli.main import main
from tfcpu.errors import ModelError


def _two_inputs_pb(tmp_path: Path) -> Path:
    def build() -> None:
        a = v1.placeholder(tf.float32, [None, 3], name="image")
        b = v1.placeholder(tf.float32, [None, 3], name="mask")
        tf.multiply(a, b, name="out")

    path = tmp_path / "two.pb"
    path.write_bytes(graph_def_of(build).SerializeToString())
    return path


def test_a_wrong_input_name_lists_the_graphs_placeholders(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    pb = _two_inputs_pb(tmp_path)
    with pytest.raises(
        ModelError, match=r"(?s)no input node 'imag'.*did you mean 'image'.*Placeholders are: image, mask"
    ):
        tfcpu.load(pb, inputs="imag")
    with pytest.raises(ModelError, match=r"(?s)no input node 'pixels'.*Placeholders are: image, mask.*--inputs"):
        tfcpu.load(pb, inputs=["pixels:0"])
    assert main(["inspect", str(pb), "--inputs", "pixels"]) == 2
    assert "Placeholders are: image, mask" in capsys.readouterr().err
    with pytest.raises(ModelError, match="did you mean 'out'") as info:  # outputs keep their message
        tfcpu.load(pb, outputs="outt")
    assert "Placeholders" not in str(info.value)


def _saved_model(tmp_path: Path) -> Path:
    rng = np.random.default_rng(2)
    module = tf.Module()
    module.w = tf.Variable(rng.standard_normal((3, 2)).astype(np.float32))
    module.b = tf.Variable(rng.standard_normal(2).astype(np.float32))
    module.f = tf.function(
        lambda x: tf.matmul(x, module.w) + module.b, input_signature=[tf.TensorSpec([None, 3], tf.float32)]
    )
    path = tmp_path / "sm"
    tf.saved_model.save(module, str(path), signatures=module.f)
    return path


def test_a_saved_model_without_variables_gets_a_tfcpu_hint(tmp_path: Path):
    path = _saved_model(tmp_path)
    model = tfcpu.load(path)  # complete: loads and runs
    assert model.inputs[0].shape == (None, 3)
    shutil.rmtree(path / "variables")
    with pytest.raises(ModelError) as info:
        tfcpu.load(path)
    text = str(info.value)
    assert "the SavedModel's variables are missing" in text and "no variables/ subdirectory" in text
    assert "copy the whole SavedModel directory" in text
    assert "experimental_io_device" not in text and "different device" not in text


def test_a_saved_model_with_empty_variables_says_what_is_there(tmp_path: Path):
    path = _saved_model(tmp_path)
    for item in (path / "variables").iterdir():
        item.unlink()
    with pytest.raises(ModelError, match=r"variables/ does not hold the values .* \(it has: nothing\)"):
        tfcpu.load(path)


def test_default_inputs_still_load(tmp_path: Path):
    pb = tmp_path / "tf1.pb"
    pb.write_bytes(tf1_style_graph().SerializeToString())
    assert tfcpu.load(pb, inputs="x").input_names == ("x:0",)
