"""Errors `tfcpu.load()` raises when TensorFlow's own message would mislead (what · where · why · fix)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tfcpu.errors import ModelError, did_you_mean, runtime_reason

__all__ = ["missing_node", "saved_model_failure"]

_PLACEHOLDERS = ("Placeholder", "PlaceholderWithDefault")


def missing_node(node: str, what: str, graph_def: Any, source: str) -> ModelError:
    """``inputs=``/``outputs=`` names a node the graph lacks: say which names would work.

    For an input the graph's Placeholders are listed (they are what can be fed); for an output,
    the closest node names.
    """
    names = [n.name for n in graph_def.node]
    near = did_you_mean(node, names)
    if what == "input":
        holders = [n.name for n in graph_def.node if n.op in _PLACEHOLDERS]
        listed = ", ".join(holders[:10]) + (f" (+{len(holders) - 10} more)" if len(holders) > 10 else "")
        why = (near + "; " if near else "") + (
            f"the graph's Placeholders are: {listed}" if holders else "the graph has no Placeholder"
        )
        hint = "pass inputs= (CLI: --inputs) with one of them, or leave it out to use every Placeholder"
    else:
        why = near or f"the graph has {len(names)} nodes"
        hint = f"see the candidates with: tfcpu inspect {source}"
    return ModelError(f"no {what} node {node!r} in the graph", where=source, why=why, hint=hint)


def saved_model_failure(path: Path, exc: BaseException) -> ModelError:
    """TensorFlow failed to load a SavedModel; replace its device advice when variables are missing."""
    text = str(exc)
    variables = path / "variables"
    if "variables/variables" in text or "TensorSliceReader" in text:
        if not variables.is_dir():
            why = "saved_model.pb refers to variable values, but the directory has no variables/ subdirectory"
        else:
            present = sorted(p.name for p in variables.iterdir())
            why = f"variables/ does not hold the values saved_model.pb refers to (it has: {present or 'nothing'})"
        return ModelError(
            "the SavedModel's variables are missing",
            where=str(path),
            why=why,
            hint="copy the whole SavedModel directory (saved_model.pb together with variables/variables.index "
            "and variables/variables.data-*), not saved_model.pb alone",
        )
    return ModelError("cannot load the SavedModel", where=str(path), why=f"{type(exc).__name__}: {runtime_reason(exc)}")
