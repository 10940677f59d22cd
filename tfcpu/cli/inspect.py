"""``tfcpu inspect MODEL``: what TF's ``summarize_graph`` prints, for any model tfcpu can load."""

from __future__ import annotations

import argparse
import json

from tfcpu._render import print_rich
from tfcpu.cli._common import add_model_args, load_model


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "inspect",
        help="summarise a model: inputs, outputs, parameters, op histogram",
        description="Load a model as a frozen graph and summarise it (like TF's summarize_graph).",
    )
    add_model_args(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tfcpu.errors import UnsafeModelError
    from tfcpu.graph import safety

    try:
        model = load_model(args)
    except UnsafeModelError as exc:
        # Report mode: show everything the scan found, then fail (exit 2) with the error line.
        report = getattr(exc, "report", None)
        if report is not None:
            if args.json:
                print(json.dumps({"safety": report.to_dict()}, indent=2))
            else:
                print_rich(report)
        raise
    summary = model.summary()
    report = safety.scan(model.graph_def, allowed=safety.allowing_names(args.allow_unsafe_ops))
    export = model.metadata.get("exported_by_tfcpu")
    runtime = _runtime_line(model)
    if args.json:
        extra = {"export": export.to_dict() if export is not None else None, "runtime": runtime}
        print(json.dumps({**summary.to_dict(), "safety": report.to_dict(), **extra}, indent=2))
    else:
        print_rich(summary, report)
        if export is not None:
            passes = export.get("optimized_with") or ()
            names = list(export.get("signatures") or ()) or [export.get("signature", {}).get("name", "?")]
            print(
                f"exported by tfcpu {export.get('tfcpu', '?')}: precision {export.get('precision', 'fp32')}, "
                f"{len(passes)} optimisation passes, "
                + ("signature " if len(names) == 1 else "signatures ")
                + ", ".join(repr(n) for n in names)
                + (f" (this one: {model.metadata.get('signature')!r})" if len(names) > 1 else "")
            )
        print(f"runtime: {runtime}")
    return 0


def _runtime_line(model: object) -> str:
    """What the model needs from the process that runs it (oneDNN for INT8/BF16 graphs)."""
    from tfcpu.formats.savedmodel import ONEDNN_NOTE

    if getattr(model, "needs_onednn", False):
        return "needs oneDNN: " + ONEDNN_NOTE
    return "runs on stock TensorFlow as it is (no oneDNN-only kernels)"
