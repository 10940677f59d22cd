"""``tfcpu inspect MODEL``: what TF's ``summarize_graph`` prints, for any model tfcpu can load."""

from __future__ import annotations

import argparse
import json

from tfcpu._render import print_rich


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model",
        metavar="MODEL",
        help="a .pb/.pbtxt/.keras/.h5 file, a SavedModel directory, or a Keras application "
        "(ResNet50, keras:MobileNetV2)",
    )
    p.add_argument("--inputs", nargs="+", help="input tensor names (default: the Placeholders)")
    p.add_argument("--outputs", nargs="+", help="output tensor names (default: the sink nodes)")
    p.add_argument("--signature", help="SavedModel signature key (default: serving_default)")
    add_allow_unsafe_arg(p)


def add_allow_unsafe_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-unsafe-ops",
        metavar="OP[,OP...]",
        help="let these op types through the safety scan (ops that touch files, the network or Python; "
        "see docs/security.md), e.g. ReadFile,PyFunc",
    )


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
    from tfcpu.graph.load import load

    try:
        model = load(
            args.model,
            inputs=args.inputs,
            outputs=args.outputs,
            signature=args.signature,
            allow_unsafe_ops=args.allow_unsafe_ops,
        )
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
    if args.json:
        print(json.dumps({**summary.to_dict(), "safety": report.to_dict()}, indent=2))
    else:
        print_rich(summary, report)
    return 0
