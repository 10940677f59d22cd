"""The pass contract: a pure function from (GraphDef copy, context) to (GraphDef, PassReport).

A pass is ``function(graph_def, ctx, **params) -> Outcome``, registered with
`register_pass()`. It receives its own copy of the GraphDef and may edit it in place;
the infrastructure (`tfcpu.graph.passes.run_pass()`) turns the Outcome into a
`PassReport`. "Did not match" is data: each node a pass looked at but left alone is a
`Skip` with the reason. A broken invariant (a rewrite that would corrupt the graph)
raises `PassError`.

What a registration may declare besides its parameters' defaults:

* ``requires=("fold_constants",)`` — passes that must run earlier in the same plan;
  `GraphOptimizer` refuses a plan that lacks them when it is built (ConfigError
  naming the missing pass), not when it runs.
* ``ensures=callable(graph_def, ctx, **params) -> str | None`` — a post-condition checked on
  the pass's output; a returned text is what is broken, and becomes a PassError naming the pass.

``Outcome.modified`` says whether the graph changed; a pass that leaves it ``None`` gets it
computed by the infrastructure (the output compared with the input). A pass that claims
``modified=False`` and changed the graph anyway is a PassError.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tfcpu._codec import CODEC, FieldCodec, Serializable
from tfcpu.errors import ConfigError

__all__ = ["PASSES", "Ensures", "Outcome", "PassContext", "PassInfo", "PassReport", "Skip", "register_pass"]


@dataclass(frozen=True)
class Skip(Serializable):
    """A node a pass considered and left alone, and why."""

    node: str
    reason: str


@dataclass(frozen=True)
class PassContext:
    """What every pass may read: the names it must keep (node names, without ``:0``)."""

    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()

    @property
    def protected(self) -> frozenset[str]:
        return frozenset(self.inputs) | frozenset(self.outputs)


def _params(data: dict[str, Any]) -> dict[str, Any]:
    return {str(k): tuple(v) if isinstance(v, list) else v for k, v in data.items()}


@dataclass(frozen=True)
class PassReport(Serializable):
    """What one pass did: node counts, the nodes it changed, what it skipped and why, time."""

    name: str
    params: dict[str, Any] = field(default_factory=dict, metadata={CODEC: FieldCodec(decode=_params)})
    nodes_before: int = 0
    nodes_after: int = 0
    changed: tuple[str, ...] = ()
    skipped: tuple[Skip, ...] = ()
    seconds: float = 0.0
    modified: bool = True


@dataclass
class Outcome:
    """Mutable collector a pass fills while it works (turned into a PassReport by the runner).

    ``modified``: whether the graph changed; ``None`` lets the infrastructure find out.
    """

    changed: list[str] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    modified: bool | None = None

    def skip(self, node: str, reason: str) -> None:
        self.skipped.append(Skip(node, reason))


PassFunction = Callable[..., Outcome]
#: A post-condition: ``ensures(graph_def, ctx, **params)`` returns None when it holds, else what is broken.
Ensures = Callable[..., "str | None"]


@dataclass(frozen=True)
class PassInfo:
    """A registered pass: name (== fluent method == CLI token), function, defaults, summary.

    Attributes:
        name: the registered name.
        function: ``function(graph_def, ctx, **params) -> Outcome``.
        defaults: every parameter and its default value.
        summary: one line for ``explain()``.
        requires: passes that must come earlier in a plan.
        ensures: the post-condition run on the pass's output, or None.
    """

    name: str
    function: PassFunction
    defaults: dict[str, Any]
    summary: str
    requires: tuple[str, ...] = ()
    ensures: Ensures | None = None


PASSES: dict[str, PassInfo] = {}


def register_pass(
    name: str,
    summary: str,
    *,
    requires: tuple[str, ...] | list[str] = (),
    ensures: Ensures | None = None,
    **defaults: Any,
) -> Callable[[PassFunction], PassFunction]:
    """Register ``function(graph_def, ctx, **params) -> Outcome``; it edits ``graph_def`` in place.

    Args:
        name: the pass's name: its GraphOptimizer method and its transform-string token.
        summary: one line saying what it does.
        requires: names of passes that must run before it in the same plan.
        ensures: a post-condition ``(graph_def, ctx, **params) -> str | None`` checked after it runs.
        **defaults: every parameter of the pass with its default value.
    """

    def decorate(function: PassFunction) -> PassFunction:
        if name in PASSES:
            raise ConfigError(f"pass {name!r} registered twice", hint="choose another name for the new pass")
        if not name.isidentifier() or name.startswith("_"):
            raise ConfigError(f"pass name {name!r} is not a public Python identifier", hint="e.g. fold_my_op")
        PASSES[name] = PassInfo(name, function, dict(defaults), summary, tuple(requires), ensures)
        return function

    return decorate
