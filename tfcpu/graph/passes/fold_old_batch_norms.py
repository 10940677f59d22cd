"""``fold_old_batch_norms``: fold FusedBatchNorm[V2|V3] and BatchNormWithGlobalNormalization.

Matches: an inference-mode batch norm after ``Conv2D``, ``DepthwiseConv2dNative`` or
``MatMul`` with constant weights, directly or through per-channel ``BiasAdd``/``Add``/
``AddV2``/``Sub``/``Mul`` nodes (legacy Keras emits ``Conv2D -> BiasAdd -> FusedBatchNormV3``,
which TF's C++ ``fold_old_batch_norms`` leaves alone). NHWC and NCHW.

Maths: ``y = gamma * (z - mean) / sqrt(var + eps) + beta = s * z + (beta - mean * s)`` with
``s = gamma / sqrt(var + eps)`` (``gamma = 1`` for BatchNormWithGlobalNormalization with
``scale_after_normalization=false``). ``s`` scales the weights' output channels (for a
depthwise filter ``[h, w, in, multiplier]`` channel ``i * multiplier + m``), and every shift
in the chain is summed into one BiasAdd. See `tfcpu.graph.passes._affine`.

Skips (reported per batch norm): training mode, statistics outputs in use, weights not
constant or shared with other nodes, a producer with other consumers, mismatched layouts, or
no linear op before it.
"""

from __future__ import annotations

from typing import Any

from tfcpu.graph.passes._affine import OLD_BN, fold_affine_chains
from tfcpu.graph.passes._base import Outcome, PassContext, register_pass


@register_pass("fold_old_batch_norms", "fold FusedBatchNorm* / BatchNormWithGlobalNormalization into weights")
def fold_old_batch_norms(graph_def: Any, ctx: PassContext) -> Outcome:
    out = Outcome()
    fold_affine_chains(graph_def, ctx, OLD_BN, out)
    return out
