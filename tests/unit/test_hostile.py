"""A hostile corpus, built in code: each model tries something a model must not do while tfcpu reads it.

Every test asserts the refusal *and* the absence of the side effect (a sentinel path that must not
exist, the input's bytes unchanged). Where the attack is real only if TensorFlow itself would carry
it out, a control runs the same model with plain TensorFlow in a child process and sees the side
effect happen, so the refusal is what prevented it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.graphs import dense_softmax
from tfcpu.cli.main import main
from tfcpu.errors import ConfigError, ModelError, UnsafeModelError
from tfcpu.graph.load import load


def _digest(path: Path) -> str:
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return hashlib.sha256(b"".join(p.relative_to(path).as_posix().encode() + p.read_bytes() for p in files)).hexdigest()


def _python(code: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", textwrap.dedent(code)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


# -- a SavedModel whose resource initialiser writes files --------------------------------------
_INITIALISER_WRITES = """
import sys
import tensorflow as tf

sentinel, out = sys.argv[1], sys.argv[2]


class Evil(tf.saved_model.experimental.TrackableResource):
    def _create_resource(self):
        return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="")

    def _initialize(self):
        # TensorFlow runs this while it loads the SavedModel, before anyone calls a signature
        tf.raw_ops.SaveV2(prefix=sentinel + ".ckpt", tensor_names=["a"], shape_and_slices=[""],
                          tensors=[tf.constant(1.0)])
        tf.io.write_file(sentinel, "pwned")
        tf.raw_ops.AssignVariableOp(resource=self.resource_handle, value=tf.constant(2.0))


class M(tf.Module):
    def __init__(self):
        self.r = Evil()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def serve(self, x):
        return {"y": x * tf.raw_ops.ReadVariableOp(resource=self.r.resource_handle, dtype=tf.float32)}


