"""``strip_unknown_attrs`` and ``strip_default_attrs``: make a graph loadable by another TF.

``strip_default_attrs`` matches attributes whose value equals the default in the op's
registered definition and deletes them; a consumer TF applies the same default, so the
graph means the same. Attributes added by newer TF versions always carry defaults, so this
is what makes a graph written by TF 2.21 load in TF 2.15 (e.g. MatMul's ``grad_a``/``grad_b``,
which made ITEX on TF 2.15 abort with "AttrDef not found").

``strip_unknown_attrs`` deletes attributes that the op registry of the TensorFlow *running
this pass* does not define (run it under the older TF). Internal ``_``-prefixed attributes
(``_output_shapes``, ``_class``) are kept by both.

Skips (reported): nodes whose op is not in the registry (custom ops).
"""

from __future__ import annotations

from typing import Any

from tfcpu.graph.passes._base import Outcome, PassContext, register_pass


def _op_def(op: str) -> Any:
    from tensorflow.python.framework import op_def_registry

    return op_def_registry.get(op)


@register_pass("strip_unknown_attrs", "delete attributes this TensorFlow's op registry does not define")
def strip_unknown_attrs(graph_def: Any, ctx: PassContext) -> Outcome:
    out = Outcome()
    for node in graph_def.node:
        op_def = _op_def(node.op)
        if op_def is None:
            out.skip(node.name, f"op {node.op!r} is not registered in this TensorFlow")
            continue
        known = {a.name for a in op_def.attr}
        for key in [k for k in node.attr if not k.startswith("_") and k not in known]:
            del node.attr[key]
            out.changed.append(f"{node.name}.{key}")
    return out


@register_pass("strip_default_attrs", "delete attributes equal to their registered default")
def strip_default_attrs(graph_def: Any, ctx: PassContext) -> Outcome:
    out = Outcome()
    for node in graph_def.node:
        op_def = _op_def(node.op)
        if op_def is None:
            out.skip(node.name, f"op {node.op!r} is not registered in this TensorFlow")
            continue
        for attr in op_def.attr:
            if (
                attr.HasField("default_value")
                and attr.name in node.attr
                and (node.attr[attr.name] == attr.default_value)
            ):
                del node.attr[attr.name]
                out.changed.append(f"{node.name}.{attr.name}")
    return out
