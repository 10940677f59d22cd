"""Graph passes and GraphOptimizer on tiny graphs built in code."""

from __future__ import annotations

import numpy as np
import pytest
from test_graph_builders import const, graph_def_of, tf, tf1_style_graph, v1

import tfcpu
from tfcpu.errors import ConfigError, PassError
from tfcpu.graph._execute import random_feeds, run_graph
from tfcpu.graph._graphdef import const_array
from tfcpu.graph.optimizer import GraphOptimizer
from tfcpu.graph.passes import PassContext, run_pass
from tfcpu.graph.passes._base import PASSES, Outcome, register_pass

PAPER = (
    "strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) "
    "fold_constants(ignore_errors=true) fold_old_batch_norms fold_batch_norms"
)


def nodes(graph_def):
    return {n.name: n for n in graph_def.node}


def test_tf1_style_graph_folds_everything_and_stays_exact():
    model = tfcpu.load(tf1_style_graph(), outputs="out")
    before = model.to_bytes()
    result = GraphOptimizer.from_transforms(PAPER).run(model)
    ops = result.model.op_counts()
    for op in ("FusedBatchNorm", "BatchNormWithGlobalNormalization", "Identity", "CheckNumerics", "Mul", "AddV2"):
        assert op not in ops, ops
    assert ops["BiasAdd"] == 3  # conv1, dw, fc: the shift of each chain in ONE BiasAdd
    assert "unused" not in nodes(result.model.graph_def)
    assert result.report("fold_old_batch_norms").changed == ("conv1 <- bn1", "dw <- bn2")
    assert result.report("fold_batch_norms").changed == ("fc <- fc_bias, fc_scale, out",)
    assert result.check is not None and result.check.passed
    assert result.check.max_rel_error < 1e-4
    assert model.to_bytes() == before  # the input Model is never mutated
    assert result.model.output_names == ("out:0",)


def test_depthwise_multiplier_scales_channel_in_times_multiplier():
    model = tfcpu.load(tf1_style_graph(), outputs="out")
    original = nodes(model.graph_def)
    graph, _ = run_pass("fold_old_batch_norms", model.graph_def, PassContext(("x",), ("out",)))
    filt_name = next(i for i in original["dw"].input if i != "relu1")
    w = const_array(original[filt_name])  # [3, 3, 4, 2]
    get = {n: const_array(original[n]) for n in ("bn2_m", "bn2_v", "bn2_gamma", "bn2_beta")}
    scale = get["bn2_gamma"] / np.sqrt(get["bn2_v"] + 1e-3)  # channel index = in * 2 + m
    folded = const_array(nodes(graph)[filt_name])
    np.testing.assert_allclose(folded, w * scale.reshape(4, 2), rtol=1e-6)
    bias_node = nodes(graph)["bn2"]
    assert bias_node.op == "BiasAdd" and bias_node.input[0] == "dw"
    bias = const_array(nodes(graph)[bias_node.input[1]])
    np.testing.assert_allclose(bias, get["bn2_beta"] - get["bn2_m"] * scale, rtol=1e-5, atol=1e-6)


def _conv_bn(layout: str, *, training: bool = False, share: bool = False):
    rng = np.random.default_rng(3)
    params = {"w": const(rng, 3, 3, 3, 4), "b": const(rng, 4), "g": const(rng, 4), "beta": const(rng, 4),
              "mean": const(rng, 4), "var": const(rng, 4, low=0.5)}  # fmt: skip

    def build() -> None:
        shape = [2, 6, 6, 3] if layout == "NHWC" else [2, 3, 6, 6]
        x = v1.placeholder(tf.float32, shape, name="x")
        w = tf.constant(params["w"], name="w")
        h = tf.raw_ops.Conv2D(input=x, filter=w, strides=[1, 1, 1, 1], padding="SAME", data_format=layout,
                              name="conv")  # fmt: skip
        h = tf.raw_ops.BiasAdd(value=h, bias=params["b"], data_format=layout, name="bias")
        tf.raw_ops.FusedBatchNormV3(
            x=h, scale=params["g"], offset=params["beta"], mean=params["mean"], variance=params["var"],
            epsilon=1e-3, is_training=training, data_format=layout, name="bn",
        )  # fmt: skip
        if share:
            tf.raw_ops.Conv2D(input=x, filter=w, strides=[1, 1, 1, 1], padding="SAME", data_format=layout,
                              name="conv_twin")  # fmt: skip

    return graph_def_of(build), params


