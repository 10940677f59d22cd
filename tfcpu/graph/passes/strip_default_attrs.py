"""``strip_default_attrs``: delete attributes whose value equals the registered default.

Matches: attributes whose value equals the default in the op's registered definition. A
consumer TensorFlow applies the same default, so the graph means the same. Attributes added
by newer TF versions always carry defaults, so this is what makes a graph written by TF 2.21
load in TF 2.15 (e.g. MatMul's ``grad_a``/``grad_b``, which made ITEX on TF 2.15 abort with
"AttrDef not found"). Internal ``_``-prefixed attributes are never in an OpDef, so they stay.

Maths: none (the same attribute values after defaults are applied).

Skips (reported): nodes whose op is not in the registry (custom ops).

Ensures: no attribute left equals its registered default.
"""

from __future__ import annotations

from typing import Any

from tfcpu.graph.passes._base import Outcome, PassContext, register_pass
from tfcpu.graph.passes.strip_unknown_attrs import op_def

__all__ = ["strip_default_attrs"]


def _defaults_left(graph_def: Any) -> list[tuple[Any, str]]:
    """(node, attribute name) of every attribute equal to its registered default."""
    left = []
    for node in graph_def.node:
        definition = op_def(node.op)
        for attr in definition.attr if definition is not None else ():
            if attr.HasField("default_value") and attr.name in node.attr and node.attr[attr.name] == attr.default_value:
                left.append((node, attr.name))
    return left


def _no_default_left(graph_def: Any, ctx: PassContext) -> str | None:
    left = _defaults_left(graph_def)
    names = [f"{node.name}.{attr}" for node, attr in left[:5]]
    return f"attributes equal to their default left: {names}" if left else None


@register_pass("strip_default_attrs", "delete attributes equal to their registered default", ensures=_no_default_left)
def strip_default_attrs(graph_def: Any, ctx: PassContext) -> Outcome:
    out = Outcome()
    for node in graph_def.node:
        if op_def(node.op) is None:
            out.skip(node.name, f"op {node.op!r} is not registered in this TensorFlow")
    for node, attr in _defaults_left(graph_def):
        del node.attr[attr]
        out.changed.append(f"{node.name}.{attr}")
    return out
