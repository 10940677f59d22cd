"""The static safety scan: what it finds (graph and function library), how load refuses and allows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.graphs import dense_softmax, reads_file
from tfcpu.errors import ConfigError, ModelError, UnsafeModelError
from tfcpu.graph import safety
from tfcpu.graph.load import load


def test_every_listed_op_exists_in_the_installed_tensorflow():
    from tensorflow.python.framework import op_def_registry

    names = {*safety.UNSAFE_OPS, *safety.CONDITIONAL_OPS}
    assert len(names) > 100
    assert [n for n in sorted(names) if op_def_registry.get(n) is None] == []
    assert set(safety.UNSAFE_OPS.values()) | set(safety.CONDITIONAL_OPS.values()) <= set(safety.CATEGORIES)


def test_allowlist_names_exist_and_exclude_every_denied_op():
    from tensorflow.python.framework import op_def_registry

    from tfcpu.graph.allowlist import ALLOWED_OPS, GROUPS, group_of

    assert [op for op in sorted(ALLOWED_OPS) if op_def_registry.get(op) is None] == []
    assert sum(len(g.ops) for g in GROUPS) == len(ALLOWED_OPS)  # no op in two groups
    assert ALLOWED_OPS.isdisjoint({*safety.UNSAFE_OPS, *safety.CONDITIONAL_OPS, *safety.CHECKPOINT_OPS})
    assert not [op for op in ALLOWED_OPS if "Dataset" in op or "Iterator" in op]
    assert group_of("Conv2D") == "nn" and group_of("ReadFile") is None
    assert all(g.reason for g in GROUPS)


@pytest.mark.parametrize("in_function", [False, True])
def test_read_file_is_found_refused_and_allowed(tmp_path: Path, in_function: bool):
    secret = tmp_path / "secret.txt"
    secret.write_text("12345")
    model = reads_file(str(secret), in_function=in_function)
    report = safety.scan(model.graph_def)
    assert report.ops == ("ReadFile",) and not report.safe
    (finding,) = report.findings
    assert finding.category == "file-read"
    assert finding.location.startswith("function ") if in_function else finding.location == "graph"
    assert report.to_dict()["findings"][0]["allowed"] is False
    assert "ReadFile" in report._repr_html_() and "refused" in str(report)

    with pytest.raises(UnsafeModelError, match="ReadFile") as info:
        load(model.graph_def)
    assert finding.node in str(info.value) and "allow_unsafe_ops" in str(info.value)
    assert info.value.exit_code == 2

    from tfcpu.runtime.runner import Runner

    allowed = load(model.graph_def, allow_unsafe_ops=["ReadFile"])
    with Runner(allowed) as runner:
        out = runner.run({"x:0": np.zeros((2, 4), np.float32)})
    np.testing.assert_array_equal(out["out:0"], np.full((2, 4), 5.0, np.float32))  # len("12345")
    assert safety.current_allowance() == ()  # the allowance does not leak out of load


def test_allowance_names_are_checked_with_did_you_mean():
    with pytest.raises(ConfigError, match="did you mean 'ReadFile'"):
        load(dense_softmax().graph_def, allow_unsafe_ops="ReadFil")
    assert safety.allowing_names("ReadFile, PyFunc") == ("ReadFile", "PyFunc")


def test_safe_graph_reports_nothing():
    report = safety.scan(dense_softmax().graph_def)
    assert report.safe and report.findings == () and report.nodes_scanned == len(dense_softmax().graph_def.node)
    assert "only computes on tensors" in str(report)


def test_python_callbacks_and_writes_are_found():
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        y = tf.compat.v1.py_func(lambda a: a, [x], tf.float32, name="callback")
        tf.io.write_file("/tmp/never-written", tf.strings.as_string(tf.reduce_sum(y)), name="dump")
    report = safety.scan(g.as_graph_def())
    assert {(f.op, f.category) for f in report.findings} == {("PyFunc", "python"), ("WriteFile", "file-write")}
    with pytest.raises(UnsafeModelError, match="and 1 more"):
        safety.check(g.as_graph_def(), "g")
    assert safety.check(g.as_graph_def(), "g", allowed=["PyFunc", "WriteFile"]).refused == ()


def _node(graph_def, op: str, name: str, **attrs: object):
    node = graph_def.node.add(op=op, name=name)
    for key, value in attrs.items():
        if isinstance(value, list):
            node.attr[key].list.s.extend(v.encode() for v in value)
        else:
            node.attr[key].s = str(value).encode()
    return node


def test_conditional_ops_depend_on_their_attributes():
    import tensorflow as tf

    gd = tf.compat.v1.GraphDef()
    local = "/job:localhost/replica:0/task:0/device:CPU:0"
    _node(gd, "_Send", "local_send", send_device=local, recv_device=local)
    _node(gd, "_Recv", "remote_recv", send_device="/job:ps/replica:0/task:3/device:CPU:0", recv_device=local)
    _node(gd, "DebugIdentity", "quiet", debug_urls=[])
    _node(gd, "DebugIdentity", "dumps", debug_urls=["file:///tmp/dump"])
    _node(gd, "PrintV2", "print", output_stream="stderr")
    _node(gd, "PrintV2", "print_file", output_stream="file:///tmp/log")
    found = {f.node: f.category for f in safety.scan(gd).findings}
    # a local send/receive pair is the runtime's own plumbing; every debug or print op is a side effect
    assert found == {
        "remote_recv": "network",
        "quiet": "debug-dump",
        "dumps": "debug-dump",
        "print": "debug-dump",
        "print_file": "file-write",
    }


def test_saved_model_is_prescanned_before_tensorflow_loads_it(tmp_path: Path):
    import tensorflow as tf

    secret = tmp_path / "secret.txt"
    secret.write_text("abc")

    class Reader(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def serve(self, x):
            return {"y": x + tf.cast(tf.strings.length(tf.io.read_file(str(secret))), tf.float32)}

    class Plain(tf.Module):
        def __init__(self):
            self.w = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def serve(self, x):
            return {"y": x * self.w}

    for name, module in (("reader", Reader()), ("plain", Plain())):
        tf.saved_model.save(module, str(tmp_path / name), signatures={"serving_default": module.serve})

    from tfcpu.graph.safety_io import prescan_saved_model

    with pytest.raises(UnsafeModelError, match=r"ReadFile.*meta graph 0"):
        prescan_saved_model(tmp_path / "reader")
    with pytest.raises(UnsafeModelError, match="ReadFile"):
        load(tmp_path / "reader")
    assert load(tmp_path / "reader", allow_unsafe_ops=["ReadFile"]).inputs[0].dtype == "float32"
    prescan_saved_model(tmp_path / "plain")  # its SaveV2/RestoreV2 checkpoint machinery is TensorFlow's own
    plain = load(tmp_path / "plain")
    assert safety.scan(plain.graph_def).safe

    pb = tmp_path / "plain" / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[:-7])  # truncated: caught before TensorFlow reads it
    with pytest.raises(ModelError, match="SavedModel"):
        load(tmp_path / "plain")


def test_keras_lambda_layers_are_refused_by_keras_safe_mode(tmp_path: Path):
    import keras

    inp = keras.Input((3,))
    out = keras.layers.Lambda(lambda t: t * 2.0)(inp)
    path = tmp_path / "lambda.keras"
    keras.Model(inp, out).save(path)
    with pytest.raises(ModelError, match=r"(?i)lambda|safe_mode"):
        load(path)


def test_tf1_while_loop_back_edges_are_legal_but_other_cycles_are_not(tmp_path: Path):
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        tf.compat.v1.disable_control_flow_v2()
        try:
            x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
            tf.identity(tf.compat.v1.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v * 2.0), [0, x])[1], "y")
        finally:
            tf.compat.v1.enable_control_flow_v2()
    gd = g.as_graph_def()
    assert any(n.op == "NextIteration" for n in gd.node)
    model = load(gd, outputs=["y"])
    assert model.outputs[0].name == "y:0"


def test_optimizer_check_turns_a_failing_graph_into_model_error():
    # found by tests/unit/test_fuzz_load.py: a graph that fails at run time (here: an allowed
    # ReadFile of a missing file) escaped GraphOptimizer.run's check as a raw TensorFlow error
    from tfcpu.graph.optimizer import GraphOptimizer

    model = load(reads_file("/nonexistent/file", in_function=True).graph_def, allow_unsafe_ops=["ReadFile"])
    with pytest.raises(ModelError, match="NotFoundError"):
        GraphOptimizer.default().run(model, check=True)
