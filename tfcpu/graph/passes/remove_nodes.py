"""``remove_nodes(ops=("Identity", "CheckNumerics"))``: bypass pass-through nodes.

Matches: nodes whose op is in ``ops`` and that forward their only data input unchanged
(Identity, CheckNumerics, StopGradient, Snapshot, PreventGradient ...).

Maths: ``y = x``; consumers of ``node`` (or ``node:0``) read ``x`` instead. Control inputs
of the removed node are moved onto each of its consumers, and a consumer's ``^node``
becomes ``^producer-of-x``, so no execution-order constraint is lost. Chains of removable
nodes are resolved in one step.

Skips (reported): protected inputs/outputs (the signature names them), nodes with other
than one data input, nodes whose output 1+ is consumed, and nodes that read themselves.

Ensures: every node of ``ops`` left in the graph has one of those reasons to stay.
"""

from __future__ import annotations

from typing import Any

from tfcpu.graph._graphdef import GraphIndex, control_inputs, data_inputs, parse_input, set_inputs
from tfcpu.graph.passes._base import Outcome, PassContext, register_pass
from tfcpu.graph.passes._edit import drop_nodes


def _skip_reason(node: Any, index: GraphIndex, protected: frozenset[str]) -> str | None:
    """Why ``node`` (of a removable op type) must stay, or None when it can be bypassed."""
    if node.name in protected:
        return "named as a model input or output"
    if len(data_inputs(node)) != 1:
        return f"{node.op} has {len(data_inputs(node))} data inputs, expected 1"
    if any(r.index > 0 for _, r in index.data_consumers(node.name)):
        return "an output other than :0 is consumed"
    if parse_input(data_inputs(node)[0]).node == node.name:
        return "reads its own output"
    return None


def _none_left(graph_def: Any, ctx: PassContext, ops: tuple[str, ...]) -> str | None:
    """Post-condition: every node of ``ops`` still in the graph has a reason to stay."""
    index = GraphIndex(graph_def)
    left = [n.name for n in graph_def.node if n.op in ops and _skip_reason(n, index, ctx.protected) is None]
    return f"bypassable nodes left: {left[:5]}" if left else None


def _resolve_all(removable: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    """For each removable node: the data input that replaces it and the control inputs to carry along."""
    resolved: dict[str, tuple[str, list[str]]] = {}

    def resolve(name: str, seen: frozenset[str] = frozenset()) -> tuple[str, list[str]]:
        if name in resolved:
            return resolved[name]
        node = removable[name]
        source = data_inputs(node)[0]
        controls = control_inputs(node)
        src = parse_input(source)
        if src.node in removable and src.index == 0 and src.node not in seen and src.node != name:
            source, more = resolve(src.node, seen | {name})
            controls = controls + [c for c in more if c not in controls]
        resolved[name] = (source, controls)
        return resolved[name]

    for name in removable:
        resolve(name)
    return resolved


def _rewire(graph_def: Any, removable: dict[str, Any], resolved: dict[str, tuple[str, list[str]]]) -> None:
    for node in graph_def.node:
        if node.name in removable or not any(parse_input(t).node in removable for t in node.input):
            continue
        new: list[str] = []
        extra: list[str] = []
        for text in node.input:
            ref = parse_input(text)
            if ref.node not in removable:
                new.append(text)
                continue
            source, controls = resolved[ref.node]
            new.append(f"^{parse_input(source).node}" if ref.control else source)
            extra.extend(controls)
        set_inputs(node, new + extra)


@register_pass(
    "remove_nodes",
    "bypass pass-through nodes such as Identity and CheckNumerics",
    ensures=_none_left,
    ops=("Identity", "CheckNumerics"),
)
def remove_nodes(graph_def: Any, ctx: PassContext, ops: tuple[str, ...]) -> Outcome:
    out = Outcome()
    wanted = set(ops)
    index = GraphIndex(graph_def)
    removable: dict[str, Any] = {}
    for node in graph_def.node:
        if node.op not in wanted:
            continue
        reason = _skip_reason(node, index, ctx.protected)
        if reason is None:
            removable[node.name] = node
        else:
            out.skip(node.name, reason)
    _rewire(graph_def, removable, _resolve_all(removable))
    drop_nodes(graph_def, removable)
    out.changed.extend(removable)
    return out
