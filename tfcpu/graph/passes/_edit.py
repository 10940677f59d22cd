"""Graph edits shared by passes: drop nodes, rewire consumers, prune what became dead."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tfcpu.graph._graphdef import GraphIndex, parse_input, set_inputs

__all__ = ["drop_nodes", "prune_dead", "rewire"]


def drop_nodes(graph_def: Any, names: Iterable[str]) -> None:
    """Delete the named nodes (callers make sure nothing still consumes them)."""
    gone = set(names)
    if not gone:
        return
    keep = [n for n in graph_def.node if n.name not in gone]
    del graph_def.node[:]
    graph_def.node.extend(keep)


def rewire(graph_def: Any, mapping: dict[str, str]) -> None:
    """Replace input strings: ``mapping`` maps ``"node:k"`` (k explicit) to a new input string.

    Control inputs ``^node`` are mapped through ``mapping["^node"]`` when present.
    """
    for node in graph_def.node:
        changed = False
        new: list[str] = []
        for text in node.input:
            ref = parse_input(text)
            key = f"^{ref.node}" if ref.control else f"{ref.node}:{ref.index}"
            if key in mapping:
                new.append(mapping[key])
                changed = True
            else:
                new.append(text)
        if changed:
            set_inputs(node, new)


def prune_dead(graph_def: Any, candidates: Iterable[str], protected: frozenset[str]) -> list[str]:
    """Remove candidates that nothing consumes any more, then their inputs that became dead too.

    Only candidates and nodes reached from them through inputs are considered; Placeholders and
    protected names are never removed. Returns the removed names.
    """
    index = GraphIndex(graph_def)
    pending = [c for c in candidates if c in index.nodes]
    removed: set[str] = set()
    users = {name: len(index.consumers.get(name, [])) for name in index.nodes}
    while pending:
        name = pending.pop()
        if name in removed or name in protected or users.get(name, 0) > 0:
            continue
        node = index.nodes[name]
        if node.op in ("Placeholder", "PlaceholderWithDefault"):
            continue
        removed.add(name)
        for text in node.input:
            src = parse_input(text).node
            if src in users:
                users[src] -= 1
                pending.append(src)
    drop_nodes(graph_def, removed)
    return sorted(removed)
