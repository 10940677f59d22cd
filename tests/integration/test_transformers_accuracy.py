"""Acceptance (issue 18): a transformer trained in the test keeps its accuracy through tfcpu.

scikit-learn's digits, each 8x8 image read as 8 tokens (rows) of 8 features, train a small
attention classifier (token projection + position embedding, one MultiHeadAttention block with
LayerNorms and a GELU MLP) to >= 90 % held-out accuracy. Then: ``GraphOptimizer.default()``
within rel err 1e-4 of the original; INT8 through tfcpu's Quantizer calibrated on training
data within 1 point of FP32; BF16 within 0.5 point where the CPU accelerates it, refused elsewhere.

The INT8 graph needs oneDNN, which TensorFlow leaves off on CPUs without VNNI/BF16/AMX (issue 27:
"Missing 0-th output from .../MatMul_eightbit_requantize" on an AVX2 EPYC). This process imported
TensorFlow with this CPU's default, so the INT8 accuracy is measured the way a user on any CPU can:
in a fresh child through ``Runner.multi_instance`` (oneDNN turned on for the graph); the quantiser's
own agreement check must have run too, and running the graph here says what is wrong when it cannot.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tfcpu.graph._execute import run_graph
from tfcpu.session.runtime import runtime_info


def _train() -> tuple[Any, Any, Any, Any, Any]:
    import keras
    import tensorflow as tf
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype("float32") / 16.0).reshape(-1, 8, 8)
    y = digits.target.astype("int64")
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    tokens = keras.Input((8, 8), name="rows")
    h = keras.layers.Dense(32)(tokens)
    h = h + keras.layers.Embedding(8, 32)(keras.ops.arange(8)[None, :])
    a = keras.layers.MultiHeadAttention(2, 16)(h, h)
    h = keras.layers.LayerNormalization()(h + a)
    m = keras.layers.Dense(64, activation="gelu")(h)
    h = keras.layers.LayerNormalization()(h + keras.layers.Dense(32)(m))
    logits = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling1D()(h))
    net = keras.Model(tokens, logits)
    net.compile(
        optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    net.fit(x_train, y_train, epochs=40, batch_size=32, verbose=0)
    return net, x_train, x_test, y_train, y_test


def _accuracy(model: Any, x: Any, y: Any) -> float:
    (logits,) = run_graph(model.graph_def, {model.input_names[0]: x}, model.output_names)
    return float(np.mean(np.argmax(logits, axis=1) == y))


def _accuracy_in_child(model: Any, x: Any, y: Any) -> float:
    """Accuracy of a graph that needs oneDNN, run in one fresh pinned child (oneDNN on there)."""
    from tfcpu import InstancePlan, Runner
    from tfcpu.runtime.multi import InstanceSettings

    settings = InstanceSettings(collect_outputs=True, strict=True)
    result = Runner(model).multi_instance(
        InstancePlan.for_topology(instances=1), data=x, batch_size=64, settings=settings
    )
    assert result.outputs is not None
    logits = result.outputs[model.output_names[0]]
    assert logits.shape == (len(x), 10), logits.shape
    return float(np.mean(np.argmax(logits, axis=1) == y))


@pytest.mark.slow
def test_trained_transformer_keeps_accuracy_through_optimize_int8_and_bf16():
    import tfcpu
    from tfcpu.graph.flops import matmul_flops
    from tfcpu.graph.optimizer import GraphOptimizer

    net, x_train, x_test, _y_train, y_test = _train()
    model = tfcpu.load(net)
    fp32 = _accuracy(model, x_test, y_test)
    assert fp32 >= 0.90, fp32

    optimised = GraphOptimizer.default().run(model).model
    (want,) = run_graph(model.graph_def, {model.input_names[0]: x_test}, model.output_names, grappler=False)
    (got,) = run_graph(optimised.graph_def, {model.input_names[0]: x_test}, model.output_names, grappler=False)
    assert float(np.abs(want - got).max() / np.abs(want).max()) <= 1e-4
    assert "Einsum" in optimised.op_counts() and "MatMul" in optimised.op_counts()

    int8 = tfcpu.Quantizer().int8().calibrate(x_train[:256], batches=4, batch_size=64).run(model)
    assert int8.quantized and any("Quantized" in op for op in int8.model.op_counts())
    # the quantiser's agreement ran whatever this process's oneDNN (in a child when it is off here)
    assert int8.cosine is not None and int8.cosine > 0.99, (int8.cosine, int8.warnings)
    assert int8.top1_agreement is not None and int8.top1_agreement >= 0.9, int8.top1_agreement
    if not runtime_info().onednn_enabled:  # the graph cannot run here: the error says why and how to fix it
        from tfcpu.errors import ModelError

        with pytest.raises(ModelError, match="needs oneDNN, which is off") as info:
            _accuracy(int8.model, x_test, y_test)
        assert "TF_ENABLE_ONEDNN_OPTS=1" in str(info.value) and "Missing 0-th output" not in str(info.value)
    int8_accuracy = _accuracy_in_child(int8.model, x_test, y_test)
    share = matmul_flops(int8.model.graph_def, {model.input_names[0]: (64, 8, 8)})
    print(f"FP32 {fp32:.4f}  INT8 {int8_accuracy:.4f}  INT8 FLOP share {share.share:.1%}")
    assert fp32 - int8_accuracy <= 0.01, (fp32, int8_accuracy)

    if not tfcpu.Topology.detect().precisions["bf16"].accelerated:  # refused where BF16 would be emulated
        from tfcpu.errors import ConfigError

        with pytest.raises(ConfigError, match="AVX512_BF16"):
            tfcpu.Quantizer().bf16().run(model)
        with pytest.raises(ConfigError, match="AVX512_BF16"):
            tfcpu.Quantizer().int8().calibrate(x_train[:64], batches=1).remainder("bf16").run(model)
        return
    bf16 = tfcpu.Quantizer().bf16().run(model)
    bf16_types = {a.type for n in bf16.model.graph_def.node for a in n.attr.values() if a.type == 14}
    assert bf16_types, "the BF16 graph names no bfloat16 op"  # labels are what ran: DT_BFLOAT16 = 14
    bf16_accuracy = _accuracy(bf16.model, x_test, y_test)
    print(f"BF16 {bf16_accuracy:.4f}")
    assert fp32 - bf16_accuracy <= 0.005, (fp32, bf16_accuracy)

    # INT8 with the attention products (what INC leaves in float) in BF16: still within 1 point
    mixed = tfcpu.Quantizer().int8().calibrate(x_train[:256], batches=4, batch_size=64).remainder("bf16").run(model)
    einsums = [n for n in mixed.model.graph_def.node if n.op == "Einsum"]
    assert einsums and all(n.attr["T"].type == 14 for n in einsums), "the attention Einsums are not BF16"
    assert any("Quantized" in op for op in mixed.model.op_counts()) and mixed.precision == "int8"
    mixed_accuracy = _accuracy(mixed.model, x_test, y_test)
    print(f"INT8 + BF16 remainder {mixed_accuracy:.4f}")
    assert fp32 - mixed_accuracy <= 0.01, (fp32, mixed_accuracy)
