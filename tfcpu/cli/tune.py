"""``tfcpu tune``: sweep cores per instance and batch size, pick the best layout, plot it."""

from __future__ import annotations

import argparse
import json

from tfcpu._render import print_rich
from tfcpu.cli._common import add_allow_unsafe_arg, load_model, progress_bar
from tfcpu.cli.bench import add_timing_args, check_model_options, options_from_args
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
        "--backend",
        metavar="NAMES",
        help="backends to try, comma-separated (e.g. tensorflow,openvino; default tensorflow, openvino for an .xml)",
    )
    p.add_argument(
        "--precision",
        metavar="NAMES",
        default="fp32",
        help="precisions to try, comma-separated: fp32 (the model as given), bf16 (AVX512_BF16/AMX_BF16 only), "
        "int8 (INC on TensorFlow, NNCF on OpenVINO)",
    )
    p.add_argument(
        "--calibration",
        default="synthetic",
        metavar="SRC",
        help="INT8 calibration: 'synthetic' (default; speed tests, cosine rule), FILE.npy or a DIR of .npy batches",
    )
    p.add_argument("--calibration-batches", type=int, default=10, metavar="N", help="calibration batches (10)")
    p.add_argument("--min-top1", type=float, default=0.99, help="accuracy rule on real data: top-1 agreement (0.99)")
    p.add_argument("--min-cosine", type=float, default=0.99, help="accuracy rule on synthetic data: cosine (0.99)")
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
    from tfcpu.cli.quantize import load_calibration
    from tfcpu.runtime.backends._base import check_backend
    from tfcpu.runtime.tune import AccuracyRule, tune

    options = options_from_args(args)  # refused before the model loads
    backends = _names(args.backend)
    for name in backends:  # an unknown name is refused before the model loads
        check_backend(name, where="--backend")
    calibration = load_calibration(args.calibration)
    rule = AccuracyRule(args.min_top1, args.min_cosine, synthetic=calibration == "synthetic")
    if args.plot:
        check_writable(args.plot)  # before the sweep: an unwritable --plot is a user error (exit 2)
    if args.sweep:
        return _run_sweep(args, options)
    model = load_model(args)
    check_model_options(model, options, args.batch_size)
    with progress_bar("sweep", enabled=not args.json) as update:
        result = tune(
            model,
            cores_per_instance=args.cores_per_instance,
            batch_sizes=args.batch_size,
            onednn=(True, False) if args.onednn_sweep else (None,),
            latency_budget_ms=args.latency_budget,
            progress=update,
            options=options,
            backends=backends or ((model.preferred_backend,) if model.preferred_backend != "tensorflow" else None),
            precisions=_names(args.precision) or ("fp32",),
            calibration=calibration,
            calibration_batches=args.calibration_batches,
            accuracy=rule,
        )
    if args.plot:
        result.plot(args.plot)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print_rich(result)
        for note in result.notes:
            print(f"note: {note}")
        if result.best is not None and result.accuracy_rule:
            best = result.best
            print(
                f"best: {best.backend} {best.precision}, {best.cores_per_instance} cores/instance, "
                f"batch {best.batch_size}: {best.throughput:.2f} items/s"
            )
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0 if result.best is not None else 1


def _names(value: str | None) -> tuple[str, ...]:
    """``"a, b"`` -> ``("a", "b")`` (checked by ``tune``)."""
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def _run_sweep(args: argparse.Namespace, options: object) -> int:
    """``--sweep KEY=V1,V2``: the layout sweep once per runtime variant (tfcpu.runtime.sweep)."""
    from tfcpu.runtime.sweep import parse_sweep, sweep_runtime

    if args.plot:
        raise ConfigError("--plot is not supported with --sweep", hint="drop --plot, or sweep without --sweep")
    variants = parse_sweep(args.sweep)  # refused before the model loads
    model = load_model(args)
    check_model_options(model, options, args.batch_size)
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