def test_nchw_fold_puts_scale_in_weights_and_shift_in_one_bias():
    # TF's CPU kernels cannot run NCHW Conv2D, so check the numbers against the formula.
    graph_def, p = _conv_bn("NCHW")
    graph, report = run_pass("fold_old_batch_norms", graph_def, PassContext(("x",), ("bn",)))
    scale = p["g"] / np.sqrt(p["var"] + 1e-3)
    np.testing.assert_allclose(const_array(nodes(graph)["w"]), p["w"] * scale, rtol=1e-6)
    bn = nodes(graph)["bn"]
    assert bn.op == "BiasAdd" and bn.attr["data_format"].s == b"NCHW" and bn.input[0] == "conv"
    np.testing.assert_allclose(
        const_array(nodes(graph)[bn.input[1]]), (p["b"] - p["mean"]) * scale + p["beta"], rtol=1e-5, atol=1e-6
    )
    assert "bias" not in nodes(graph) and report.changed == ("conv <- bias, bn",)


def test_nhwc_conv_bias_fused_batch_norm_v3_folds_exactly():
    model = tfcpu.load(_conv_bn("NHWC")[0], outputs="bn")
    result = GraphOptimizer().fold_old_batch_norms().run(model)
    assert "FusedBatchNormV3" not in result.model.op_counts()
    assert result.check is not None and result.check.max_abs_error < 1e-4


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [({"training": True}, "training mode"), ({"share": True}, "shared with conv_twin")],
)
def test_batch_norm_skipped_with_reason(kwargs, reason):
    graph_def, _ = _conv_bn("NHWC", **kwargs)
    graph, report = run_pass("fold_old_batch_norms", graph_def, PassContext(("x",), ("bn",)))
    assert report.changed == ()
    assert [s.node for s in report.skipped] == ["bn"]
    assert reason in report.skipped[0].reason
    assert graph == graph_def


def test_non_constant_mul_is_skipped_until_constants_are_folded():
    def build() -> None:
        x = v1.placeholder(tf.float32, [1, 4], name="x")
        h = tf.raw_ops.MatMul(a=x, b=np.eye(4, dtype=np.float32), name="fc")
        scale = tf.math.rsqrt(tf.constant(np.full(4, 4.0, np.float32)), name="rs")
        tf.multiply(h, scale, name="out")

    model = tfcpu.load(graph_def_of(build), outputs="out")
    # fold_batch_norms requires fold_constants: a plan without it is refused when built ...
    with pytest.raises(ConfigError, match=r"(?s)requires .fold_constants. earlier.*\.fold_constants\(\) before"):
        GraphOptimizer().fold_batch_norms()
    # ... and the pass alone (outside a plan) reports why it skips.
    _, alone = run_pass("fold_batch_norms", model.graph_def, PassContext(("x",), ("out",)))
    assert alone.skipped[0].node == "out" and not alone.modified
    assert "not a constant" in alone.skipped[0].reason
    both = GraphOptimizer().fold_constants().fold_batch_norms().run(model)
    assert both.model.op_counts().get("Mul") is None and both.model.op_counts().get("Rsqrt") is None


def test_remove_nodes_keeps_control_dependencies_and_named_outputs():
    def build() -> None:
        x = v1.placeholder(tf.float32, [2], name="x")
        side = tf.constant([1.0, 2.0], name="side")
        with tf.control_dependencies([side]):
            ident = tf.identity(x, name="ident")
        y = tf.add(ident, 1.0, name="y")
        with tf.control_dependencies([ident]):
            tf.identity(y, name="out")

    graph, report = run_pass("remove_nodes", graph_def_of(build), PassContext(("x",), ("out",)))
    by = nodes(graph)
    assert "ident" not in by and "out" in by
    assert list(by["y"].input) == ["x", "y/y", "^side"]
    assert set(by["out"].input) == {"y", "^x", "^side"}
    assert [s.node for s in report.skipped] == ["out"]


def test_strip_unused_keeps_inputs_and_control_ancestors():
    def build() -> None:
        x = v1.placeholder(tf.float32, [2], name="x")
        v1.placeholder(tf.float32, [2], name="unused_input")
        dep = tf.constant(1.0, name="dep")
        tf.constant(5.0, name="dead")
        with tf.control_dependencies([dep]):
            tf.identity(x, name="out")

    graph, report = run_pass("strip_unused_nodes", graph_def_of(build), PassContext(("x", "unused_input"), ("out",)))
    assert set(nodes(graph)) == {"x", "unused_input", "dep", "out"}
    assert report.changed == ("dead",)


