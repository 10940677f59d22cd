"""``tfcpu optimize MODEL -o OUT``: the white paper's graph_transforms step, in pure Python.

``--transforms`` takes a ``graph_transforms`` string verbatim, e.g. the paper's
``'strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) fold_constants(ignore_errors=true)
fold_old_batch_norms fold_batch_norms'``; without it ``GraphOptimizer.default()`` runs.
"""

from __future__ import annotations

import argparse
import json

from tfcpu.cli._common import (
    add_check_inputs,
    add_model_args,
    add_output_args,
    check_inputs_path,
    check_output,
    run_signatures,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "optimize",
        help="fold batch norms and constants, strip Identity nodes; write a frozen .pb/.pbtxt",
        description="Optimise a model's frozen graph (GraphOptimizer) and check it numerically.",
    )
    add_model_args(p)
    add_output_args(p)
    p.add_argument("--transforms", help="a graph_transforms string (default: GraphOptimizer.default())")
    p.add_argument("--no-check", action="store_true", help="skip the numerical check against the original")
    add_check_inputs(p)
    p.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance of the check (default 1e-4)")
    p.add_argument("--atol", type=float, default=1e-5, help="absolute tolerance of the check (default 1e-5)")
    p.add_argument("--overwrite", action="store_true", help="allow OUT to be the input file")
    p.add_argument("--explain", action="store_true", help="print the plan and exit")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tfcpu.graph.optimizer import GraphOptimizer

    optimizer = GraphOptimizer.from_transforms(args.transforms) if args.transforms else GraphOptimizer.default()
    if args.explain:
        print(json.dumps(optimizer.to_dict(), indent=2) if args.json else optimizer.explain())
        return 0
    from tfcpu._numbers import check_number

    for flag, value in (("--rtol", args.rtol), ("--atol", args.atol)):  # before the model loads
        check_number(value, flag, where="tfcpu optimize", minimum=0, hint="tolerances must be finite and non-negative")
    out = check_output(args, (".pb", ".pbtxt"))
    check_inputs = check_inputs_path(args)  # a missing file is refused before the model loads
    results, out = run_signatures(
        args,
        out,
        lambda model: optimizer.run(
            model, check=not args.no_check, rtol=args.rtol, atol=args.atol, check_inputs=check_inputs
        ),
    )
    if not args.json:
        sizes = ", ".join(f"{(k + ': ') if k else ''}{r.nodes_before} -> {r.nodes_after}" for k, r in results.items())
        print(f"wrote {out} ({sizes} nodes)")
    return 0
