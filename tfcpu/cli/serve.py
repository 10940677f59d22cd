"""``tfcpu serve MODEL``: online inference behind KServe v2 and TF Serving REST (`tfcpu.serve`).

With ``--instances N`` or ``--cores-per-instance K`` the batches run on a pinned `tfcpu.Pool` (the
paper's Section 7 for online traffic); without, on one in-process Runner with the topology's threads.
``--precision int8|bf16`` quantises first (synthetic calibration unless ``--calibration`` names data);
serving a model quantised elsewhere needs no flag. SIGTERM drains: the listening socket closes, what
is in flight is answered, the workers stop.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tfcpu.cli._common import add_model_args, load_model
from tfcpu.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model over HTTP (KServe v2 and TF Serving REST) with dynamic batching and pinned instances",
        description="Serve a model over HTTP: KServe v2 / Open Inference Protocol and TF Serving REST, "
        "dynamic batching, Prometheus /metrics, pinned worker instances (tfcpu[serve]).",
    )
    add_model_args(p)
    p.add_argument("--name", help="the model's name in the URLs (default: from MODEL)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0: any free port)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--instances", type=int, metavar="N", help="pinned worker instances (a tfcpu.Pool)")
    group.add_argument("--cores-per-instance", type=int, metavar="K", help="physical cores per instance")
    p.add_argument("--no-smt", action="store_true", help="one logical CPU per core")
    p.add_argument("--precision", choices=("fp32", "int8", "bf16"), default="fp32",
                   help="quantise before serving (int8: INC with --calibration or synthetic data)")  # fmt: skip
    p.add_argument("--calibration", default="synthetic", metavar="SRC",
                   help="calibration data for --precision int8 (as `tfcpu quantize --calibration`)")  # fmt: skip
    p.add_argument("--backend", help="runner backend (default: the model format's)")
    p.add_argument("--max-batch-size", type=int, default=32, metavar="B", help="rows per batch at most")
    p.add_argument("--max-delay-ms", type=float, default=5.0, metavar="MS",
                   help="how long the first request of a batch waits for others (default 5)")  # fmt: skip
    p.add_argument("--max-queue", type=int, default=256, metavar="N", help="queued requests before 503")
    p.add_argument("--max-body-bytes", type=int, default=64 * 1024 * 1024, metavar="BYTES",
                   help="the largest request body (413 beyond; default 64 MiB)")  # fmt: skip
    p.set_defaults(func=run)


def _default_name(model_arg: str) -> str:
    import re
    from pathlib import Path

    base = model_arg.split(":", 1)[1] if model_arg.startswith("keras:") else Path(model_arg.rstrip("/")).stem
    return re.sub(r"[^A-Za-z0-9_.-]", "_", base.lower()) or "model"


def _prepare(args: argparse.Namespace, model: Any) -> Any:
    """The model to serve: optimised and quantised when --precision asks."""
    if args.precision == "fp32":
        return model
    from tfcpu.quantize import Quantizer

    plan = Quantizer().bf16() if args.precision == "bf16" else Quantizer().int8()
    if args.precision == "int8":
        from tfcpu.cli.quantize import load_calibration

        plan = plan.calibrate(load_calibration(args.calibration))
    result = plan.run(model)
    if not result.quantized:
        raise ConfigError(f"--precision {args.precision} left the model in FP32",
                          hint="check `tfcpu quantize MODEL -o out` for the reason")  # fmt: skip
    return result.model


def run(args: argparse.Namespace) -> int:
    from tfcpu.serve import ServeOptions, _require, serve

    _require()
    options = ServeOptions(
        name=args.name or _default_name(args.model),
        host=args.host,
        port=args.port,
        max_batch_size=args.max_batch_size,
        max_delay_ms=args.max_delay_ms,
        max_queue=args.max_queue,
        max_body_bytes=args.max_body_bytes,
    )
    pooled = args.instances is not None or args.cores_per_instance is not None
    plan = None
    if pooled:
        from tfcpu.cli._common import plan_from_args

        plan = plan_from_args(args)
    if args.precision != "fp32" or not pooled:
        # INT8/BF16 graphs need oneDNN in the process that runs (or quantises) them: set it before TF starts
        from tfcpu.session.precision import decide_onednn, ensure_in_process

        ensure_in_process(decide_onednn(needs_onednn=args.precision != "fp32"))
    model = _prepare(args, load_model(args))
    executor: Any = None
    if pooled:
        from tfcpu.runtime.pool import Pool

        executor = Pool(model, plan, backend=args.backend)
    print(f"tfcpu serve: {options.name} on http://{options.host}:{options.port} "
          f"({'pool of ' + str(executor.workers) if pooled else 'one in-process runner'}; "
          f"KServe v2 /v2/models/{options.name}/infer, TF Serving /v1/models/{options.name}:predict)",
          file=sys.stderr, flush=True)  # fmt: skip
    try:
        serve(model, options, executor=executor, backend=args.backend) if not pooled else serve(
            model, options, executor=executor
        )
    finally:
        if executor is not None and not executor.closed:
            executor.close()
    return 0
