"""Property-based fuzzing of load → summary → optimize with damaged GraphDefs.

Valid graphs built in code are serialised, then truncated, bit-flipped, overwritten, spliced or
structurally edited (nodes dropped, duplicated, renamed, rewired into cycles, ops changed).
Every outcome must be a Model (and a summary and an optimisation result) or a TfcpuError —
never another exception, never a hang (each example has a deadline).
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.graphs import dense_softmax, reads_file, tiny_convnet, two_inputs
from tfcpu.errors import TfcpuError

FUZZ = settings(
    max_examples=150,
    deadline=timedelta(seconds=30),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same examples in every CI run: a failure is reproducible
)
_SOURCES: dict[str, bytes] = {}


def _source(name: str) -> bytes:
    if name not in _SOURCES:
        build = {
            "dense_softmax": dense_softmax,
            "two_inputs": two_inputs,
            "tiny_convnet": tiny_convnet,
            "reads_file": lambda: reads_file("/nonexistent", in_function=True),
        }[name]
        _SOURCES[name] = build().graph_def.SerializeToString()
    return _SOURCES[name]


@pytest.fixture(autouse=True, scope="module")
def _built_sources() -> None:
    # build the graphs outside the strategies (TensorFlow seeds Python's random module)
    for name in ("dense_softmax", "two_inputs", "tiny_convnet", "reads_file"):
        _source(name)


sources = st.sampled_from(["dense_softmax", "two_inputs", "tiny_convnet", "reads_file"])


@st.composite
def damaged_bytes(draw: st.DrawFn) -> bytes:
    data = bytearray(_source(draw(sources)))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "overwrite", "insert", "delete"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
    return bytes(data)


def _outcome(path: Path) -> None:
    """load → summary → optimize; only TfcpuError may escape."""
    from tfcpu.graph.load import load
    from tfcpu.graph.optimizer import GraphOptimizer

    try:
        model = load(path, allow_unsafe_ops=["ReadFile"])  # let the function-library graph go deeper
        model.summary().to_dict()
        GraphOptimizer.default().run(model, check=True)
        event("optimised")
    except TfcpuError as exc:
        event(type(exc).__name__)


def _write(data: bytes, suffix: str = ".pb") -> Path:
    with tempfile.NamedTemporaryFile(suffix=suffix, delete=False, dir=_DIR.name) as handle:
        handle.write(data)
    return Path(handle.name)


_DIR = tempfile.TemporaryDirectory(prefix="tfcpu-fuzz-")


@FUZZ
@given(damaged_bytes())
def test_damaged_bytes_load_or_raise_tfcpu_error(data: bytes) -> None:
    path = _write(data)
    before = path.read_bytes()
    _outcome(path)
    assert path.read_bytes() == before  # the input is only ever read


@st.composite
def edited_graphs(draw: st.DrawFn) -> Any:
    import tensorflow as tf

    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(_source(draw(sources)))
    names = [n.name for n in gd.node]
    for _ in range(draw(st.integers(1, 3))):
        if not gd.node:
            break
        index = draw(st.integers(0, len(gd.node) - 1))
        node = gd.node[index]
        kind = draw(st.sampled_from(["drop", "duplicate", "rename", "rewire", "op", "attr", "control"]))
        if kind == "drop":
            del gd.node[index]
        elif kind == "duplicate":
            gd.node.add().CopyFrom(node)
        elif kind == "rename":
            node.name = draw(st.sampled_from([*names, "", "x:0", "^y", "new"]))
        elif kind == "rewire" and node.input:
            node.input[draw(st.integers(0, len(node.input) - 1))] = draw(st.sampled_from(names)) + draw(
                st.sampled_from(["", ":1", ":7"])
            )
        elif kind == "op":
            node.op = draw(st.sampled_from(["Identity", "Softmax", "NoOp", "Placeholder", "Const", "Nope", ""]))
        elif kind == "attr" and node.attr:
            key = draw(st.sampled_from(sorted(node.attr)))
            if draw(st.booleans()):
                del node.attr[key]
            else:
                node.attr[key].i = draw(st.integers(-(2**40), 2**40))
        elif kind == "control":
            node.input.append("^" + draw(st.sampled_from(names)))
    return gd


@FUZZ
@given(edited_graphs())
def test_structurally_edited_graphs_load_or_raise_tfcpu_error(graph_def: Any) -> None:
    _outcome(_write(graph_def.SerializeToString()))


@settings(max_examples=40, deadline=timedelta(seconds=30), derandomize=True)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_and_text_are_refused_cleanly(data: bytes) -> None:
    for suffix in (".pb", ".pbtxt"):
        path = _write(data, suffix)
        with pytest.raises(TfcpuError):
            _outcome_strict(path)


def _outcome_strict(path: Path) -> None:
    from tfcpu.graph.load import load

    load(path)


def test_regression_zero_sized_dimension_is_fed_as_zero() -> None:
    # found by the fuzzer: an input of shape [?, 0] got a random feed of shape (2, 1), and the
    # feed error escaped the optimiser's check as a raw ValueError
    import tensorflow as tf

    from tfcpu.graph.load import load
    from tfcpu.graph.optimizer import GraphOptimizer

    g = tf.Graph()
    with g.as_default():
        a = tf.compat.v1.placeholder(tf.float32, [None, 0], name="a")
        tf.multiply(a, 2.0, name="out")
    model = load(g.as_graph_def())
    assert model.inputs[0].shape == (None, 0)
    result = GraphOptimizer.default().run(model, check=True)
    assert result.model.outputs[0].shape == (None, 0)


def test_regression_unknown_op_inside_a_library_function_is_a_model_error() -> None:
    # found by the fuzzer: an op name damaged inside a function body passed validation (which
    # checks top-level ops) and import_graph_def's NotFoundError escaped load
    from tfcpu.errors import ModelError
    from tfcpu.graph.load import load

    gd = reads_file("/nonexistent", in_function=True).graph_def
    node = next(n for n in gd.library.function[0].node_def if n.op == "Cast")
    node.op = "Bast"
    with pytest.raises(ModelError, match="Bast"):
        load(gd, allow_unsafe_ops=["ReadFile"])
