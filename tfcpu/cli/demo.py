"""``tfcpu demo``: every step of the white paper measured on this machine, in one run."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tfcpu._render import print_rich
from tfcpu.cli._common import progress_bar


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="measure each optimisation step on ResNet-50, the built-in encoder or your model, and chart it",
        description="Keras predict → frozen graph with tuned threads → optimised graph → multi-instance "
        "→ INT8 → INT8 multi-instance → BF16 → OpenVINO FP32/BF16/INT8 (when openvino is installed), "
        "each measured in the same run on synthetic data. Writes demo.json "
        "and demo.png (when matplotlib is installed) to --output.",
    )
    p.add_argument(
        "--model",
        default="ResNet50",
        help="a tf.keras.applications name, 'encoder' (tfcpu's built-in transformer: 4 layers of width 256, "
        "token ids + mask of 128 tokens) or a model path",
    )
    p.add_argument("--output", default="tfcpu-demo", metavar="DIR", help="where demo.json and demo.png go")
    p.add_argument("--batch-size", type=int, help="the batch size of every row (default: 16; 8 for the encoder)")
    p.add_argument("--duration", type=float, default=15.0, help="timed seconds per row")
    p.add_argument("--instances", type=int, help="instances for the multi-instance rows (default: auto)")
    p.add_argument(
        "--no-dispatch",
        dest="dispatch",
        action="store_false",
        help="skip the dispatch probe behind the kernels column (one short child per graph, untimed)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tfcpu.demo import run_demo

    with progress_bar("demo", enabled=not args.json) as update:
        result = run_demo(
            args.model,
            output=args.output,
            batch_size=args.batch_size,
            duration=args.duration,
            instances=args.instances,
            progress=update,
            dispatch=args.dispatch,
        )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print_rich(result)
    for note in result.notes:
        print(f"note: {note}")
    best = result.best
    if best is not None:
        print(f"best: {best.name}, {best.throughput:.1f} {result.unit} = {best.speedup:.2f}x the first row")
    print(last_line(args.output, result))
    return 0


def last_line(output: str, result: Any) -> str:
    """The demo's last line: the files it wrote, and the chart it could not draw."""
    wrote = " and ".join(f"{output}/{name}" for name in result.files) or "nothing"
    line = f"wrote {wrote} ({result.seconds / 60:.1f} min)"
    if "demo.png" not in result.files:
        reason = next((n for n in result.notes if n.startswith("no chart:")), "no chart")
        line += f"; {reason}"
    return line