m = M()
tf.saved_model.save(m, out, signatures=m.serve)
"""


@pytest.fixture(scope="module")
def initialiser_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("hostile_init")
    sentinel, model = root / "written-by-model", root / "model"
    proc = subprocess.run(
        [sys.executable, "-c", _INITIALISER_WRITES, str(sentinel), str(model)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not sentinel.exists()  # saving does not run the initialiser
    return model, sentinel


def test_plain_tensorflow_runs_the_initialiser_while_loading(initialiser_model: tuple[Path, Path]):
    model, sentinel = initialiser_model
    proc = _python(f"import tensorflow as tf; tf.saved_model.load({str(model)!r})")
    try:
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert sentinel.read_text() == "pwned"  # the attack is real: loading alone wrote the file
    finally:
        for path in sentinel.parent.glob("written-by-model*"):
            path.unlink()


def test_initialiser_that_writes_is_refused_before_tensorflow_loads(
    initialiser_model: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
):
    model, sentinel = initialiser_model
    before = _digest(model)
    assert not list(sentinel.parent.glob("written-by-model*"))
    with pytest.raises(UnsafeModelError, match="__inference__initializer") as info:
        load(model)
    assert info.value.report.ops == ("SaveV2", "WriteFile")  # type: ignore[attr-defined]
    for command in (["inspect"], ["optimize", "-o", str(model.parent / "o.pb")], ["quantize", "-o", "q.pb"]):
        assert main([command[0], str(model), *command[1:]]) == 2
        assert "unsafe op" in capsys.readouterr().err
    # bench in its own process, as a user runs it (it sets threads before TensorFlow starts)
    proc = subprocess.run(["tfcpu", "bench", str(model), "--steps", "1", "--warmup", "0", "--batch-size", "1"],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 2 and "unsafe op" in proc.stderr, proc.stderr[-2000:]
    assert not sentinel.exists() and not list(sentinel.parent.glob("written-by-model*"))
    assert not (model.parent / "o.pb").exists()
    assert _digest(model) == before


def test_the_saver_of_a_real_saved_model_passes_and_a_redirected_one_does_not(tmp_path: Path):
    import tensorflow as tf

    class Plain(tf.Module):
        def __init__(self) -> None:
            self.w = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def serve(self, x):  # type: ignore[no-untyped-def]
            return {"y": x * self.w}

    plain = Plain()
    tf.saved_model.save(plain, str(tmp_path / "sm"), signatures=plain.serve)
    assert load(tmp_path / "sm").inputs[0].dtype == "float32"

    from tfcpu.graph import safety
    from tfcpu.graph.safety_io import read_saved_model_proto, saver_scope

    meta = read_saved_model_proto(tmp_path / "sm").meta_graphs[0]
    scope = saver_scope(meta)
    assert scope.filename_node and scope.functions
    assert safety.scan(meta.graph_def, checkpoints=scope).safe
    # the saver's SaveV2 made to write a path of its own (a constant) is refused even inside the saver
    (save_fn,) = [f for f in meta.graph_def.library.function if "traced_save" in f.signature.name]
    save = next(n for n in save_fn.node_def if n.op == "SaveV2")
    const = save_fn.node_def.add(name="evil_prefix", op="Const")
    const.attr["dtype"].type = tf.string.as_datatype_enum
    const.attr["value"].tensor.CopyFrom(tf.make_tensor_proto("/tmp/evil"))
    save.input[0] = "evil_prefix:output:0"
    report = safety.scan(meta.graph_def, checkpoints=scope)
    assert [(f.op, f.category) for f in report.findings] == [("SaveV2", "file-write")]
    assert "not the one TensorFlow's loader gives" in report.findings[0].detail


# -- data pipelines that read and write files --------------------------------------------------
def _dataset_graph(source: Path, cache: Path) -> bytes:
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        ds = tf.data.experimental.CsvDataset(str(source), [tf.string]).cache(str(cache))
        first = tf.data.experimental.get_single_element(ds)[0]
        tf.identity(x + tf.cast(tf.strings.length(first), tf.float32), name="y")
    return g.as_graph_def().SerializeToString()


def test_dataset_that_reads_a_file_and_writes_a_cache_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    source = tmp_path / "system-file.csv"
    source.write_text("secret\n")
    cache = tmp_path / "cache"
    pb = tmp_path / "dataset.pb"
    pb.write_bytes(_dataset_graph(source, cache))
    before = _digest(pb)

    with pytest.raises(UnsafeModelError) as info:
        load(pb)
    report = info.value.report  # type: ignore[attr-defined]
    assert {f.category for f in report.findings} == {"dataset"}
    assert "CSVDatasetV2" in report.ops and any(op.startswith("CacheDataset") for op in report.ops)
    assert main(["inspect", str(pb)]) == 2
    assert "dataset" in capsys.readouterr().out
    assert not list(tmp_path.glob("cache*")) and _digest(pb) == before

    # control: TensorFlow running the same graph writes the cache
    proc = _python(
        f"""
        import tensorflow as tf
        gd = tf.compat.v1.GraphDef(); gd.ParseFromString(open({str(pb)!r}, "rb").read())
        g = tf.Graph()
        with g.as_default():
            tf.compat.v1.import_graph_def(gd, name="")
        with tf.compat.v1.Session(graph=g) as s:
            s.run("y:0", {{"x:0": [1.0]}})
        """
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list(tmp_path.glob("cache*"))


def test_unknown_op_and_side_effecting_print_are_refused():
    import tensorflow as tf

    model = dense_softmax()
    gd = tf.compat.v1.GraphDef()
    gd.CopyFrom(model.graph_def)
    gd.node.add(name="custom", op="TotallyCustomKernel")
    with pytest.raises(UnsafeModelError, match="not an op this TensorFlow knows"):
        load(gd)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        with tf.control_dependencies([tf.print(x)]):
            tf.identity(x, name="y")
    with pytest.raises(UnsafeModelError, match="PrintV2"):
        load(g.as_graph_def())
    assert load(g.as_graph_def(), allow_unsafe_ops="PrintV2").inputs[0].name == "x:0"


# -- Keras files that carry Python ------------------------------------------------------------
def _lambda_model(path: Path, sentinel: Path, legacy: bool) -> None:
    keras = "tf_keras" if legacy else "keras"
    proc = _python(
        f"""
        import {keras} as keras
        inp = keras.Input((4,))
        out = keras.layers.Lambda(lambda t: (open({str(sentinel)!r}, "w").write("pwned"), t)[1] * 2)(inp)
        keras.Model(inp, out).save({str(path)!r})
        """
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    sentinel.unlink(missing_ok=True)  # building the model ran the lambda once, in the maker's process


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_keras_file_with_python_is_refused_without_trust(
    tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
):
    sentinel = tmp_path / "pwned"
    path = tmp_path / f"lambda{suffix}"
    _lambda_model(path, sentinel, legacy=suffix == ".h5")
    before = _digest(path)
    with pytest.raises(ModelError, match="trust_code=True") as info:
        load(path)
    assert ".h5" in str(info.value) if suffix == ".h5" else "safe" in str(info.value).lower()
    assert main(["inspect", str(path)]) == 2
    assert "--trust-code" in capsys.readouterr().err
    assert not sentinel.exists() and _digest(path) == before


def test_trusting_a_legacy_h5_file_runs_its_code(tmp_path: Path):
    sentinel = tmp_path / "ran"
    path = tmp_path / "lambda.h5"
    _lambda_model(path, sentinel, legacy=True)
    model = load(path, trust_code=True)
    assert model.inputs[0].shape == (None, 4)
    assert sentinel.read_text() == "pwned"  # what the flag's help warns about


# -- outputs that would lose an input ---------------------------------------------------------
def test_output_inside_the_input_saved_model_is_refused_even_with_overwrite(tmp_path: Path, capsys):
    import tensorflow as tf

    class Plain(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        def serve(self, x):  # type: ignore[no-untyped-def]
            return {"y": x * 3.0}

    plain = Plain()
    sm = tmp_path / "sm"
    tf.saved_model.save(plain, str(sm), signatures=plain.serve)
    before = _digest(sm)
    for extra in ([], ["--overwrite"]):
        assert main(["optimize", str(sm), "-o", str(sm / "saved_model.pb"), *extra]) == 2
        assert "inside the input" in capsys.readouterr().err
    assert main(["optimize", str(sm), "-o", str(sm / "variables" / "new.pb")]) == 2
    link = tmp_path / "link"
    link.symlink_to(sm)
    assert main(["optimize", str(link), "-o", str(sm / "x.pb")]) == 2
    assert _digest(sm) == before


def test_output_linking_to_the_input_is_refused_and_overwrite_writes_through_links(tmp_path: Path, capsys):
    pb = tmp_path / "model.pb"
    dense_softmax().save(pb)
    before = _digest(pb)
    alias = tmp_path / "alias.pb"
    alias.symlink_to(pb)
    hard = tmp_path / "hard.pb"
    os.link(pb, hard)
    for out in (alias, hard):
        assert main(["optimize", str(pb), "-o", str(out)]) == 2
        assert "is the input file" in capsys.readouterr().err
    assert _digest(pb) == before

    other = tmp_path / "elsewhere" / "target.pb"
    other.parent.mkdir()
    other.write_bytes(b"old")
    link = tmp_path / "out.pb"
    link.symlink_to(other)
    assert main(["optimize", str(pb), "-o", str(link), "--overwrite"]) == 0
    capsys.readouterr()
    assert link.is_symlink() and os.readlink(link) == str(other)  # the link is kept ...
    assert other.read_bytes() != b"old" and load(other).inputs == load(pb).inputs  # ... and its file written
    assert _digest(pb) == before


def test_check_not_input_api(tmp_path: Path):
    from tfcpu._io import check_not_input

    (tmp_path / "in").mkdir()
    check_not_input(tmp_path / "out.pb", [tmp_path / "in", tmp_path / "missing"])
    with pytest.raises(ConfigError, match="holds the input"):
        check_not_input(tmp_path, [tmp_path / "in"])
