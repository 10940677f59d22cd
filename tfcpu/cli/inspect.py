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
    from tfcpu.graph.load import load

    model = load(args.model, inputs=args.inputs, outputs=args.outputs, signature=args.signature)
    summary = model.summary()
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print_rich(summary)
    return 0
