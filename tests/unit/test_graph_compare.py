"""The one comparator (tfcpu.graph.compare) and the one random-input generator."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from test_graph_builders import const, graph_def_of, tf, tf1_style_graph, v1

import tfcpu
from tfcpu.errors import ConfigError, QuantizationError
from tfcpu.graph._execute import random_feeds, run_graph
from tfcpu.graph.compare import Comparison, compare_outputs, concat_outputs, random_inputs
from tfcpu.graph.model import Model, TensorSpec
from tfcpu.runtime.feeds import synthetic_batch


def _logits(rng, rows=16, classes=10):
    return rng.standard_normal((rows, classes)).astype(np.float32)


def test_statistics_match_their_definitions():
    rng = np.random.default_rng(0)
    ref = _logits(rng)
    noise = rng.standard_normal(ref.shape).astype(np.float32) * 1e-3
    cand = ref + noise
    cmp = compare_outputs({"y": ref}, {"y": cand}, atol=1e-4, rtol=1e-4)
    out = cmp.output("y")
    diff = np.abs(ref.astype(np.float64) - cand.astype(np.float64))
    scale = float(np.abs(ref).max())
    assert out.max_abs == pytest.approx(diff.max()) and out.mean_abs == pytest.approx(diff.mean())
    assert out.median_abs == pytest.approx(np.median(diff))
    assert out.max_rel == pytest.approx(diff.max() / scale) and out.median_rel == pytest.approx(np.median(diff) / scale)
    a, b = ref.ravel().astype(np.float64), cand.ravel().astype(np.float64)
    assert out.cosine == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert out.top1 == pytest.approx(np.mean(ref.argmax(1) == cand.argmax(1)))
    assert not out.passed and not cmp.passed  # 1e-3 noise is outside 1e-4 + 1e-4 * scale
    # the tightest tolerances are exactly where the check flips
    assert compare_outputs({"y": ref}, {"y": cand}, atol=out.tightest_atol * 1.0001, rtol=1e-4).passed
    assert not compare_outputs({"y": ref}, {"y": cand}, atol=out.tightest_atol * 0.999, rtol=1e-4).passed
    assert compare_outputs({"y": ref}, {"y": cand}, atol=1e-4, rtol=out.tightest_rtol * 1.0001).passed
    assert cmp.degenerate == ()


def test_top1_counts_rows_whose_argmax_moved():
    ref = np.array([[0.0, 1.0, 0.5], [2.0, 0.0, 1.0], [0.0, 0.2, 0.1], [1.0, 3.0, 2.0]], np.float32)
    cand = ref.copy()
    cand[0] = [1.0, 0.0, 0.5]  # row 0 now picks class 0
    out = compare_outputs({"p": ref}, {"p": cand}).output("p")
    assert out.top1 == 0.75
    assert compare_outputs({"v": ref[:, 0]}, {"v": cand[:, 0]}).output("v").top1 is None  # 1-D: not logits


def test_nan_and_inf_are_flagged_and_must_sit_at_the_same_places():
    ref = np.array([[1.0, np.nan], [np.inf, 2.0]], np.float32)
    same = compare_outputs({"y": ref}, {"y": ref.copy()})
    assert same.passed and any("NaN/Inf" in r for r in same.degenerate)
    moved = compare_outputs({"y": ref}, {"y": np.array([[np.nan, 1.0], [np.inf, 2.0]], np.float32)})
    assert not moved.passed and moved.output("y").note == "NaN/Inf at different places"


@pytest.mark.parametrize(
    ("ref", "needle"),
    [
        (np.zeros((4, 3), np.float32), "one value everywhere"),
        (np.tile(np.array([[0.1, 0.7, 0.2]], np.float32), (4, 1)), "the same for all 4 inputs"),
        (np.tile(np.array([[0.1, 0.7, 0.2]], np.float32), (4, 1)) + 1e-9, "the same for all 4 inputs"),
        (np.array([[1.0, 1.0, 1.0], [0.0, 2.0, 1.0]], np.float32), "1 of 2 rows of logits are all equal"),
    ],
)
def test_degenerate_references_say_why_the_check_proves_nothing(ref, needle):
    cmp = compare_outputs({"y": ref}, {"y": ref.copy()})
    assert cmp.passed and cmp.degenerate, cmp
    assert all(r.startswith("this check proves nothing because y: ") for r in cmp.degenerate)
    assert any(needle in r for r in cmp.degenerate), cmp.degenerate
    assert "DEGENERATE" in cmp.summary() and needle in str(cmp)
    with pytest.raises(QuantizationError, match="proves nothing"):
        cmp.raise_if_degenerate(QuantizationError, where="fp32 vs int8")


def test_comparison_round_trips_through_json_and_renders():
    rng = np.random.default_rng(1)
    ref = {"logits:0": _logits(rng), "ids:0": np.arange(6, dtype=np.int32), "const:0": np.zeros(3, np.float32)}
    cand = {k: v + (1e-6 if v.dtype.kind == "f" else 0) for k, v in ref.items()}
    cmp = compare_outputs(ref, cand, atol=1e-5, rtol=1e-5, label="fp32 vs int8")
    assert cmp.label == "fp32 vs int8" and "Comparison: fp32 vs int8" in str(cmp)
    back = Comparison.from_dict(json.loads(json.dumps(cmp.to_dict())))
    assert back == cmp and back.passed == cmp.passed and back.degenerate == cmp.degenerate
    text = str(cmp)
    assert "logits:0" in text and "median" in text and "DEGENERATE" in text
    assert "<table" in cmp._repr_html_() and "this check proves nothing" in cmp._repr_html_()


def test_mismatched_shapes_fail_and_missing_outputs_are_config_errors():
    cmp = compare_outputs({"y": np.zeros((2, 3))}, {"y": np.zeros((2, 4))})
    assert not cmp.passed and math.isinf(cmp.max_abs) and "shape (2, 3) vs (2, 4)" in cmp.output("y").note
    with pytest.raises(ConfigError, match="did you mean 'logits'"):
        compare_outputs({"logit": np.zeros(2)}, {"logits": np.zeros(2)})
    with pytest.raises(ConfigError, match="non-negative"):
        compare_outputs({}, {}, atol=-1.0)
    assert compare_outputs({"s": np.array([b"a"])}, {"s": np.array([b"a"])}).passed


def test_concat_outputs_stacks_batches():
    parts = [{"y": np.ones((2, 3))}, {"y": np.zeros((1, 3))}]
    assert concat_outputs(parts)["y"].shape == (3, 3)


def _constant_output_graph():
    """x[?, 4] -> MatMul(w) -> Mul(0) -> Add(b) -> Softmax -> out : the same for every input."""
    rng = np.random.default_rng(7)

    def build() -> None:
        x = v1.placeholder(tf.float32, [None, 4], name="x")
        h = tf.raw_ops.MatMul(a=x, b=const(rng, 4, 5), name="fc")
        h = tf.multiply(h, np.zeros(5, np.float32), name="dead")
        h = tf.add(h, const(rng, 5), name="bias")
        tf.nn.softmax(h, name="out")

    return graph_def_of(build)


def test_optimiser_check_of_a_constant_output_graph_is_flagged_degenerate():
    model = tfcpu.load(_constant_output_graph(), outputs="out")
    result = tfcpu.GraphOptimizer().remove_nodes().run(model)
    assert result.check is not None and result.check.passed
    assert result.degenerate and result.check.degenerate == result.degenerate
    assert any("the same for all 2 inputs" in r for r in result.degenerate)
    assert "this check proves nothing because" in str(result)
    assert result.to_dict()["degenerate"] == list(result.degenerate)
    # the trained-like graph is not flagged
    assert tfcpu.GraphOptimizer().remove_nodes().run(tfcpu.load(tf1_style_graph(), outputs="out")).degenerate == ()


def _signature_model():
    return Model(
        graph_def=None,  # type: ignore[arg-type]  (the generator reads only the signature)
        inputs=(
            TensorSpec("img:0", "float32", (None, 4, 4, 3)),
            TensorSpec("ids:0", "int32", (None, 6)),
            TensorSpec("mask:0", "bool", (None, 6)),
            TensorSpec("seq:0", "float32", (None, None)),
        ),
        outputs=(),
        source="sig",
    )


def test_random_inputs_is_the_one_generator_for_every_caller():
    model = _signature_model()
    feeds = random_inputs(model, 3, seed=4, shapes={"seq": (3, 5)})
    assert {k: v.shape for k, v in feeds.items()} == {"img:0": (3, 4, 4, 3), "ids:0": (3, 6), "mask:0": (3, 6),
                                                      "seq:0": (3, 5)}  # fmt: skip
    assert feeds["ids:0"].dtype == np.int32 and feeds["ids:0"].min() >= 0 and feeds["ids:0"].max() < 8
    assert feeds["mask:0"].dtype == np.bool_ and feeds["img:0"].dtype == np.float32
    runtime = synthetic_batch(model, 3, seed=4, shapes={"seq": (3, 5)})
    assert all(np.array_equal(runtime[k], feeds[k]) for k in feeds)  # the runtime's name, same arrays
    with pytest.raises(ConfigError, match=r"unknown dimension 1.*\n.*shapes="):
        random_inputs(model, 3)
    check = random_inputs(model, 2, seed=1, unknown_dims=1)
    assert check["seq:0"].shape == (2, 1)
    assert not np.array_equal(random_inputs(model, 2, seed=2, unknown_dims=1)["img:0"], check["img:0"])


def test_the_checks_feeds_are_the_generators_and_run():
    model = tfcpu.load(tf1_style_graph(), outputs="out")
    feeds = random_feeds(model, seed=3)
    same = random_inputs(model, 2, seed=3)
    assert np.array_equal(feeds["x:0"], same["x:0"])
    assert run_graph(model.graph_def, feeds, ["out:0"])[0].shape[0] == 2


def test_a_failing_graph_names_tensorflows_cause_not_its_preamble():
    from tfcpu.errors import ModelError
    from tfcpu.graph._execute import _cause

    text = (
        "Graph execution error:\n\nDetected at node 'out2' defined at (most recent call last):\n"
        "    File \"x.py\", line 7, in <module>\nNode: 'out2'\n"
        "input depth must be evenly divisible by filter depth: 3 vs 4\n\t [[{{node out2}}]]"
    )
    assert _cause(text) == "input depth must be evenly divisible by filter depth: 3 vs 4"

    def build() -> None:
        x = v1.placeholder(tf.float32, None, name="x")
        tf.raw_ops.Reshape(tensor=x, shape=[3, 3], name="out")

    with pytest.raises(ModelError, match="Input to reshape is a tensor with 8 values"):
        run_graph(graph_def_of(build), {"x:0": np.zeros((2, 4), np.float32)}, ["out:0"])


def test_a_saturated_softmax_is_proven_by_its_logits():
    """x[?, 4] -> MatMul(w) -> Add([1000, 0, 0]) -> Softmax -> out: one-hot class 0 for every input,
    but the logits before it vary, and the check compares them: not degenerate."""
    rng = np.random.default_rng(8)

    def build() -> None:
        x = v1.placeholder(tf.float32, [None, 4], name="x")
        h = tf.raw_ops.MatMul(a=x, b=const(rng, 4, 3), name="fc")
        h = tf.add(h, np.array([1000.0, 0.0, 0.0], np.float32), name="logits")
        tf.nn.softmax(h, name="out")

    model = tfcpu.load(graph_def_of(build), outputs="out")
    result = tfcpu.GraphOptimizer().remove_nodes().run(model)
    check = result.check
    assert check is not None and check.comparison is not None
    assert check.comparison.output("out:0").degenerate  # the probabilities alone prove nothing ...
    assert not check.comparison.output("logits:0").degenerate
    assert check.degenerate == () and result.degenerate == ()  # ... the logits do


def test_the_comparator_imports_no_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from tfcpu.graph.compare import compare_outputs\n"
        "assert compare_outputs({'y': np.ones(2)}, {'y': np.ones(2)}).passed\n"
        "print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_single_values_and_integer_matrices_are_not_called_logits_or_constant():
    one = compare_outputs({"loss": np.float32(0.5)}, {"loss": np.float32(0.5)})
    assert one.degenerate == () and one.passed
    ids = np.array([[1, 1, 1], [0, 2, 1]], np.int32)  # a 2-D integer output is not logits
    cmp = compare_outputs({"ids": ids}, {"ids": ids.copy()})
    assert cmp.output("ids").top1 is None and cmp.degenerate == ()
