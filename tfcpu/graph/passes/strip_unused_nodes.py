"""``strip_unused_nodes``: delete every node the outputs do not depend on.

Matches: nodes not reachable backwards from the protected outputs through data *or*
control inputs (so ``^name`` dependencies, and what they depend on, survive).

Maths: none; the outputs are computed by exactly the same nodes as before.

Skips: nothing is skipped; the named inputs are always kept even when no output needs
them, so the signature of the Model stays valid.

Ensures: no node is left that neither an output needs nor the signature names.
"""

from __future__ import annotations

from typing import Any

from tfcpu.graph._graphdef import parse_input
from tfcpu.graph.passes._base import Outcome, PassContext, register_pass
from tfcpu.graph.passes._edit import drop_nodes


def _needed(graph_def: Any, ctx: PassContext) -> set[str]:
    """Names reachable backwards (data and control inputs) from the protected names."""
    nodes = {n.name: n for n in graph_def.node}
    keep: set[str] = set()
    stack = [name for name in (*ctx.outputs, *ctx.inputs) if name in nodes]
    while stack:
        name = stack.pop()
        if name in keep:
            continue
        keep.add(name)
        for text in nodes[name].input:
            src = parse_input(text).node
            if src in nodes and src not in keep:
                stack.append(src)
    return keep


def _nothing_unused(graph_def: Any, ctx: PassContext) -> str | None:
    """Post-condition: every node left is needed by an output or is a named input."""
    keep = _needed(graph_def, ctx)
    left = [n.name for n in graph_def.node if n.name not in keep]
    return f"unused nodes left: {left[:5]}" if left else None


@register_pass("strip_unused_nodes", "delete nodes the outputs do not depend on", ensures=_nothing_unused)
def strip_unused_nodes(graph_def: Any, ctx: PassContext) -> Outcome:
    keep = _needed(graph_def, ctx)
    dead = [n.name for n in graph_def.node if n.name not in keep]
    drop_nodes(graph_def, dead)
    return Outcome(changed=dead)