def test_fold_constants_respects_max_bytes_and_keeps_names():
    def build() -> None:
        x = v1.placeholder(tf.float32, [64], name="x")
        big = tf.fill([64], 2.0, name="big")
        small = tf.add(tf.constant(1.0), tf.constant(2.0), name="small")
        tf.add(x * big, small, name="out")

    graph_def = graph_def_of(build)
    graph, report = run_pass("fold_constants", graph_def, PassContext(("x",), ("out",)), max_bytes=64)
    by = nodes(graph)
    assert by["small"].op == "Const" and float(const_array(by["small"])) == 3.0
    assert by["big"].op == "Fill"
    assert report.skipped[0].node == "big" and "max_bytes" in report.skipped[0].reason
    feeds = {"x:0": np.arange(64, dtype=np.float32)}
    assert np.array_equal(run_graph(graph, feeds, ["out:0"])[0], run_graph(graph_def, feeds, ["out:0"])[0])


def test_merge_duplicate_constants_rewires_readers():
    def build() -> None:
        x = v1.placeholder(tf.float32, [2], name="x")
        a = tf.constant([1.0, 2.0], name="a")
        b = tf.constant([1.0, 2.0], name="b")
        tf.add(x * a, b, name="out")

    graph, report = run_pass("merge_duplicate_constants", graph_def_of(build), PassContext(("x",), ("out",)))
    assert report.changed == ("b",)
    assert "b" not in nodes(graph) and list(nodes(graph)["out"].input) == ["mul", "a"]


def test_const_control_edges_are_dropped_but_ordering_through_consts_kept():
    def build() -> None:
        x = v1.placeholder(tf.float32, [2], name="x")
        w = tf.constant([1.0, 2.0], name="w")
        with tf.control_dependencies([x]):
            gated = tf.constant(3.0, name="gated")
        y = tf.multiply(x, w, name="y")
        with tf.control_dependencies([w, gated]):
            tf.identity(y, name="out")

    graph, report = run_pass("remove_const_control_edges", graph_def_of(build), PassContext(("x",), ("out",)))
    assert list(nodes(graph)["out"].input) == ["y", "^gated"]
    assert report.changed == ("out (1 edges)",)


def _pad_conv_graph(channel_pad_op: str):
    rng = np.random.default_rng(5)

    def build() -> None:
        x = v1.placeholder(tf.float32, [1, 9, 9, 3], name="x")
        padded = tf.pad(x, [[0, 0], [3, 2], [1, 3], [0, 0]], name="pad")
        tf.raw_ops.Conv2D(input=padded, filter=const(rng, 3, 3, 3, 4), strides=[1, 2, 2, 1], padding="VALID",
                          name="out")  # fmt: skip
        paddings = tf.constant([[0, 0], [1, 1], [1, 1], [0, 1]])
        if channel_pad_op == "Pad":
            odd = tf.raw_ops.Pad(input=x, paddings=paddings, name="pad_channels")
        else:
            odd = tf.raw_ops.PadV2(input=x, paddings=paddings, constant_values=0.0, name="pad_channels")
        tf.raw_ops.Conv2D(input=odd, filter=const(rng, 1, 1, 4, 2), strides=[1, 1, 1, 1], padding="VALID",
                          name="out2")  # fmt: skip

    return graph_def_of(build)


def _assert_pad_folded(graph, report):
    assert report.changed == ("out <- pad",) and report.modified
    assert [(s.node, s.reason) for s in report.skipped] == [
        ("pad_channels", "paddings touch the batch or channel axis")
    ]
    conv = nodes(graph)["out"]
    assert conv.attr["padding"].s == b"EXPLICIT" and list(conv.attr["explicit_paddings"].list.i) == [
        0, 0, 3, 2, 1, 3, 0, 0,
    ]  # fmt: skip


@pytest.mark.parametrize("channel_pad_op", ["Pad", "PadV2"])
def test_fold_pad_into_conv_uses_explicit_padding_and_skips_channel_padding(channel_pad_op):
    #   x -> Pad(H, W) -> Conv2D VALID "out"          folded: Conv2D EXPLICIT(3,2 / 1,3)
    #   x -> Pad(C) / PadV2(C, 0) -> Conv2D "out2"     skipped: the pad touches the channel axis
    # The pass itself runs no TensorFlow kernel, so the structure is checked for both pad ops.
    graph_def = _pad_conv_graph(channel_pad_op)
    graph, report = run_pass("fold_pad_into_conv", graph_def, PassContext(("x",), ("out", "out2")))
    _assert_pad_folded(graph, report)


