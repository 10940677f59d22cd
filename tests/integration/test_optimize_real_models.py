"""GraphOptimizer on real architectures: Keras 3 and tf_keras ResNet-50, MobileNetV2.

Each model is built once per module (random weights; batch-norm statistics randomised so
folding has something to get wrong), frozen, optimised, and compared with the original and
with TF's own C++ graph_transforms run with the white paper's transform string.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pytest

import tfcpu
from tfcpu._lazy import import_tensorflow
from tfcpu.graph._graphdef import GraphIndex

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)

PAPER = (
    "strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) "
    "fold_constants(ignore_errors=true) fold_old_batch_norms fold_batch_norms"
)
BN_OPS = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", "BatchNormWithGlobalNormalization", "Rsqrt")
LINEAR = ("Conv2D", "DepthwiseConv2dNative", "MatMul")


def _randomise_batch_norms(model: Any) -> None:
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if "BatchNormalization" in type(layer).__name__:
            gamma, beta, mean, var = (np.asarray(w) for w in layer.get_weights())
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape),
            ])  # fmt: skip


def _build(kind: str) -> tfcpu.Model:
    tf = import_tensorflow()
    if kind == "tf_keras":
        import tf_keras

        model = tf_keras.applications.ResNet50(weights=None)
    else:
        model = getattr(tf.keras.applications, kind)(weights=None)
    _randomise_batch_norms(model)
    return tfcpu.load(model)


def _bn_ops(graph_def: Any) -> int:
    return sum(1 for n in graph_def.node if n.op in BN_OPS)


def _muls_after_linear(graph_def: Any) -> int:
    """Per-channel Mul nodes fed by a convolution/MatMul directly or through a BiasAdd."""
    index = GraphIndex(graph_def)
    count = 0
    for node in graph_def.node:
        if node.op != "Mul":
            continue
        for text in node.input:
            src = index.producer(text)
            if src is not None and src.op == "BiasAdd":
                src = index.producer(src.input[0])
            if src is not None and src.op in LINEAR:
                count += 1
    return count


def _cpp_transform(model: tfcpu.Model) -> Any:
    tf = import_tensorflow()
    from tensorflow.python.util import _pywrap_transform_graph

    data = _pywrap_transform_graph.TransformGraphWithStringInputs(
        model.to_bytes(), ",".join(model.input_names), ",".join(model.output_names), PAPER
    )
    out = tf.compat.v1.GraphDef()
    out.ParseFromString(data)
    return out


@pytest.fixture(scope="module", params=["ResNet50", "tf_keras"])
def resnet(request: pytest.FixtureRequest) -> tfcpu.Model:
    return _build(request.param)


def test_resnet50_folds_every_batch_norm_that_tf_cpp_tool_leaves(resnet: tfcpu.Model) -> None:
    start = time.perf_counter()
    result = tfcpu.GraphOptimizer.from_transforms(PAPER).run(resnet, rtol=1e-4)
    seconds = time.perf_counter() - start
    optimised = result.model.graph_def
    log.warning("optimising %s took %.2f s (passes %.2f s)", resnet.source, seconds, result.seconds)
    assert seconds < 60  # generous: ~2 s of passes + two ResNet-50 runs for the check here
    assert _bn_ops(optimised) == 0
    assert _muls_after_linear(optimised) == 0
    assert result.model.op_counts()["Conv2D"] == 53
    assert result.check is not None and result.check.passed and result.check.max_rel_error <= 1e-4
    cpp = _cpp_transform(resnet)
    # TF's C++ tool with the very same string leaves the batch norms in place.
    assert _bn_ops(cpp) + _muls_after_linear(cpp) >= 53
    assert _bn_ops(resnet.graph_def) + _muls_after_linear(resnet.graph_def) > 0


def test_default_plan_on_resnet50_is_exact_and_smaller(resnet: tfcpu.Model) -> None:
    result = tfcpu.GraphOptimizer.default().run(resnet)
    assert result.nodes_after < 300  # conv + weight + BiasAdd + bias per layer, Relu, Add ...
    assert _bn_ops(result.model.graph_def) == 0
    assert result.check is not None and result.check.passed
    assert sum(r.seconds for r in result.reports) < 60


def test_mobilenet_v2_depthwise_batch_norms_fold() -> None:
    model = _build("MobileNetV2")
    result = tfcpu.GraphOptimizer.default().run(model)
    optimised = result.model.graph_def
    assert _bn_ops(optimised) == 0 and _muls_after_linear(optimised) == 0
    assert result.model.op_counts()["DepthwiseConv2dNative"] == 17
    assert result.check is not None and result.check.passed and result.check.max_rel_error <= 1e-4
    skipped = [s for r in result.reports if r.name.startswith("fold_") for s in r.skipped]
    assert skipped == []


def test_cli_optimizes_a_keras_application_by_name(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from tfcpu.cli.main import main

    out = tmp_path / "mobilenet.pbtxt"
    assert main(["optimize", "keras:MobileNetV2", "-o", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["source"] == "keras:MobileNetV2" and data["check"]["passed"]
    assert not any(op in data["ops_after"] for op in BN_OPS)
    reloaded = tfcpu.load(out, outputs="Identity")
    assert reloaded.summary().unfolded_batch_norms == 0 and reloaded.op_counts()["DepthwiseConv2dNative"] == 17
