"""SavedModel out: what tfcpu writes loads in a plain TensorFlow process with the model's signature.

Each round trip exports a Model, loads the directory in a fresh ``python`` that imports only
TensorFlow (``tf.saved_model.load(...).signatures[...]``), and compares with `Runner` on the same
graph in this process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.graphs import dense_softmax, two_inputs
from tfcpu.cli.main import main
from tfcpu.errors import ConfigError, ModelError
from tfcpu.graph.load import load
from tfcpu.graph.model import Model
from tfcpu.runtime.runner import Runner


def _plain_tf(directory: Path, feeds: dict[str, np.ndarray], signature: str = "serving_default") -> dict[str, Any]:
    """Call the SavedModel's signature in a fresh process with only TensorFlow; outputs and the signature."""
    np.savez(directory.parent / "feeds.npz", **feeds)
    code = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np
        import tensorflow as tf
        assert "tfcpu" not in sys.modules
        fn = tf.saved_model.load({str(directory)!r}).signatures[{signature!r}]
        feeds = dict(np.load({str(directory.parent / "feeds.npz")!r}))
        out = fn(**{{k: tf.constant(v) for k, v in feeds.items()}})
        args, kwargs = fn.structured_input_signature
        print(json.dumps({{
            "outputs": {{k: v.numpy().tolist() for k, v in out.items()}},
            "inputs": {{k: [s.dtype.name, s.shape.as_list()] for k, s in kwargs.items()}},
        }}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd="/")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _runner(model: Model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    with Runner(model) as runner:
        return dict(runner.run(feeds))


def test_frozen_graph_round_trips_through_a_plain_tensorflow_process(tmp_path: Path):
    model = dense_softmax()
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    written = model.save(tmp_path / "export")
    assert written == tmp_path / "export" and (written / "saved_model.pb").is_file()
    plain = _plain_tf(written, {"x": x})
    assert plain["inputs"] == {"x": ["float32", [None, 4]]}  # the dynamic batch kept
    expected = _runner(model, {"x:0": x})["probs:0"]
    np.testing.assert_allclose(np.array(plain["outputs"]["probs"]), expected, rtol=1e-5, atol=1e-6)

    record = json.loads((written / "assets.extra" / "tfcpu.json").read_text())
    assert record["signature"]["inputs"][0]["key"] == "x" and record["precision"] == "fp32"
    again = load(written)
    assert [(s.dtype, s.shape) for s in again.inputs] == [(s.dtype, s.shape) for s in model.inputs]
    assert dict(again.metadata["signature_keys"]["outputs"]).popitem()[1] == "probs"
    ops = {op: n for op, n in again.op_counts().items() if op != "Identity"}
    assert ops == {op: n for op, n in model.op_counts().items() if op != "Identity"}


def test_saved_model_keys_survive_optimize_and_two_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    import tensorflow as tf

    class TwoHeads(tf.Module):
        def __init__(self) -> None:
            rng = np.random.default_rng(1)
            self.w = tf.Variable(rng.normal(size=(6, 4)).astype(np.float32))
            self.b = tf.Variable(rng.normal(size=(4,)).astype(np.float32))

        @tf.function(
            input_signature=[tf.TensorSpec([None, 6], tf.float32, name="features"), tf.TensorSpec([None], tf.int32)]
        )
        def serve(self, features, offset):  # type: ignore[no-untyped-def]
            logits = tf.matmul(features, self.w) + self.b
            return {"scores": tf.nn.softmax(logits), "shifted": logits + tf.cast(offset[:, None], tf.float32)}

    heads = TwoHeads()
    source = tmp_path / "source"
    tf.saved_model.save(heads, str(source), signatures={"classify": heads.serve})
    out = tmp_path / "optimised"
    assert main(["optimize", str(source), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out

    feeds = {"features": np.random.default_rng(2).normal(size=(3, 6)).astype(np.float32), "offset": np.arange(3)}
    feeds["offset"] = feeds["offset"].astype(np.int32)
    plain = _plain_tf(out, feeds, signature="classify")  # the source's signature name kept
    assert plain["inputs"] == {"features": ["float32", [None, 6]], "offset": ["int32", [None]]}
    reference = _plain_tf(source, feeds, signature="classify")
    for key in ("scores", "shifted"):
        np.testing.assert_allclose(plain["outputs"][key], reference["outputs"][key], rtol=1e-5, atol=1e-6)


def test_several_signatures_are_optimised_and_written_back_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SavedModel with three signatures (two of them the same function, as Keras exports ``serve``
    and ``serving_default``) comes out of ``tfcpu optimize`` with all three, each giving the source's
    outputs in plain TensorFlow; the shared one is optimised once and stored once."""
    import tensorflow as tf

    import tfcpu

    class Model2(tf.Module):
        def __init__(self) -> None:
            rng = np.random.default_rng(3)
            self.w = tf.Variable(rng.normal(size=(6, 5)).astype(np.float32))
            self.scale = tf.Variable(rng.uniform(0.5, 1.5, size=(5,)).astype(np.float32))  # a folded norm
            self.shift = tf.Variable(rng.normal(size=(5,)).astype(np.float32))
            self.head = tf.Variable(rng.normal(size=(5, 3)).astype(np.float32))

        def _features(self, x):  # type: ignore[no-untyped-def]
            return tf.nn.relu(tf.matmul(x, self.w) * self.scale + self.shift)

        @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="x")])
        def classify(self, x):  # type: ignore[no-untyped-def]
            return {"probs": tf.nn.softmax(tf.matmul(self._features(x), self.head))}

        @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="x")])
        def embed(self, x):  # type: ignore[no-untyped-def]
            return {"features": tf.identity(self._features(x))}

    module = Model2()
    source = tmp_path / "source"
    tf.saved_model.save(module, str(source), signatures={"classify": module.classify, "embed": module.embed,
                                                          "serving_default": module.classify})  # fmt: skip
    loaded = tfcpu.load_signatures(source)
    assert list(loaded) == ["serving_default", "classify", "embed"]  # the default first
    keys = {k: list(m.metadata["signature_keys"]["outputs"].values()) for k, m in loaded.items()}
    assert keys == {"serving_default": ["probs"], "classify": ["probs"], "embed": ["features"]}

    out = tmp_path / "optimised"
    assert main(["optimize", str(source), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "signature 'embed'" in printed and "embed:" in printed.splitlines()[-1]

    x = np.random.default_rng(4).normal(size=(4, 6)).astype(np.float32)
    for name, key in (("serving_default", "probs"), ("classify", "probs"), ("embed", "features")):
        plain, reference = _plain_tf(out, {"x": x}, signature=name), _plain_tf(source, {"x": x}, signature=name)
        assert plain["inputs"] == {"x": ["float32", [None, 6]]}
        np.testing.assert_allclose(plain["outputs"][key], reference["outputs"][key], rtol=1e-5, atol=1e-6)

    record = json.loads((out / "assets.extra" / "tfcpu.json").read_text())
    assert set(record["signatures"]) == {"serving_default", "classify", "embed"}
    assert all(entry["optimized_with"] for entry in record["signatures"].values())
    again = tfcpu.load_signatures(out)
    assert list(again) == ["serving_default", "classify", "embed"]
    assert list(again["embed"].metadata["optimized_with"]) == record["signatures"]["embed"]["optimized_with"]
    assert again["embed"].op_counts() != again["classify"].op_counts()  # each its own graph
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    assert "signatures 'serving_default', 'classify', 'embed'" in capsys.readouterr().out
    # serving_default and classify are one function in the file (equal graphs: one set of weights)
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((out / "saved_model.pb").read_bytes())
    sig_defs = proto.meta_graphs[0].signature_def
    called = {k: sig_defs[k].outputs[next(iter(sig_defs[k].outputs))].name for k in ("serving_default", "classify")}
    assert set(sig_defs) >= {"serving_default", "classify", "embed"}
    consts = [n for f in proto.meta_graphs[0].graph_def.library.function for n in f.node_def if n.op == "Const"]
    weights = [n for n in consts if [d.size for d in n.attr["value"].tensor.tensor_shape.dim] == [5, 3]]
    assert len(weights) == 1, (called, [w.name for w in weights])  # the (5, 3) head is stored once

    # one signature asked for: one model, as before
    single = tmp_path / "embed.pb"
    assert main(["optimize", str(source), "--signature", "embed", "-o", str(single)]) == 0
    def ops(model: Model) -> dict[str, int]:
        return {op: n for op, n in model.op_counts().items() if op != "Identity"}  # the export names outputs

    assert ops(load(single)) == ops(again["embed"])
    with pytest.raises(ConfigError, match="input"):
        tfcpu.save_signatures(again, out)  # never over the SavedModel they were read from


def test_dynamic_sequence_encoder_keeps_its_dynamic_dims(tmp_path: Path):
    from tfcpu.graph.encoder import build_encoder

    model = load(build_encoder(layers=1, width=32, heads=2, seq_len=None, seed=3))
    assert all(s.shape == (None, None) for s in model.inputs)
    written = model.save(tmp_path / "encoder")
    rng = np.random.default_rng(0)
    for seq in (8, 24):
        ids = rng.integers(0, 100, size=(2, seq)).astype(model.inputs[0].dtype)
        mask = np.ones((2, seq), dtype=model.inputs[1].dtype)
        names = [s.node for s in model.inputs]
        plain = _plain_tf(written, dict(zip(names, (ids, mask), strict=True)))
        assert all(shape == [None, None] for _, shape in plain["inputs"].values())
        expected = _runner(model, {model.inputs[0].name: ids, model.inputs[1].name: mask})
        (key,) = plain["outputs"]
        np.testing.assert_allclose(np.array(plain["outputs"][key]), next(iter(expected.values())), atol=1e-5)


def test_tfsmlayer_and_tf_serving_layout(tmp_path: Path):
    import keras

    model = two_inputs()
    base = tmp_path / "serving" / "two"
    first = model.save(base, serving=True)
    second = model.save(base, serving=True)
    assert (first, second) == (base / "1", base / "2")
    layer = keras.layers.TFSMLayer(str(second), call_endpoint="serve")
    a = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    n = np.arange(4, dtype=np.int32)
    got = layer({"a": a, "n": n})
    expected = _runner(model, {"a:0": a, "n:0": n})["out:0"]
    np.testing.assert_allclose(np.asarray(next(iter(got.values()))), expected, rtol=1e-6)


def test_cli_writes_tf_serving_versions_and_refuses_bad_targets(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    pb = tmp_path / "model.pb"
    dense_softmax().save(pb)
    assert main(["optimize", str(pb), "--serving", str(tmp_path / "srv")]) == 0
    assert main(["optimize", str(pb), "--serving", str(tmp_path / "srv")]) == 0
    assert sorted(p.name for p in (tmp_path / "srv").iterdir()) == ["1", "2"]
    capsys.readouterr()
    foreign = tmp_path / "data"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    assert main(["optimize", str(pb), "-o", str(foreign)]) == 2
    assert "holds no SavedModel" in capsys.readouterr().err
    assert (foreign / "keep.txt").read_text() == "mine"
    with pytest.raises(ModelError, match="holds no SavedModel"):  # the API refuses it too
        dense_softmax().save(foreign)
    assert main(["optimize", str(pb), "-o", "x.pb", "--serving", str(tmp_path / "s")]) == 2
    assert main(["optimize", str(pb)]) == 2
    assert "no output named" in capsys.readouterr().err


def test_formats_registry_and_model_records_that_cannot_run(tmp_path: Path):
    from tfcpu import formats

    model = dense_softmax()
    assert model.format == "graphdef" and model.preferred_backend == formats.get("graphdef").backend
    assert formats.for_output(model, tmp_path / "d").name == "savedmodel"
    assert formats.for_output(model, tmp_path / "m.pbtxt").name == "graphdef"
    with pytest.raises(ConfigError, match="did you mean 'savedmodel'"):
        formats.get("savedmodle")
    with pytest.raises(ConfigError, match="cannot tell the format"):
        formats.for_output(model, tmp_path / "m.onnx")
    with pytest.raises(ModelError, match="cannot be written as openvino-ir"):
        model.save(tmp_path / "m.xml")

    record = Model.from_dict(json.loads(json.dumps(model.to_dict())))
    with pytest.raises(ConfigError, match="cannot run: it is a record"):
        Runner(record)
    with pytest.raises(ModelError, match="no graph"):
        record.save(tmp_path / "r")
