"""``remove_const_control_edges``: drop ``^const`` control inputs that order nothing.

Matches: control inputs ``^c`` where ``c`` is a Const node without control inputs of its
own. A frozen TF2 function ends in a ``NoOp`` with a control edge on every former variable
(now a Const); after ``remove_nodes`` those edges point at the weights, and they keep
constants alive that batch-norm folding made unused.

Maths: none. A Const has no side effects and, without control inputs, no ordering of its
own, so waiting for it constrains nothing.

Skips: Consts that carry control inputs (they pass an ordering on), and protected names are
never deleted (this pass deletes no node at all; ``strip_unused_nodes`` does afterwards).
"""

from __future__ import annotations

from typing import Any

from tfcpu.graph._graphdef import control_inputs, parse_input
from tfcpu.graph.passes._base import Outcome, PassContext, register_pass


@register_pass("remove_const_control_edges", "drop control edges on Const nodes (they order nothing)")
def remove_const_control_edges(graph_def: Any, ctx: PassContext) -> Outcome:
    out = Outcome()
    inert = {n.name for n in graph_def.node if n.op == "Const" and not control_inputs(n)}
    for node in graph_def.node:
        drop = [t for t in node.input if t.startswith("^") and parse_input(t).node in inert]
        if not drop:
            continue
        keep = [t for t in node.input if t not in drop]
        del node.input[:]
        node.input.extend(keep)
        out.changed.append(f"{node.name} ({len(drop)} edges)")
    return out