def test_fold_pad_into_conv_is_numerically_exact_with_and_without_onednn():
    # TensorFlow's oneDNN graph rewrite (on by default on CPUs with AVX512_VNNI/BF16/AMX) fuses
    # Pad + Conv2D and assumes the Pad leaves channels alone: the *original* graph with a
    # channel-axis Pad fails inside TensorFlow ("input depth must be evenly divisible by filter
    # depth: 3 vs 4"), before any tfcpu pass runs. The numerical check therefore uses the PadV2
    # form for the channel case, which that rewrite does not fuse; both forms are skipped alike.
    model = tfcpu.load(_pad_conv_graph("PadV2"), outputs=["out", "out2"])
    result = GraphOptimizer().fold_pad_into_conv().run(model)
    _assert_pad_folded(result.model.graph_def, result.reports[0])
    assert result.check is not None and result.check.passed and result.check.max_abs_error < 1e-5
    assert set(result.check.per_output) == {"out:0", "out2:0"}


def test_strip_default_attrs_removes_matmul_grad_flags():
    def build() -> None:
        x = v1.placeholder(tf.float32, [1, 2], name="x")
        tf.raw_ops.MatMul(a=x, b=np.ones((2, 2), np.float32), name="out")

    graph_def = graph_def_of(build)
    assert "grad_a" in nodes(graph_def)["out"].attr
    graph, report = run_pass("strip_default_attrs", graph_def, PassContext(("x",), ("out",)))
    assert "grad_a" not in nodes(graph)["out"].attr and "out.grad_a" in report.changed
    graph_def.node[-1].attr["made_up"].b = True
    graph, report = run_pass("strip_unknown_attrs", graph_def, PassContext(("x",), ("out",)))
    assert report.changed == ("out.made_up",)


def test_from_transforms_parses_the_paper_string_verbatim():
    opt = GraphOptimizer.from_transforms(f"'{PAPER}'")
    assert [s.name for s in opt.steps] == PAPER.replace("(op=Identity, op=CheckNumerics)", "").replace(
        "(ignore_errors=true)", ""
    ).split()
    assert opt.steps[1].kwargs()["ops"] == ("Identity", "CheckNumerics")
    assert opt.steps[2].kwargs()["ignore_errors"] is True
    assert "fold_batch_norms" in opt.explain()
    assert GraphOptimizer.from_transforms('strip_unused_nodes(type=float, shape="1,224,224,3")').steps[0].params == ()


@pytest.mark.parametrize(
    ("text", "needle"),
    [("fold_constant", "did you mean 'fold_constants'"), ("fold_constants(ignore_error=true)", "ignore_errors"),
     ("", "empty"), ("fold_constants(ignore_errors=maybe)", "true or false")],
)  # fmt: skip
def test_from_transforms_rejects_bad_strings(text, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        GraphOptimizer.from_transforms(text)


def test_optimizer_is_immutable_and_fluent():
    empty = GraphOptimizer()
    one = empty.fold_constants(ignore_errors=False)
    assert empty.steps == () and len(one.steps) == 1 and one is not empty
    assert [s.name for s in GraphOptimizer.default().steps[:2]] == ["strip_unknown_attrs", "strip_unused_nodes"]
    with pytest.raises(ConfigError):
        empty.fold_constants(max_bytes=0)


@pytest.fixture
def broken_pass():
    @register_pass("test_break_weights", "test only: corrupts a weight")
    def broken(graph_def, ctx):
        for node in graph_def.node:
            if node.op == "Const" and node.attr["dtype"].type == 1 and node.attr["value"].tensor.tensor_shape.dim:
                from tfcpu.graph._graphdef import set_const_value

                set_const_value(node, const_array(node) * 1.01)
        return Outcome(changed=["corrupted"])

    yield "test_break_weights"
    del PASSES["test_break_weights"]


def test_check_catches_a_pass_that_changes_results(broken_pass):
    model = tfcpu.load(tf1_style_graph(), outputs="out")
    with pytest.raises(PassError, match=r"(?s)does not compute what the original computes.*'test_break_weights'"):
        GraphOptimizer().add(broken_pass).run(model)
    result = GraphOptimizer().add(broken_pass).run(model, check=False)
    assert result.check is None and result.reports[0].changed == ("corrupted",)


def test_result_serialises_and_renders():
    model = tfcpu.load(tf1_style_graph(), outputs="out")
    result = GraphOptimizer.default().run(model)
    data = result.to_dict()
    assert data["nodes_after"] < data["nodes_before"] and data["check"]["passed"] is True
    from tfcpu.graph.optimizer import CheckResult
    from tfcpu.graph.passes import PassReport

    assert CheckResult.from_dict(data["check"]) == result.check
    assert tuple(PassReport.from_dict(r) for r in data["reports"]) == result.reports
    assert "fold_old_batch_norms" in result._repr_html_()
    feeds = random_feeds(model, seed=1)
    assert feeds["x:0"].shape == (2, 8, 8, 3)
