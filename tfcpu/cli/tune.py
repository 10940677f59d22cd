"""``tfcpu tune``: sweep cores per instance and batch size, pick the best layout, plot it."""

from __future__ import annotations

import argparse
import json

from tfcpu._render import print_rich
from tfcpu.cli._common import add_allow_unsafe_arg, load_model, progress_bar
from tfcpu.cli.bench import add_timing_args, options_from_args
from tfcpu.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "tune",
        help="measure instance layouts and batch sizes; pick the best (the paper's Figure 9)",
    )
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--inputs", nargs="+")
    p.add_argument("--outputs", nargs="+")
    add_allow_unsafe_arg(p)
    add_timing_args(p, steps=False, many_batch_sizes=True, warmup=3)
    p.add_argument("--cores-per-instance", type=int, nargs="+", help="values to try (default 1, 2, 4, .., all)")
    p.add_argument("--onednn-sweep", action="store_true", help="also try oneDNN on and off")
    p.add_argument("--duration", type=float, default=10.0, help="timed seconds per layout")
    p.add_argument("--latency-budget", type=float, metavar="MS", help="best = fastest with p99 under MS")
    p.add_argument("--plot", metavar="PNG", help="save throughput vs cores per instance")
    p.add_argument(
        "--sweep",
        action="append",
        metavar="KEY=V1,V2",
        help="also sweep a runtime setting: allocator=none,tcmalloc,jemalloc or frozen_weights=0,1 (repeatable)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tfcpu._io import check_writable
    from tfcpu.runtime.tune import tune

    options = options_from_args(args)  # refused before the model loads
    if args.plot:
        check_writable(args.plot)  # before the sweep: an unwritable --plot is a user error (exit 2)
    if args.sweep:
        return _run_sweep(args, options)
    model = load_model(args)
    with progress_bar("sweep", enabled=not args.json) as update:
        result = tune(
            model,
            cores_per_instance=args.cores_per_instance,
            batch_sizes=args.batch_size,
            onednn=(True, False) if args.onednn_sweep else (None,),
            latency_budget_ms=args.latency_budget,
            progress=update,
            options=options,
        )
    if args.plot:
        result.plot(args.plot)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print_rich(result)
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0 if result.best is not None else 1


def _run_sweep(args: argparse.Namespace, options: object) -> int:
    """``--sweep KEY=V1,V2``: the layout sweep once per runtime variant (tfcpu.runtime.sweep)."""
    from tfcpu.runtime.sweep import parse_sweep, sweep_runtime

    if args.plot:
        raise ConfigError("--plot is not supported with --sweep", hint="drop --plot, or sweep without --sweep")
    variants = parse_sweep(args.sweep)  # refused before the model loads
    model = load_model(args)
    with progress_bar("sweep", enabled=not args.json) as update:
        result = sweep_runtime(
            model,
            variants,
            cores_per_instance=args.cores_per_instance,
            batch_sizes=args.batch_size,
            onednn=(True, False) if args.onednn_sweep else (None,),
            latency_budget_ms=args.latency_budget,
            progress=update,
            options=options,
        )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print_rich(result)
    return 0 if result.best is not None else 1
