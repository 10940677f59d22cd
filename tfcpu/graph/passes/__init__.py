"""Graph passes, one module per pass, each registered under its name.

The name of a pass is also the name of its `GraphOptimizer` method and its
token in a ``graph_transforms`` string. `run_pass()` is the only way passes are run: it
copies the GraphDef, calls the pass on the copy, times it, settles ``modified`` (the pass's
word, checked, or a comparison of output and input), runs the pass's ``ensures`` and builds
the PassReport. ``requires`` is checked by `GraphOptimizer` when a plan is built.
See `tfcpu.graph.passes._base` for the contract and docs/graph-optimization.md for how
to add a pass.
"""

from __future__ import annotations

import time
from typing import Any

from tfcpu.errors import ConfigError, PassError, TfcpuError, did_you_mean
from tfcpu.graph.passes import (  # noqa: F401  (imported to register the passes)
    fold_batch_norms,
    fold_constants,
    fold_old_batch_norms,
    fold_pad_into_conv,
    fold_shape_arithmetic,
    fuse_layer_norm,
    fuse_matmul_gelu,
    inline_functions,
    merge_duplicate_constants,
    projections_to_matmul,
    remove_const_control_edges,
    remove_nodes,
    strip_default_attrs,
    strip_unknown_attrs,
    strip_unused_nodes,
    ungroup_convolutions,
)
from tfcpu.graph.passes._base import PASSES, Outcome, PassContext, PassInfo, PassReport, Skip, register_pass

__all__ = [
    "PASSES",
    "Outcome",
    "PassContext",
    "PassInfo",
    "PassReport",
    "Skip",
    "get_pass",
    "register_pass",
    "run_pass",
]


def get_pass(name: str) -> PassInfo:
    info = PASSES.get(name)
    if info is None:
        raise ConfigError(
            f"unknown graph pass {name!r}",
            why=did_you_mean(name, PASSES),
            hint="known passes: " + ", ".join(sorted(PASSES)),
        )
    return info


def run_pass(name: str, graph_def: Any, ctx: PassContext, **params: Any) -> tuple[Any, PassReport]:
    """Run one pass on a copy of ``graph_def``; the argument is never modified."""
    info = get_pass(name)
    unknown = set(params) - set(info.defaults)
    if unknown:
        bad = sorted(unknown)[0]
        raise ConfigError(
            f"pass {name!r} has no parameter {bad!r}",
            why=did_you_mean(bad, info.defaults),
            hint="parameters: " + (", ".join(info.defaults) or "none"),
        )
    merged = {**info.defaults, **params}
    work = type(graph_def)()
    work.CopyFrom(graph_def)
    start = time.perf_counter()
    try:
        outcome = info.function(work, ctx, **merged)
    except TfcpuError:
        raise
    except Exception as exc:  # a pass bug: name the pass
        raise PassError(
            f"graph pass {name!r} failed", why=f"{type(exc).__name__}: {exc}", hint="report this as a tfcpu bug"
        ) from exc
    seconds = time.perf_counter() - start
    modified = _modified(name, outcome, graph_def, work)
    if info.ensures is not None and (problem := info.ensures(work, ctx, **merged)):
        raise PassError(
            f"graph pass {name!r} broke its post-condition", why=str(problem), hint="report this as a tfcpu bug"
        )
    report = PassReport(
        name=name,
        params=merged,
        nodes_before=len(graph_def.node),
        nodes_after=len(work.node),
        changed=tuple(outcome.changed),
        skipped=tuple(outcome.skipped),
        seconds=round(seconds, 4),
        modified=modified,
    )
    return work, report


def _modified(name: str, outcome: Outcome, before: Any, after: Any) -> bool:
    """The pass's own ``modified`` flag, checked; or whether the graph changed, when it does not say."""
    if not isinstance(outcome, Outcome):
        raise PassError(
            f"graph pass {name!r} returned {type(outcome).__name__}, not an Outcome",
            hint="a pass returns tfcpu.graph.passes._base.Outcome(changed=..., skipped=...)",
        )
    changed = bool(after != before)
    if outcome.modified is False and changed:
        raise PassError(
            f"graph pass {name!r} says it did not modify the graph, but it did", hint="report this as a tfcpu bug"
        )
    return changed if outcome.modified is None else bool(outcome.modified)
