"""``tfcpu optimize MODEL -o OUT``: the white paper's graph_transforms step, in pure Python.

``--transforms`` takes a ``graph_transforms`` string verbatim, e.g. the paper's
``'strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) fold_constants(ignore_errors=true)
fold_old_batch_norms fold_batch_norms'``; without it ``GraphOptimizer.default()`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from tfcpu._io import check_writable
from tfcpu._render import print_rich
from tfcpu.cli.inspect import add_model_args
from tfcpu.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "optimize",
        help="fold batch norms and constants, strip Identity nodes; write a frozen .pb/.pbtxt",
        description="Optimise a model's frozen graph (GraphOptimizer) and check it numerically.",
    )
    add_model_args(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write the graph (.pb or .pbtxt)")
    p.add_argument("--transforms", help="a graph_transforms string (default: GraphOptimizer.default())")
    p.add_argument("--no-check", action="store_true", help="skip the numerical check against the original")
    p.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance of the check (default 1e-4)")
    p.add_argument("--atol", type=float, default=1e-5, help="absolute tolerance of the check (default 1e-5)")
    p.add_argument("--overwrite", action="store_true", help="allow OUT to be the input file")
    p.add_argument("--explain", action="store_true", help="print the plan and exit")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tfcpu.graph.load import load
    from tfcpu.graph.optimizer import GraphOptimizer

    optimizer = GraphOptimizer.from_transforms(args.transforms) if args.transforms else GraphOptimizer.default()
    if args.explain:
        print(json.dumps(optimizer.to_dict(), indent=2) if args.json else optimizer.explain())
        return 0
    out = Path(args.output)
    if out.suffix.lower() not in (".pb", ".pbtxt"):
        raise ConfigError("-o must end in .pb or .pbtxt", where=str(out))
    source = Path(args.model)
    if source.exists() and out.exists() and os.path.samefile(source, out) and not args.overwrite:
        raise ConfigError(
            "-o is the input file", where=str(out), hint="write elsewhere, or pass --overwrite to replace it"
        )
    check_writable(out)  # before the work: a read-only directory is a user error, not an 8 s failure
    model = load(
        args.model,
        inputs=args.inputs,
        outputs=args.outputs,
        signature=args.signature,
        allow_unsafe_ops=args.allow_unsafe_ops,
    )
    result = optimizer.run(model, check=not args.no_check, rtol=args.rtol, atol=args.atol)
    result.model.save(out)
    if args.json:
        data = result.to_dict()
        data["output"] = str(out)
        print(json.dumps(data, indent=2))
    else:
        print_rich(result)
        print(f"wrote {out} ({result.nodes_before} -> {result.nodes_after} nodes)")
    return 0
