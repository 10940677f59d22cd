"""The pass contract: a pure function from (GraphDef copy, context) to (GraphDef, PassReport).

A pass receives its own copy of the GraphDef and may edit it in place; it returns the graph
it wants the next pass to see plus a `PassReport`. "Did not match" is data: each
node a pass looked at but left alone is a `Skip` with the reason. A broken invariant
(a rewrite that would corrupt the graph) raises `PassError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PASSES", "PassContext", "PassInfo", "PassReport", "Skip", "register_pass"]


@dataclass(frozen=True)
class Skip:
    """A node a pass considered and left alone, and why."""

    node: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"node": self.node, "reason": self.reason}


@dataclass(frozen=True)
class PassContext:
    """What every pass may read: the names it must keep (node names, without ``:0``)."""

    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()

    @property
    def protected(self) -> frozenset[str]:
        return frozenset(self.inputs) | frozenset(self.outputs)


@dataclass(frozen=True)
class PassReport:
    """What one pass did: node counts, the nodes it changed, what it skipped and why, time."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    nodes_before: int = 0
    nodes_after: int = 0
    changed: tuple[str, ...] = ()
    skipped: tuple[Skip, ...] = ()
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()},
            "nodes_before": self.nodes_before,
            "nodes_after": self.nodes_after,
            "changed": list(self.changed),
            "skipped": [s.to_dict() for s in self.skipped],
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PassReport:
        return cls(
            name=data["name"],
            params={k: tuple(v) if isinstance(v, list) else v for k, v in data.get("params", {}).items()},
            nodes_before=data["nodes_before"],
            nodes_after=data["nodes_after"],
            changed=tuple(data.get("changed", ())),
            skipped=tuple(Skip(s["node"], s["reason"]) for s in data.get("skipped", ())),
            seconds=data.get("seconds", 0.0),
        )


@dataclass
class Outcome:
    """Mutable collector a pass fills while it works (turned into a PassReport by the runner)."""

    changed: list[str] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)

    def skip(self, node: str, reason: str) -> None:
        self.skipped.append(Skip(node, reason))


PassFunction = Callable[..., Outcome]


@dataclass(frozen=True)
class PassInfo:
    """A registered pass: name (== fluent method == CLI token), function, defaults, summary."""

    name: str
    function: PassFunction
    defaults: dict[str, Any]
    summary: str


PASSES: dict[str, PassInfo] = {}


def register_pass(name: str, summary: str, **defaults: Any) -> Callable[[PassFunction], PassFunction]:
    """Register ``function(graph_def, ctx, **params) -> Outcome``; it edits ``graph_def`` in place."""

    def decorate(function: PassFunction) -> PassFunction:
        if name in PASSES:
            raise RuntimeError(f"pass {name!r} registered twice")
        PASSES[name] = PassInfo(name, function, dict(defaults), summary)
        return function

    return decorate
