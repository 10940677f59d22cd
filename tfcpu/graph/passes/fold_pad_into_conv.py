"""``fold_pad_into_conv``: absorb a zero ``Pad`` into the ``Conv2D`` that reads it.

Matches: ``Pad``/``PadV2`` (constant value 0) with constant paddings that touch only the
spatial axes, read only by a ``Conv2D`` with ``padding="VALID"``
(or already ``EXPLICIT``). ResNet-50's stem (``ZeroPadding2D(3) -> Conv2D(7x7, stride 2)``) is
the classic case; a quantiser then sees one conv instead of Pad + conv.

Maths: ``conv_valid(pad0(x, p), W) = conv_explicit(x, W, explicit_paddings=p)`` — explicit
padding pads with zeros exactly like Pad does, for any stride and dilation. Existing explicit
paddings are added.

Skips (reported): non-zero constant value, paddings on batch or channel axes, non-constant
paddings, a Pad read by other nodes too, or a Pad that is a model input/output. Not in
``GraphOptimizer.default()``: TensorFlow's CPU kernels run EXPLICIT padding, but converters
and older runtimes may not; add it explicitly (``.fold_pad_into_conv()``).
"""

from __future__ import annotations

from typing import Any

from tfcpu.graph._graphdef import GraphIndex, const_array, data_inputs, parse_input
from tfcpu.graph.passes._base import Outcome, PassContext, register_pass
from tfcpu.graph.passes._edit import prune_dead


@register_pass("fold_pad_into_conv", "absorb zero Pad nodes into the following Conv2D (explicit padding)")
def fold_pad_into_conv(graph_def: Any, ctx: PassContext) -> Outcome:
    import numpy as np

    out = Outcome()
    index = GraphIndex(graph_def)
    candidates: list[str] = []
    for pad in list(graph_def.node):
        if pad.op not in ("Pad", "PadV2"):
            continue
        users = index.consumers.get(pad.name, [])
        convs = [u for u, r in users if u.op == "Conv2D" and not r.control and r.index == 0]
        if not convs:
            continue
        reason = None
        conv = convs[0]
        data = data_inputs(pad)
        paddings_node = index.producer(data[1])
        layout = conv.attr["data_format"].s.decode() or "NHWC"
        spatial = (1, 2) if layout == "NHWC" else (2, 3)
        if pad.name in ctx.protected:
            reason = "the Pad is a model input or output"
        elif len(users) != 1:
            reason = f"the Pad feeds {len(users)} nodes"
        elif parse_input(data_inputs(conv)[0]).node != pad.name:
            reason = "the Pad feeds the filter, not the input"
        elif paddings_node is None or paddings_node.op != "Const":
            reason = "paddings are not a constant"
        elif pad.op == "PadV2" and (
            (value := index.producer(data[2])) is None or value.op != "Const" or np.any(const_array(value) != 0)
        ):
            reason = "the pad value is not a constant zero"
        elif conv.attr["padding"].s not in (b"VALID", b"EXPLICIT"):
            reason = f"the Conv2D uses padding={conv.attr['padding'].s.decode()}"
        if reason is None:
            paddings = np.asarray(const_array(paddings_node)).reshape(-1, 2)
            if paddings.shape[0] != 4 or any(paddings[i].any() for i in range(4) if i not in spatial):
                reason = "paddings touch the batch or channel axis"
        if reason is not None:
            out.skip(pad.name, reason)
            continue
        explicit = np.zeros((4, 2), dtype=np.int64)
        if conv.attr["padding"].s == b"EXPLICIT":
            explicit += np.asarray(list(conv.attr["explicit_paddings"].list.i), dtype=np.int64).reshape(4, 2)
        explicit += paddings.astype(np.int64)
        conv.input[0] = data[0]
        conv.attr["padding"].s = b"EXPLICIT"
        del conv.attr["explicit_paddings"].list.i[:]
        conv.attr["explicit_paddings"].list.i.extend(int(v) for v in explicit.reshape(-1))
        candidates.append(pad.name)
        out.changed.append(f"{conv.name} <- {pad.name}")
    prune_dead(graph_def, candidates, ctx.protected)
    return out
