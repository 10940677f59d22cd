"""``tfcpu quantize MODEL -o OUT``: INT8 (Intel Neural Compressor) or BF16, written as a frozen graph.

The graph is optimised with ``GraphOptimizer.default()`` first (``--no-optimize`` skips it).
INT8 graphs run on oneDNN kernels: on CPUs where stock TensorFlow leaves oneDNN off (no
VNNI/BF16/AMX) this command turns oneDNN on before TensorFlow starts (the precision policy,
`tfcpu.session.precision`, decides), and whoever runs the written graph must do the same.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tfcpu.cli._common import (
    add_check_inputs,
    add_model_args,
    add_output_args,
    check_inputs_path,
    check_output,
    run_signatures,
)
from tfcpu.errors import ConfigError
from tfcpu.quantize.targets import TARGETS

_SMOOTH_QUANT_HELP = (
    "SmoothQuant before INT8 with this alpha in [0, 1] (moves activation outliers into the weights; "
    "MatMul-heavy models such as transformers; 0.5 is a common start)"
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "quantize",
        help="INT8 (Intel Neural Compressor) or BF16 post-training quantisation; write a frozen .pb/.pbtxt",
        description="Optimise, calibrate and quantise a model; report what became INT8 and how outputs agree.",
    )
    add_model_args(p)
    add_output_args(p)
    p.add_argument(
        "--calibration",
        default="synthetic",
        metavar="SRC",
        help="'synthetic' (default; speed tests only), FILE.npy (samples along axis 0) or a DIR of .npy batches; "
        "several inputs: FILE.npz keyed by input name (numpy.savez) or a DIR of .npz batches",
    )
    p.add_argument("--batches", type=int, default=10, metavar="N", help="calibration batches (default 10)")
    p.add_argument("--batch-size", type=int, metavar="B", help="how a .npy array is cut (default 32; synthetic 8)")
    p.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor instead of per channel")
    p.add_argument("--algorithm", choices=("minmax", "kl"), default="minmax", help="activation calibration")
    p.add_argument("--smooth-quant", type=float, metavar="ALPHA", help=_SMOOTH_QUANT_HELP)
    p.add_argument("--bf16", action="store_true", help="BF16 instead of INT8 (refused without AVX512_BF16/AMX)")
    p.add_argument(
        "--remainder",
        choices=("fp32", "bf16"),
        default="fp32",
        help="INT8: what INC/NNCF leave in float (attention products, Softmax) runs in fp32 (default) or bf16 "
        "(refused without AVX512_BF16/AMX)",
    )
    p.add_argument(
        "--backend",
        choices=tuple(TARGETS),
        help="; ".join(f"{t.name}: {t.description}" for t in TARGETS.values())
        + ". Default: the one that writes OUT's format (OpenVINO for .xml), else tensorflow",
    )
    p.add_argument("--no-optimize", action="store_true", help="quantise the graph as loaded (no GraphOptimizer)")
    add_check_inputs(p)
    p.add_argument("--overwrite", action="store_true", help="allow OUT to be the input file")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def load_calibration(spec: str) -> Any:
    """``synthetic``, a ``.npy`` file, or a directory of ``.npy`` batches (sorted by name).

    Checks the path now (a missing file is refused before TensorFlow loads) and returns it: the
    files are read by ``Quantizer.run`` with the same loader as ``Quantizer().calibrate(path)``
    (`tfcpu.quantize.calibration.load_files()`).

    Args:
        spec: the ``--calibration`` value.
    """
    from tfcpu.quantize.calibration import SYNTHETIC, resolve_path

    if spec == SYNTHETIC:
        return spec
    return str(resolve_path(spec))


def _enable_onednn_if_needed() -> None:
    """INT8/BF16 graphs need oneDNN: the precision policy sets it before TensorFlow starts, if it can.

    Where TensorFlow already runs without it (``main()`` called in a process that imported it), the
    graph is still written and the result says the agreement check was skipped.
    """
    from tfcpu.session.precision import decide_onednn, ensure_in_process

    ensure_in_process(decide_onednn(needs_onednn=True))


def run(args: argparse.Namespace) -> int:
    from tfcpu import formats
    from tfcpu.quantize.targets import default_target, get_target

    source = formats.for_path(Path(args.model))
    output = formats.for_path(Path(args.output)) if args.output else None
    backend = args.backend or default_target(output, source)  # an .xml output or input: OpenVINO
    target, precision = get_target(backend, where="--backend"), "bf16" if args.bf16 else "int8"
    refusal = None if source is None else target.refusal(source, precision, where=args.model)
    if refusal is not None:  # before TensorFlow or the model loads
        raise refusal
    outputs = target.output_formats()
    allowed = tuple(s for f in outputs for s in f.suffixes)
    out = check_output(args, allowed, why=f"for --backend {backend}", directories=any(f.directory for f in outputs))
    from tfcpu.quantize import Quantizer

    plan = Quantizer()
    if args.bf16 and args.smooth_quant is not None:
        raise ConfigError("--smooth-quant is an INT8 option", where="--bf16 --smooth-quant", hint="drop one of them")
    if args.bf16 and args.remainder != "fp32":
        raise ConfigError("--remainder is an INT8 option", where="--bf16 --remainder", hint="drop one of them")
    if args.bf16:
        plan = plan.bf16()
    else:
        plan = plan.int8(per_channel=not args.per_tensor, algorithm=args.algorithm)
        if args.smooth_quant is not None:
            plan = plan.smooth_quant(args.smooth_quant)
        plan = plan.remainder(args.remainder)
        plan = plan.calibrate(load_calibration(args.calibration), batches=args.batches, batch_size=args.batch_size)
    plan = plan.optimize(not args.no_optimize).backend(backend)

    if target.runs_onednn_graph:
        _enable_onednn_if_needed()
    check_inputs = check_inputs_path(args)  # a missing file is refused before the model loads
    results, out = run_signatures(args, out, lambda model: plan.run(model, check_inputs=check_inputs))
    if not args.json:
        states = [(k, r.precision if r.quantized else "unchanged FP32") for k, r in results.items()]
        print(f"wrote {out} (" + ", ".join(f"{(k + ': ') if k else ''}{state}" for k, state in states) + ")")
        if any(r.quantized and r.model.needs_onednn for r in results.values()):
            print(
                "it needs oneDNN: `tfcpu bench` and multi-instance runs turn it on; in your own scripts call "
                "tfcpu.SessionConfig.for_topology().with_onednn(True).apply() before importing TensorFlow "
                "(CPUs without VNNI/AMX leave it off)"
            )
    return 0
