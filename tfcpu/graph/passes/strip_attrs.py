"""``strip_unknown_attrs`` and ``strip_default_attrs``: make a graph loadable by another TF.

``strip_default_attrs`` matches attributes whose value equals the default in the op's
registered definition and deletes them; a consumer TF applies the same default, so the
graph means the same. Attributes added by newer TF versions always carry defaults, so this
is what makes a graph written by TF 2.21 load in TF 2.15 (e.g. MatMul's ``grad_a``/``grad_b``,
which made ITEX on TF 2.15 abort with "AttrDef not found").

``strip_unknown_attrs`` deletes attributes that the op registry of the TensorFlow *running
this pass* does not define (run it under the older TF). Internal ``_``-prefixed attributes
(``_output_shapes``, ``_class``) are kept by both. With ``only_newer_producer=True`` (how
``GraphOptimizer.default()`` runs it) it does nothing unless the graph's
``versions.producer`` is newer than the running TensorFlow's ``GRAPH_DEF_VERSION``: only a
newer producer can write attributes this registry lacks. `newer_producer()` is the same
test, used by the Runner before it imports a graph (see docs/itex.md).

Skips (reported): nodes whose op is not in the registry (custom ops); the whole graph when
``only_newer_producer`` is set and the producer is not newer.
"""

from __future__ import annotations

import logging
from typing import Any

from tfcpu.graph.passes._base import Outcome, PassContext, register_pass


def _op_def(op: str) -> Any:
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
