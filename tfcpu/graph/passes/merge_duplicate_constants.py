"""``merge_duplicate_constants``: keep one Const per distinct value.

Matches: Const nodes with the same dtype, shape and bytes (and device) — frozen graphs
often hold the same epsilon, shape vector or axis many times.

Maths: none; consumers of a duplicate read the first Const of its value instead (data
inputs ``dup:0`` and control inputs ``^dup`` alike).

Skips: protected names (a named output or input keeps its node).
"""

from __future__ import annotations

import hashlib
from typing import Any

from tfcpu.graph.passes._base import Outcome, PassContext, register_pass
from tfcpu.graph.passes._edit import drop_nodes, rewire


@register_pass("merge_duplicate_constants", "point every reader of an equal Const to one copy")
def merge_duplicate_constants(graph_def: Any, ctx: PassContext) -> Outcome:
    out = Outcome()
    first: dict[tuple[Any, ...], str] = {}
    mapping: dict[str, str] = {}
    dropped: list[str] = []
    for node in graph_def.node:
        if node.op != "Const" or node.name in ctx.protected:
            continue
        key = (
            node.device,
            node.attr["dtype"].type,
            hashlib.sha256(node.attr["value"].tensor.SerializeToString(deterministic=True)).hexdigest(),
        )
        keep = first.setdefault(key, node.name)
        if keep != node.name:
            mapping[f"{node.name}:0"] = keep
            mapping[f"^{node.name}"] = f"^{keep}"
            dropped.append(node.name)
    rewire(graph_def, mapping)
    drop_nodes(graph_def, dropped)
    out.changed.extend(dropped)
    return out
