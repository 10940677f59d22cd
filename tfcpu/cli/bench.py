"""``tfcpu bench``: benchmark a model in one tuned process or as many pinned instances."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

from tfcpu._render import print_rich
from tfcpu.cli._common import add_layout_args, parse_shapes, plan_from_args, progress_bar
from tfcpu.cli.inspect import add_allow_unsafe_arg
from tfcpu.errors import ConfigError

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bench",
        help="measure throughput and latency (one process or many pinned instances)",
        description="Benchmark a model with tuned threads, Appendix B style: synthetic data prepared "
        "outside the timed region, throughput = items / wall time, per-batch latency percentiles.",
    )
    p.add_argument("model", metavar="MODEL", help=".pb/.pbtxt/SavedModel/.keras path or a Keras application name")
    p.add_argument("--inputs", nargs="+", help="input tensor names (default: the placeholders)")
    p.add_argument("--outputs", nargs="+", help="output tensor names (default: the graph's sinks)")
    add_allow_unsafe_arg(p)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--warmup", type=int, default=5, help="untimed batches after the first run")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="timed batches (default 50)")
    length.add_argument("--duration", type=float, help="timed seconds instead of a step count")
    p.add_argument("--shape", action="append", metavar="NAME:D,D,..", help="shape of an input with unknown dims")
    onednn = p.add_mutually_exclusive_group()
    onednn.add_argument("--onednn", dest="onednn", action="store_true", default=None, help="TF_ENABLE_ONEDNN_OPTS=1")
    onednn.add_argument("--no-onednn", dest="onednn", action="store_false", help="TF_ENABLE_ONEDNN_OPTS=0")
    add_layout_args(p, auto=True)
    p.add_argument("--itex", action="store_true", help="configure Intel Extension for TensorFlow (tfcpu[itex])")
    p.add_argument("--amp", choices=("bf16",), help="with --itex: ITEX's auto mixed precision")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tfcpu.graph.load import load

    if args.batch_size < 1:
        raise ConfigError("--batch-size must be >= 1")
    shapes = parse_shapes(args.shape)
    env = {} if args.onednn is None else {"TF_ENABLE_ONEDNN_OPTS": "1" if args.onednn else "0"}
    itex = _itex_settings(args)
    if itex is not None:
        env.update({**itex.env(), "TF_ENABLE_ONEDNN_OPTS": "1"})
    single = args.instances is None and args.cores_per_instance is None and not args.auto
    if single:
        # One process: the environment must be in place before TensorFlow starts (load does).
        from tfcpu.session.config import SessionConfig

        config = SessionConfig.for_topology()
        if args.onednn is not None:
            config = config.with_onednn(args.onednn)
        elif "TF_ENABLE_ONEDNN_OPTS" not in os.environ and _looks_quantised(args.model):
            config = config.with_onednn(True)  # TensorFlow reads it at import: decide before load
            log.info("%s holds quantised ops: oneDNN on (TF_ENABLE_ONEDNN_OPTS=1)", args.model)
        if itex is not None:
            config = config.with_itex(amp=itex.amp)
        config.apply()
    model = load(args.model, inputs=args.inputs, outputs=args.outputs, allow_unsafe_ops=args.allow_unsafe_ops)
    result: Any
    if single:
        from tfcpu.runtime.runner import Runner

        with progress_bar("benchmark", enabled=not args.json) as update, Runner(model, config) as runner:
            result = runner.benchmark(
                batch_size=args.batch_size,
                warmup=args.warmup,
                steps=args.steps,
                duration=args.duration,
                shapes=shapes,
                progress=lambda done, total: update(done, total),
            )
        data = result.to_dict()
    elif args.auto:
        from tfcpu.runtime.tune import tune

        with progress_bar("sweep", enabled=not args.json) as update:
            sweep = tune(
                model,
                batch_sizes=(args.batch_size,),
                steps=args.steps,
                duration=args.duration if args.steps is None else None,
                warmup=args.warmup,
                progress=update,
            )
        if sweep.best is None:
            raise ConfigError("no layout completed", hint="run with --debug to see why instances failed")
        if not args.json:
            print_rich(sweep)
        result = _multi(args, model, shapes, env, cores_per_instance=sweep.best.cores_per_instance)
        data = result.without_outputs().to_dict()
        data["sweep"] = sweep.to_dict()
    else:
        result = _multi(args, model, shapes, env)
        data = result.without_outputs().to_dict()
    if args.json:
        data.setdefault("latency_ms", _latency(result))
        data["itex"] = None if itex is None else itex.to_dict()
        print(json.dumps(data, indent=2, default=str))
    else:
        print_rich(result)
    if getattr(result, "partial", False):
        return 1
    return 0


def _multi(
    args: argparse.Namespace,
    model: Any,
    shapes: dict[str, tuple[int, ...]],
    env: dict[str, str],
    cores_per_instance: int | None = None,
) -> Any:
    from tfcpu.runtime.multi import run_instances

    if cores_per_instance is not None:
        args.instances, args.cores_per_instance = None, cores_per_instance
    plan = plan_from_args(args)
    with progress_bar("instances", enabled=not args.json) as update:
        return run_instances(
            model,
            plan,
            batch_size=args.batch_size,
            warmup=args.warmup,
            steps=args.steps,
            duration=args.duration,
            shapes=shapes,
            env={**env, **_passthrough()},
            progress=lambda phase, done, total: update(done, total, phase),
        )


def _itex_settings(args: argparse.Namespace) -> Any:
    """ITEX settings from --itex/--amp, refused early when ITEX is missing (before loading the model)."""
    if args.amp is not None and not args.itex:
        raise ConfigError("--amp needs --itex", hint=f"run: tfcpu bench {args.model} --itex --amp {args.amp}")
    if not args.itex:
        return None
    from tfcpu.session.config import ItexSettings, itex_installed

    if args.onednn is False:
        raise ConfigError("--itex needs oneDNN", why="ITEX requires TF_ENABLE_ONEDNN_OPTS=1", hint="drop --no-onednn")
    if not itex_installed():
        from tfcpu.errors import MissingDependencyError

        raise MissingDependencyError(
            "intel-extension-for-tensorflow", extra="itex", purpose="tfcpu bench --itex runs the model under ITEX"
        )
    settings = ItexSettings(amp=args.amp)
    if settings.amp == "bf16":
        from tfcpu.session.config import _check_itex_bf16

        _check_itex_bf16()
    return settings


def _passthrough() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k == "TF_ENABLE_ONEDNN_OPTS"}


def _latency(result: Any) -> dict[str, float]:
    """Worst per-instance percentile for a multi-instance result (per-batch, ms)."""
    benches = [i.benchmark for i in getattr(result, "instances", ()) if i.benchmark]
    if not benches:
        return {}
    keys = ("mean", "min", "p50", "p90", "p99", "max")
    return {k: max(getattr(b.latency_ms, k) for b in benches) for k in keys}


def _looks_quantised(source: str) -> bool:
    """A cheap look at a .pb / SavedModel's bytes, before TensorFlow is imported: quantised kernels
    (``...Quantized...``) need oneDNN. A false positive only turns oneDNN on, which every x86 CPU runs."""
    path = Path(source)
    if path.is_dir():
        path = path / "saved_model.pb"
    if path.suffix != ".pb" or not path.is_file():
        return False
    needle, tail = b"Quantized", b""
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 22):
                if needle in tail + chunk:
                    return True
                tail = chunk[-len(needle) :]
    except OSError:
        return False
    return False
