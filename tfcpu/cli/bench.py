"""``tfcpu bench``: benchmark a model in one tuned process or as many pinned instances."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from tfcpu._render import print_rich
from tfcpu.cli._common import (
    add_allow_unsafe_arg,
    add_layout_args,
    load_model,
    parse_shapes,
    plan_from_args,
    progress_bar,
)
from tfcpu.cli._runtime_args import add_runtime_args, runtime_env
from tfcpu.errors import ConfigError, PlanError

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
    add_timing_args(p)
    onednn = p.add_mutually_exclusive_group()
    onednn.add_argument("--onednn", dest="onednn", action="store_true", default=None, help="turn oneDNN on")
    onednn.add_argument("--no-onednn", dest="onednn", action="store_false", help="turn oneDNN off")
    add_layout_args(p, auto=True)
    p.add_argument(
        "--backend",
        default=None,
        help="the runtime that runs the model: tensorflow (default), openvino (default for an .xml IR)",
    )
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        help="with --backend openvino: its inference precision (f32 is forced unless bf16 is asked for)",
    )
    p.add_argument(
        "--backend-option",
        action="append",
        metavar="KEY=VALUE",
        help="a backend setting, repeatable (e.g. --backend-option hint=throughput); VALUE is JSON or text",
    )
    p.add_argument("--itex", action="store_true", help="configure Intel Extension for TensorFlow (tfcpu[itex])")
    p.add_argument("--amp", choices=("bf16",), help="with --itex: ITEX's auto mixed precision")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_runtime_args(p)
    from tfcpu.runtime.dispatch import add_cli_argument

    add_cli_argument(p)
    p.set_defaults(func=run)


def add_timing_args(
    p: argparse.ArgumentParser, *, steps: bool = True, many_batch_sizes: bool = False, warmup: int = 5
) -> None:
    """The timing flags every measuring command shares (they become one BenchmarkOptions).

    Args:
        p: the subcommand's parser.
        steps: add ``--steps``/``--duration`` (``tune`` has its own ``--duration``).
        many_batch_sizes: ``--batch-size`` takes one or more values (``tune`` sweeps them).
        warmup: the default of ``--warmup``.
    """
    if many_batch_sizes:
        p.add_argument("--batch-size", type=int, nargs="+", default=[32], help="one or more batch sizes")
    else:
        p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--warmup", type=int, default=warmup, help="untimed batches after the first run")
    if steps:
        length = p.add_mutually_exclusive_group()
        length.add_argument("--steps", type=int, help="timed batches (default 50)")
        length.add_argument("--duration", type=float, help="timed seconds instead of a step count")
    p.add_argument("--shape", action="append", metavar="NAME:D,D,..", help="shape of an input with unknown dims")


def options_from_args(args: argparse.Namespace) -> Any:
    """The one BenchmarkOptions of ``tfcpu bench`` / ``tune`` from their timing flags."""
    from tfcpu.runtime.backends._base import BenchmarkOptions

    batch_sizes = args.batch_size if isinstance(args.batch_size, list) else [args.batch_size]
    if any(b < 1 for b in batch_sizes):
        raise ConfigError("--batch-size must be >= 1", hint="e.g. --batch-size 32")
    shapes = parse_shapes(getattr(args, "shape", None))
    steps = getattr(args, "steps", None)
    return BenchmarkOptions(
        batch_size=batch_sizes[0],
        warmup=args.warmup,
        steps=steps,
        duration=args.duration if steps is None else None,
        shapes=tuple(shapes.items()),
    )


def check_model_options(model: Any, options: Any, batch_sizes: list[int] | None = None) -> None:
    """Before any child starts: every ``--shape`` names an input (did you mean), and each batch fits in memory."""
    from tfcpu.graph._inputs import check_inputs

    for size in batch_sizes or [options.batch_size]:
        check_inputs(model, size, options.shape_map())


def backend_options(values: list[str] | None) -> dict[str, Any]:
    """``["hint=throughput", "streams=2"]`` -> ``{"hint": "throughput", "streams": 2}`` (JSON values, else text)."""
    out: dict[str, Any] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"bad --backend-option {item!r}", hint="write KEY=VALUE, e.g. --backend-option streams=2")
        try:
            out[key.strip()] = json.loads(raw)
        except ValueError:
            out[key.strip()] = raw
    return out


def cli_plan(args: argparse.Namespace) -> Any:
    """The instance plan from the layout flags, refused with a command-line hint (before TensorFlow loads)."""
    try:
        return plan_from_args(args)
    except PlanError as exc:
        hint = (exc.hint or "").replace("cores_per_instance=", "--cores-per-instance ")
        raise PlanError(
            exc.what, where=exc.where, why=exc.why, hint=hint.replace("instances=", "--instances ")
        ) from None


def run(args: argparse.Namespace) -> int:
    from tfcpu.runtime.backends._base import check_backend

    options = options_from_args(args)
    if args.backend is not None:
        check_backend(args.backend, where="--backend")
    backend_opts = backend_options(args.backend_option)
    if args.precision is not None:
        from tfcpu import formats
        from tfcpu.runtime.backends._base import BACKENDS, DEFAULT_BACKEND

        fmt = formats.for_path(Path(args.model))
        chosen = args.backend or (fmt.backend if fmt is not None else DEFAULT_BACKEND)  # an .xml runs on OpenVINO
        if not BACKENDS[chosen].precision_option:
            takes = [name for name, entry in BACKENDS.items() if entry.precision_option]
            raise ConfigError(
                f"--precision needs a backend that sets its inference precision: --backend {' or '.join(takes)}",
                why=f"the {chosen} backend runs the precision the graph's ops have",
                hint="make a BF16 graph with `tfcpu quantize MODEL --bf16`, or add --backend " + takes[0],
            )
        backend_opts["precision"] = "f32" if args.precision == "fp32" else "bf16"
    itex = _itex_settings(args)
    single = args.instances is None and args.cores_per_instance is None and not args.auto
    runtime_env(args, children=not single)  # --allocator without instances is refused before the load
    plan = None if single or args.auto else cli_plan(args)  # a layout that cannot fit is refused now
    config = _prepare_single(args, itex) if single else None
    model = load_model(args)
    check_model_options(model, options)
    args.backend = args.backend or model.preferred_backend  # an OpenVINO IR (.xml) runs on OpenVINO
    settings = _settings(args, itex, backend_opts)
    result: Any
    if single:
        from tfcpu.runtime.runner import Runner

        with (
            progress_bar("benchmark", enabled=not args.json) as update,
            Runner(model, config, backend=args.backend, options=backend_opts) as runner,
        ):
            result = runner.benchmark(options, progress=lambda done, total: update(done, total))
        data = result.to_dict()
    elif args.auto:
        from tfcpu.runtime.tune import tune

        with progress_bar("sweep", enabled=not args.json) as update:
            sweep = tune(model, options=options, settings=settings, progress=update)
        if sweep.best is None:
            raise ConfigError("no layout completed", hint="run with --debug to see why instances failed")
        if not args.json:
            print_rich(sweep)
        args.instances, args.cores_per_instance = None, sweep.best.cores_per_instance
        result = _multi(args, model, cli_plan(args), options, settings)
        data = result.without_outputs().to_dict()
        data["sweep"] = sweep.to_dict()
    else:
        result = _multi(args, model, plan, options, settings)
        data = result.without_outputs().to_dict()
    from tfcpu.runtime.dispatch import cli_dispatch

    dispatch = cli_dispatch(args, model, data, shapes=options.shape_map())
    if args.json:
        data.setdefault("latency_ms", _latency(result))
        data["itex"] = None if itex is None else itex.to_dict()
        data["runtime_settings"] = _runtime_settings(settings)
        print(json.dumps(data, indent=2, default=str))
    else:
        print_rich(result)
        if dispatch is not None:
            print_rich(dispatch)
    if getattr(result, "suspect", False):
        print(f"tfcpu bench: warning: {result.contention.get('note')}", file=sys.stderr)
    if getattr(result, "partial", False):
        return 1
    return 0


def _prepare_single(args: argparse.Namespace, itex: Any) -> Any:
    """One process: the oneDNN decision and the thread variables must be in place before TensorFlow starts."""
    from tfcpu.session.config import SessionConfig
    from tfcpu.session.precision import decide_onednn, prepare_process

    decision = decide_onednn(needs_onednn=_looks_quantised(args.model), explicit=args.onednn, itex=itex is not None)
    prepare_process(decision, where="tfcpu bench")  # TensorFlow reads it at import: decide before load
    log.info("%s: %s", args.model, decision.reason)
    config = SessionConfig.for_topology().with_frozen_weights(True if args.frozen_weights else None)
    if itex is not None:
        config = config.with_itex(amp=itex.amp)
    config.apply()
    return config


def _settings(args: argparse.Namespace, itex: Any, backend_opts: dict[str, Any]) -> Any:
    from tfcpu.runtime.multi import InstanceSettings

    env, allocator = runtime_env(args, children=True)
    env.update(itex.env() if itex is not None else {})
    return InstanceSettings(
        backend=args.backend,
        backend_options=tuple(sorted(backend_opts.items())),
        env=tuple(sorted(env.items())),
        onednn=True if itex is not None else args.onednn,
        debug=bool(getattr(args, "debug", False)),
        allocator=allocator,
    )


def _runtime_settings(settings: Any) -> dict[str, Any]:
    """The allocator (and its library) and frozen-weights variable the children were started with."""
    from tfcpu.session.xeon import FROZEN_WEIGHTS, find_allocator

    allocator = settings.allocator
    return {
        "allocator": allocator,
        "allocator_library": None if allocator is None else find_allocator(allocator),
        FROZEN_WEIGHTS: dict(settings.env).get(FROZEN_WEIGHTS),
    }


def _multi(args: argparse.Namespace, model: Any, plan: Any, options: Any, settings: Any) -> Any:
    from tfcpu.runtime.multi import run_instances

    with progress_bar("instances", enabled=not args.json) as update:
        return run_instances(
            model, plan, options, settings=settings, progress=lambda phase, done, total: update(done, total, phase)
        )


def _itex_settings(args: argparse.Namespace) -> Any:
    """ITEX settings from --itex/--amp, refused early when ITEX is missing (before loading the model)."""
    if args.amp is not None and not args.itex:
        raise ConfigError("--amp needs --itex", hint=f"run: tfcpu bench {args.model} --itex --amp {args.amp}")
    if not args.itex:
        return None
    from tfcpu.session.config import ItexSettings, itex_installed

    if args.onednn is False:
        raise ConfigError("--itex needs oneDNN", why="ITEX requires oneDNN on", hint="drop --no-onednn")
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
