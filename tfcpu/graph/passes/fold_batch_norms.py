"""``fold_batch_norms``: fold per-channel ``Mul`` (and the Add/Sub around it) into weights.

Matches: ``Conv2D``/``DepthwiseConv2dNative``/``MatMul`` with constant weights followed by a
chain of per-channel ``BiasAdd``/``Add``/``AddV2``/``Sub``/``Mul``/``RealDiv`` with constant
operands that contains a ``Mul`` or ``RealDiv``. That is the Keras 3 batch norm after
``fold_constants`` (Keras 3 writes ``x * (gamma * rsqrt(var + eps)) + (beta - mean * ...)``
as Reshape/Sub/Mul/Rsqrt/AddV2 nodes, which become ``Conv2D -> BiasAdd -> Mul(c) -> AddV2(c)``
once the constant parts are folded) and the TF1 ``MatMul -> BiasAdd -> Mul -> Add`` form.

Maths: the chain is ``y = A * z + B`` per output channel; ``A`` goes into the weights and
``B`` into one BiasAdd (see `tfcpu.graph.passes._affine`).

Requires ``fold_constants`` earlier in the plan (a plan without it is refused when built):
the Keras 3 form only becomes per-channel constants once the constant parts are folded.

Skips (reported per Mul right after a linear op): operand not constant (run fold_constants
first), not per-channel, weights not constant or shared, producer with other consumers.
"""

from __future__ import annotations

from typing import Any

from tfcpu.graph.passes._affine import fold_affine_chains
from tfcpu.graph.passes._base import Outcome, PassContext, register_pass


@register_pass(
    "fold_batch_norms",
    "fold per-channel Mul/Add chains after convolutions into the weights",
    requires=("fold_constants",),
)
def fold_batch_norms(graph_def: Any, ctx: PassContext) -> Outcome:
    out = Outcome()
    fold_affine_chains(graph_def, ctx, ("Mul", "RealDiv"), out)
    return out
