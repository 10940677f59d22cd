"""BF16 through oneDNN's auto mixed precision, applied offline to a frozen GraphDef, then tidied.

TensorFlow's Grappler has a rewriter (``auto_mixed_precision_onednn_bfloat16``) driven by the oneDNN
lists in ``auto_mixed_precision_lists.h``: the *allow* list always runs in BF16 (Conv2D,
DepthwiseConv2dNative, MatMul, BatchMatMul/V2, Einsum); the *infer* list follows its inputs (BiasAdd,
Add/AddV2, Mul, Mean, Softmax, FusedBatchNormV3, Sigmoid, Tanh, Erf, ...); the *clear* list passes
either type through (Relu, Relu6, MaxPool, Reshape, ConcatV2, Pad, ...); the *deny* list stays FP32
(Exp, Pow, ...), and ``Cast`` nodes go where BF16 meets FP32. tfcpu runs only that rewriter once, on
the frozen graph, so the saved model carries BF16 and needs no session option, then:

* folds every ``Cast(Const FP32 -> BF16)`` into a BF16 ``Const`` (weights and biases are stored in BF16;
  no Cast runs per batch, nothing waits for the session's constant folding);
* keeps ``Conv2D/MatMul -> BiasAdd -> Relu/AddV2`` chains wholly in BF16 with no Cast inside, so TF's
  remapper fuses each into one oneDNN op with post-ops (``_MklNativeFusedConv2D`` with
  ``fused_ops=[BiasAdd, Relu]``; checked by `cast_report()` and the tests);
* runs a ``Softmax`` that produces a graph output in FP32 (one Cast before it instead of after): its
  exponentials are where BF16's 8-bit mantissa costs accuracy, and it is cheap.

Casts are then left only at the graph's borders and around ops oneDNN has no BF16 kernel for. It pays
only with AVX512_BF16 or AMX; `tfcpu.Quantizer.bf16()` refuses the plan elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from tfcpu.errors import QuantizationError, runtime_reason

__all__ = ["agreement", "bf16_rewrite", "cast_report"]

log = logging.getLogger(__name__)

_BF16, _F32 = 14, 1  # tensorflow.core.framework.types_pb2 DT_BFLOAT16, DT_FLOAT


def _grappler_amp(graph_def: Any, output_names: Sequence[str]) -> Any:
    from tfcpu._lazy import import_tensorflow

    tf = import_tensorflow()
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, rewriter_config_pb2
    from tensorflow.python.grappler import tf_optimizer

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
        meta = tf.compat.v1.train.export_meta_graph(graph=graph)
    fetch = meta_graph_pb2.CollectionDef()
    fetch.node_list.value.extend(list(output_names))
    meta.collection_def["train_op"].CopyFrom(fetch)
    config = config_pb2.ConfigProto()
    rewriter = config.graph_options.rewrite_options
    rewriter.optimizers[:] = []
    rewriter.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
    rewriter.min_graph_nodes = -1
    rewriter.meta_optimizer_iterations = rewriter_config_pb2.RewriterConfig.ONE
    return tf_optimizer.OptimizeGraph(config, meta)


def _node(name: str) -> str:
    return name.lstrip("^").split(":")[0]


def _fold_constant_casts(graph_def: Any) -> int:
    """Turn each ``Cast`` of an FP32 ``Const`` to BF16 into a BF16 ``Const`` of the same name (so its readers
    need no rewiring); drop the FP32 constants nobody reads any more. Returns how many Casts were folded."""
    from tfcpu._lazy import import_tensorflow

    tf = import_tensorflow()
    by_name = {n.name: n for n in graph_def.node}
    sources: set[str] = set()
    folded = 0
    for node in graph_def.node:
        if node.op != "Cast" or node.attr["DstT"].type != _BF16 or len(node.input) != 1:
            continue
        src = by_name.get(_node(node.input[0]))
        if src is None or src.op != "Const" or src.attr["dtype"].type != _F32:
            continue
        value = tf.make_ndarray(src.attr["value"].tensor)
        proto = tf.make_tensor_proto(tf.cast(value, tf.bfloat16).numpy(), dtype=tf.bfloat16, shape=value.shape)
        name, device = node.name, node.device
        node.Clear()
        node.name, node.op, node.device = name, "Const", device
        node.attr["dtype"].type = _BF16
        node.attr["value"].tensor.CopyFrom(proto)
        sources.add(src.name)
        folded += 1
    read = {_node(i) for n in graph_def.node for i in n.input}
    for i in reversed(range(len(graph_def.node))):
        if graph_def.node[i].name in sources and graph_def.node[i].name not in read:
            del graph_def.node[i]
    return folded


def _softmax_outputs_in_fp32(graph_def: Any, output_names: Sequence[str]) -> int:
    """``Softmax(bf16) -> Cast(fp32) -> output`` becomes ``Cast(fp32) -> Softmax(fp32) -> output``."""
    by_name = {n.name: n for n in graph_def.node}
    moved = 0
    for out in {_node(o) for o in output_names}:
        node = by_name.get(out)
        # follow Identity/Cast back from the output to the op that computes it
        while node is not None and node.op in ("Identity",) and node.input:
            node = by_name.get(_node(node.input[0]))
        if node is None or node.op != "Cast" or node.attr["SrcT"].type != _BF16 or node.attr["DstT"].type != _F32:
            continue
        soft = by_name.get(_node(node.input[0]))
        if soft is None or soft.op != "Softmax" or soft.attr["T"].type != _BF16:
            continue
        readers = [n for n in graph_def.node if any(_node(i) == soft.name for i in n.input)]
        if readers != [node]:
            continue  # the BF16 softmax feeds something else too; leave it
        # the Cast now reads the Softmax's input; the Softmax reads the Cast and takes its place
        node.input[0], soft.input[0] = soft.input[0], node.name
        soft.attr["T"].type = _F32
        for n in graph_def.node:
            if n is not soft:
                for k, i in enumerate(n.input):
                    if _node(i) == node.name and n is not node:
                        n.input[k] = i.replace(node.name, soft.name, 1)
        moved += 1
    return moved


def bf16_rewrite(graph_def: Any, output_names: Sequence[str], *, source: str) -> Any:
    """Return a copy of ``graph_def`` in BF16: Grappler's oneDNN auto mixed precision, then BF16 constants
    instead of Casts of FP32 constants, and output Softmax kept in FP32 (see the module docstring).

    Args:
        graph_def: a frozen FP32 GraphDef (not changed).
        output_names: the graph's output tensors (``name:0``); they keep their names and FP32 type.
        source: where the graph came from, for error messages.
    """
    try:
        out = _grappler_amp(graph_def, output_names)
        folded = _fold_constant_casts(out)
        moved = _softmax_outputs_in_fp32(out, output_names)
    except Exception as exc:
        raise QuantizationError(
            "TensorFlow's oneDNN BF16 rewrite failed",
            where=source,
            why=f"{type(exc).__name__}: {runtime_reason(exc)}",
            hint="keep the model in FP32 or use .int8()",
        ) from exc
    log.info("BF16 rewrite of %s: %d BF16 constants, %d output Softmax kept in FP32", source, folded, moved)
    return out


def cast_report(graph_def: Any) -> dict[str, int]:
    """What a BF16 graph holds: BF16 ops, Casts (to/from BF16), Casts of constants left, Casts that sit
    inside a fusable ``Conv2D/MatMul -> BiasAdd -> activation`` chain (should be 0)."""
    by_name = {n.name: n for n in graph_def.node}
    # read attrs with `in` first: indexing a protobuf map inserts the key (and would change the graph)
    bf16_ops = sum(
        1 for n in graph_def.node if n.op not in ("Const", "Cast") and "T" in n.attr and n.attr["T"].type == _BF16
    )
    casts = [n for n in graph_def.node if n.op == "Cast"]
    of_const = sum(1 for n in casts if n.input and by_name.get(_node(n.input[0]), n).op == "Const")
    in_chain = 0
    for n in graph_def.node:
        if n.op in ("BiasAdd", "Relu", "Relu6", "Elu", "LeakyRelu", "AddV2") and n.input:
            first = by_name.get(_node(n.input[0]))
            if first is not None and first.op == "Cast":
                producer = by_name.get(_node(first.input[0])) if first.input else None
                if producer is not None and producer.op in ("Conv2D", "MatMul", "BiasAdd", "DepthwiseConv2dNative"):
                    in_chain += 1
    return {
        "bf16_ops": bf16_ops,
        "casts": len(casts),
        "casts_of_constants": of_const,
        "casts_inside_fusable_chains": in_chain,
        "bf16_constants": sum(1 for n in graph_def.node if n.op == "Const" and n.attr["dtype"].type == _BF16),
    }


def agreement(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> dict[str, float]:
    """Top-1 agreement, cosine similarity and max abs difference of two models' outputs (first output;
    rows are batch items, the last axis the classes).

    Args:
        reference: the FP32 model's outputs.
        candidate: the BF16 (or INT8) model's outputs, same order and shapes.
    """
    from tfcpu.graph.compare import compare_outputs

    a = np.asarray(reference[0], dtype=np.float64).reshape(len(reference[0]), -1)
    b = np.asarray(candidate[0], dtype=np.float64).reshape(len(candidate[0]), -1)
    out = compare_outputs({"output": a}, {"output": b}, label="fp32 vs bf16").outputs[0]
    return {
        "top1_agreement": float(np.mean(a.argmax(axis=1) == b.argmax(axis=1))) if out.top1 is None else out.top1,
        "cosine": 0.0 if out.cosine is None else out.cosine,
        "max_abs_diff": out.max_abs,
    }
