"""``ungroup_convolutions``: rewrite grouped ``Conv2D`` as ops every CPU runtime handles.

Matches: ``Conv2D`` whose filter's in-depth ``cin_g`` is smaller than its input's depth ``cin``
(a grouped convolution of ``G = cin / cin_g`` groups; Keras 3's ``Conv2D(groups=G)``, found
inside the XLA functions `inline_functions` opens). TensorFlow's plain CPU kernel runs it, but
Grappler fuses ``Conv2D + BiasAdd`` into ``_FusedConv2D``, which refuses groups ("Fused conv
implementation does not support grouped convolutions"), and INC does not quantise it.

Maths, with ``W`` of shape ``(kh, kw, cin_g, cout)`` and ``m = cout / G`` outputs per group
(output channel ``o`` belongs to group ``o // m`` and reads input channels
``[g * cin_g, (g + 1) * cin_g)``):

* depthwise (``cin_g == 1``, equal strides, no dilation, NHWC): output ``g * m + j`` is input
  channel ``g`` convolved with ``W[:, :, 0, g * m + j]``, which is
  ``DepthwiseConv2dNative(x, W.reshape(kh, kw, cin, m))`` (its output ``c * m + j`` uses
  filter ``[:, :, c, j]``): one op, same FLOPs (ConvNeXt's 7x7 convolutions);
* otherwise: ``ConcatV2([Conv2D(x_g, W[..., g*m:(g+1)*m]) for g in range(G)], channel axis)``
  with ``x_g`` the g-th of ``Split(x, G)`` along the channel axis: G ordinary convolutions
  (RegNetX's group convolutions).

The node keeps its name (the depthwise op or the ConcatV2), so consumers need no rewiring.

Skips (reported): a filter that is not constant (through Identity), an input depth shape
inference cannot tell, or an input depth that is not a multiple of the filter's in-depth.
"""

from __future__ import annotations

from typing import Any

from tfcpu.graph._graphdef import GraphIndex, const_array, data_inputs, make_const, parse_input, set_inputs, unique_name
from tfcpu.graph.passes._base import Outcome, PassContext, register_pass
from tfcpu.graph.passes._edit import prune_dead

__all__ = ["ungroup_convolutions"]

_CONV_ONLY_ATTRS = ("use_cudnn_on_gpu",)


def _const_source(index: GraphIndex, text: str) -> Any | None:
    """The Const behind ``text`` through Identity nodes, or None."""
    node = index.producer(text)
    while node is not None and node.op == "Identity" and parse_input(text).index == 0:
        text = data_inputs(node)[0]
        node = index.producer(text)
    return node if node is not None and node.op == "Const" else None


@register_pass("ungroup_convolutions", "rewrite grouped Conv2D as DepthwiseConv2dNative or Split/Conv2D/ConcatV2")
def ungroup_convolutions(graph_def: Any, ctx: PassContext) -> Outcome:
    out = Outcome()
    convs = [n for n in graph_def.node if n.op == "Conv2D"]
    if not convs:
        return out
    from tfcpu.graph.passes._shapes import infer, key

    static = infer(graph_def)
    index = GraphIndex(graph_def)
    names = set(index.nodes)
    dead: list[str] = []
    for conv in convs:
        x, w = data_inputs(conv)[:2]
        nhwc = conv.attr["data_format"].s in (b"", b"NHWC")
        x_shape = static[key(x)].shape if key(x) in static else None
        w_node = _const_source(index, w)
        w_shape = tuple(const_array(w_node).shape) if w_node is not None else None
        cin = None if x_shape is None or len(x_shape) != 4 else x_shape[3 if nhwc else 1]
        if w_shape is not None and cin is not None and w_shape[2] == cin:
            continue  # an ordinary convolution
        if w_node is None or w_shape is None:
            static_w = static.get(key(w))
            if static_w is not None and static_w.shape and cin is not None and static_w.shape[2] == cin:
                continue
            out.skip(conv.name, "the filter is not constant, so its groups cannot be split")
            continue
        if cin is None:
            out.skip(conv.name, "shape inference does not know the input depth")
            continue
        cin_g, cout = int(w_shape[2]), int(w_shape[3])
        groups = cin // cin_g
        if cin % cin_g or cout % groups:
            out.skip(conv.name, f"input depth {cin} / filter in-depth {cin_g} / {cout} outputs do not form groups")
            continue
        weights = const_array(w_node)
        strides = list(conv.attr["strides"].list.i)
        dilations = list(conv.attr["dilations"].list.i) or [1, 1, 1, 1]
        if cin_g == 1 and nhwc and strides[1] == strides[2] and set(dilations) == {1}:
            _to_depthwise(graph_def, conv, weights, groups, names)
            out.changed.append(f"{conv.name} (depthwise, {groups} groups)")
        else:
            _to_split(graph_def, conv, weights, groups, 3 if nhwc else 1, names)
            out.changed.append(f"{conv.name} (split into {groups} groups)")
        dead.append(w_node.name)
        dead.append(parse_input(w).node)
    if dead:
        prune_dead(graph_def, dead, ctx.protected)
    return out


def _to_depthwise(graph_def: Any, conv: Any, weights: Any, groups: int, names: set[str]) -> None:
    """``conv`` becomes ``DepthwiseConv2dNative`` in place (same name, inputs and attributes)."""
    kh, kw, _, cout = weights.shape
    x = data_inputs(conv)[0]
    controls = [t for t in conv.input if t.startswith("^")]
    name = unique_name(names, f"{conv.name}/depthwise_filter")
    names.add(name)
    filt = make_const(graph_def, name, weights.reshape(kh, kw, groups, cout // groups), device=conv.device)
    conv.op = "DepthwiseConv2dNative"
    for attr in _CONV_ONLY_ATTRS:
        if attr in conv.attr:
            del conv.attr[attr]
    set_inputs(conv, [x, filt.name, *controls])


def _to_split(graph_def: Any, conv: Any, weights: Any, groups: int, axis: int, names: set[str]) -> None:
    """``conv`` becomes the ConcatV2 of ``groups`` convolutions of the Split input (same name)."""
    x = data_inputs(conv)[0]
    controls = [t for t in conv.input if t.startswith("^")]
    per = weights.shape[3] // groups
    dtype = conv.attr["T"].type

    def fresh(suffix: str) -> str:
        name = unique_name(names, f"{conv.name}/{suffix}")
        names.add(name)
        return name

    import numpy as np

    split_dim = make_const(graph_def, fresh("group_axis"), np.asarray(axis, np.int32))
    split = graph_def.node.add()
    split.name = fresh("group_split")
    split.op = "Split"
    split.device = conv.device
    split.attr["T"].type = dtype
    split.attr["num_split"].i = groups
    set_inputs(split, [split_dim.name, x, *controls])
    parts = []
    for g in range(groups):
        filt = make_const(
            graph_def, fresh(f"group_{g}/filter"), np.ascontiguousarray(weights[..., g * per : (g + 1) * per])
        )
        part = graph_def.node.add()
        part.CopyFrom(conv)
        part.name = fresh(f"group_{g}")
        set_inputs(part, [f"{split.name}:{g}" if g else split.name, filt.name])
        parts.append(part.name)
    concat_axis = make_const(graph_def, fresh("concat_axis"), np.asarray(axis, np.int32))
    name, device = conv.name, conv.device
    conv.Clear()
    conv.name = name
    conv.op = "ConcatV2"
    conv.device = device
    conv.attr["T"].type = dtype
    conv.attr["N"].i = groups
    conv.attr["Tidx"].type = 3  # DT_INT32
    set_inputs(conv, [*parts, concat_axis.name])
