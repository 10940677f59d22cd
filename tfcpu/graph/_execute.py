"""Run a GraphDef once in a TF1 session (used by the numerical check and by tests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tfcpu.graph.model import Model

__all__ = ["random_feeds", "run_graph"]


def run_graph(graph_def: Any, feeds: dict[str, Any], fetches: Sequence[str], *, grappler: bool = True) -> list[Any]:
    """Import ``graph_def`` into a fresh graph and run ``fetches`` with ``feeds``.

    ``grappler=False`` runs the graph exactly as written: TF's Grappler would otherwise fold
    constants and multiplications into convolutions itself, and make two different graphs
    compute bit-identical results, which hides what a rewrite changed.
    """
    from tfcpu._lazy import import_tensorflow
    from tfcpu.graph.passes.strip_unknown_attrs import for_installed_tensorflow

    tf = import_tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(for_installed_tensorflow(graph_def), name="")
    config = tf.compat.v1.ConfigProto()
    if not grappler:
        config.graph_options.rewrite_options.disable_meta_optimizer = True
    with tf.compat.v1.Session(graph=graph, config=config) as sess:
        try:
            return list(sess.run(list(fetches), feed_dict=dict(feeds)))
        except (tf.errors.OpError, ValueError) as exc:  # the graph fails (missing file, bad shapes, Assert)
            from tfcpu.errors import ModelError

            op = getattr(exc, "op", None)
            _refuse_without_onednn(graph_def, op.name if op is not None else None, exc)
            raise ModelError(
                "the graph fails when TensorFlow runs it",
                where=op.name if op is not None else None,
                why=f"{type(exc).__name__}: {_cause(str(getattr(exc, 'message', exc) or ''))}",
                hint="check that the model runs in TensorFlow on its own",
            ) from exc


def _refuse_without_onednn(graph_def: Any, where: str | None, exc: BaseException) -> None:
    """A quantised graph that failed in a process with oneDNN off: say that, not TensorFlow's "Missing
    0-th output" (its ``Quantized*`` ops have only placeholder kernels there, which produce nothing)."""
    from tfcpu.errors import ModelError
    from tfcpu.graph.model import is_quantized_op
    from tfcpu.session.precision import ONEDNN
    from tfcpu.session.runtime import runtime_info

    if not any(is_quantized_op(node.op) for node in graph_def.node) or runtime_info().onednn_enabled:
        return
    raise ModelError(
        "this graph needs oneDNN, which is off in this process",
        where=where,
        why="its quantised (INT8) ops exist only as oneDNN kernels; TensorFlow was imported with oneDNN off "
        "(its default on CPUs without VNNI, BF16 or AMX) and reads the setting only once, at import",
        hint=f"set {ONEDNN}=1 before anything imports TensorFlow, or run it in a fresh process "
        "(Runner(model).multi_instance(plan), `tfcpu bench`), which turns oneDNN on itself",
    ) from exc


_NOISE = ("Graph execution error", "Detected at node", "Node: ", "[[", "Stack trace", "File ")


def _cause(text: str) -> str:
    """The line of a TensorFlow error that says what went wrong (not "Graph execution error:")."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    useful = [line for line in lines if not line.lstrip().startswith(_NOISE) and not line.startswith("  ")]
    return (useful or lines or [""])[0].strip()


def random_feeds(model: Model, *, seed: int = 0, batch: int = 2) -> dict[str, Any]:
    """Seeded random inputs for the numerical check: `tfcpu.graph.compare.random_inputs()`.

    Unknown dimensions other than the batch are 1 here (a check must run on any signature);
    pass explicit shapes through ``GraphOptimizer.run(shapes=...)`` for a better probe.
    """
    from tfcpu.graph.compare import random_inputs

    return random_inputs(model, batch, seed=seed, unknown_dims=1)
