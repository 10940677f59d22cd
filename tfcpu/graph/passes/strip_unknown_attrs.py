"""``strip_unknown_attrs(only_newer_producer=False)``: delete attributes this TensorFlow does not define.

Matches: attributes that the op registry of the TensorFlow *running this pass* does not
define (run it under the older TF). Internal ``_``-prefixed attributes (``_output_shapes``,
``_class``) are kept. With ``only_newer_producer=True`` (how ``GraphOptimizer.default()``
runs it) it does nothing unless the graph's ``versions.producer`` is newer than the running
TensorFlow's ``GRAPH_DEF_VERSION``: only a newer producer can write attributes this registry
lacks. `newer_producer()` is the same test, used by the Runner before it imports a graph
(see docs/itex.md), and `for_installed_tensorflow()` applies the pass to a copy when needed.

Maths: none; an attribute the consumer does not know cannot change what its kernel computes
(newer attributes always carry defaults that mean the old behaviour).

Skips (reported): nodes whose op is not in the registry (custom ops); the whole graph when
``only_newer_producer`` is set and the producer is not newer.
"""

from __future__ import annotations

import logging
from typing import Any

from tfcpu.graph.passes._base import Outcome, PassContext, register_pass

__all__ = ["for_installed_tensorflow", "newer_producer", "op_def", "strip_unknown_attrs"]


def op_def(op: str) -> Any:
    """The OpDef of ``op`` in the installed TensorFlow, or None."""
    from tensorflow.python.framework import op_def_registry

    return op_def_registry.get(op)


def newer_producer(graph_def: Any) -> bool:
    """True when ``graph_def`` was written by a newer TensorFlow than the one installed."""
    from tensorflow.python.framework import versions

    return int(graph_def.versions.producer) > int(versions.GRAPH_DEF_VERSION)


def for_installed_tensorflow(graph_def: Any) -> Any:
    """``graph_def`` itself, or a copy without unknown attributes when a newer TensorFlow wrote it.

    TensorFlow imports such graphs, but ITEX's graph optimiser on TF 2.15 aborts the whole
    process on a TF 2.21 graph ("AttrDef not found for attribute grad_a"). The Runner and the
    numerical check run graphs through this (see docs/itex.md).
    """
    if not newer_producer(graph_def):
        return graph_def
    work = type(graph_def)()
    work.CopyFrom(graph_def)
    out = strip_unknown_attrs(work, PassContext(), only_newer_producer=True)
    logging.getLogger(__name__).info("graph from a newer TensorFlow: stripped %d unknown attributes", len(out.changed))
    return work


@register_pass(
    "strip_unknown_attrs",
    "delete attributes this TensorFlow's op registry does not define",
    only_newer_producer=False,
)
def strip_unknown_attrs(graph_def: Any, ctx: PassContext, only_newer_producer: bool) -> Outcome:
    out = Outcome()
    if only_newer_producer and not newer_producer(graph_def):
        from tensorflow.python.framework import versions

        out.skip(
            "<graph>",
            f"producer {graph_def.versions.producer} is not newer than this TensorFlow "
            f"({versions.GRAPH_DEF_VERSION}): every attribute is known",
        )
        return out
    for node in graph_def.node:
        definition = op_def(node.op)
        if definition is None:
            out.skip(node.name, f"op {node.op!r} is not registered in this TensorFlow")
            continue
        known = {a.name for a in definition.attr}
        for key in [k for k in node.attr if not k.startswith("_") and k not in known]:
            del node.attr[key]
            out.changed.append(f"{node.name}.{key}")
    return out
