"""BF16 through oneDNN's auto mixed precision, applied offline to a frozen GraphDef.

TensorFlow's Grappler has a rewriter (``auto_mixed_precision_onednn_bfloat16``) that casts the
ops oneDNN runs well in BF16 (Conv2D, MatMul, BiasAdd, Relu, ...) and inserts ``Cast`` nodes at
the borders. tfcpu runs only that rewriter once, on the frozen graph, so the saved model
carries the BF16 casts and needs no session option. It pays only with AVX512_BF16 or AMX;
`tfcpu.Quantizer.bf16()` refuses the plan elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tfcpu.errors import QuantizationError

__all__ = ["bf16_rewrite"]


def bf16_rewrite(graph_def: Any, output_names: Sequence[str], *, source: str) -> Any:
    """Return a copy of ``graph_def`` rewritten by Grappler's oneDNN BF16 auto mixed precision."""
    from tfcpu._lazy import import_tensorflow

    tf = import_tensorflow()
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, rewriter_config_pb2
    from tensorflow.python.grappler import tf_optimizer

    graph = tf.Graph()
    try:
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
    except Exception as exc:
        raise QuantizationError(
            "TensorFlow's oneDNN BF16 rewrite failed",
            where=source,
            why=f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
            hint="keep the model in FP32 or use .int8()",
        ) from exc
