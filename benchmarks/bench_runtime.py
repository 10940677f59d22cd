"""Runtime settings the field uses on Xeon, INT8 ResNet-50 in pinned instances, measured in one run.

    python benchmarks/bench_runtime.py [--rounds 3] [--duration 15] [--batch-size 16] [--instances 2]

The model is ``tfcpu.load("keras:ResNet50")`` (random weights, batch norms and biases randomised),
quantised once with tfcpu's Quantizer (synthetic calibration). Each round then runs every path as
fresh pinned instance children (oneDNN on), in a rotated order so drift hits every path equally:

* default                - libc malloc, TF_ONEDNN_ASSUME_FROZEN_WEIGHTS unset;
* frozen weights         - TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1 (oneDNN caches reordered filters);
* tcmalloc / jemalloc    - the allocator preloaded (LD_PRELOAD) into the children;
* tcmalloc + frozen      - both.

A path whose allocator library is not on this OS fails with the package to install; the others
still run. Printed: CPU and ISA, medians of the rounds, min-max and spread, and each path / default
(marked when the ranges overlap). docs/performance.md keeps the lead's numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from _common import PathResult, fmt_compared, machine_record, measure_rounds, print_table, spread_lines, write_json

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# path -> (allocator, frozen weights)
PATHS: dict[str, tuple[str | None, bool]] = {
    "default": (None, False),
    "frozen weights": (None, True),
    "tcmalloc": ("tcmalloc", False),
    "jemalloc": ("jemalloc", False),
    "tcmalloc + frozen weights": ("tcmalloc", True),
}


def _settings(allocator: str | None, frozen: bool) -> Any:
    from tfcpu.runtime.multi import InstanceSettings
    from tfcpu.session.xeon import FROZEN_WEIGHTS

    env = {FROZEN_WEIGHTS: "1"} if frozen else {}
    return InstanceSettings(env=tuple(env.items()), onednn=True, allocator=allocator, strict=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ResNet50")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--calibration-batches", type=int, default=8)
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()

    import tfcpu
    from tfcpu.plan import InstancePlan
    from tfcpu.quantize import Quantizer
    from tfcpu.runtime.backends._base import BenchmarkOptions
    from tfcpu.runtime.multi import run_instances
    from tfcpu.session.xeon import find_allocator

    topo = tfcpu.Topology.detect()
    t0 = time.monotonic()
    model = tfcpu.load(f"keras:{args.model}")
    quantizer = Quantizer().int8().calibrate("synthetic", batches=args.calibration_batches, batch_size=args.batch_size)
    int8 = quantizer.run(model).model
    print(f"quantised {args.model} in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    plan = InstancePlan.for_topology(topo, instances=args.instances)
    options = BenchmarkOptions(batch_size=args.batch_size, warmup=3, duration=args.duration)
    paths = {name: PathResult(name, name) for name in PATHS}
    for name, (allocator, _frozen) in PATHS.items():
        if allocator is not None:
            paths[name].note = find_allocator(allocator) or "not found"

    def measure(name: str) -> float:
        res = run_instances(int8, plan, options, settings=_settings(*PATHS[name]))
        return float(res.throughput)

    measure_rounds(paths, measure, args.rounds)
    default = paths["default"]
    title = (
        f"{args.model} INT8, batch {args.batch_size}, {len(plan.instances)} pinned instances, "
        f"{args.rounds} rounds of {args.duration:g} s — {topo.summary()}"
    )
    print(f"\nCPU: {topo.summary()}\nISA: {topo.isa_summary()}")
    print_table(title, list(paths.values()), default.median, best_label="default", best_samples=default.samples)
    print("\n".join("  " + line for line in spread_lines({n: p.samples for n, p in paths.items()})))
    for name, res in paths.items():
        if name != "default" and res.samples and default.samples:
            print(f"  {name} / default = {fmt_compared(res.samples, default.samples)}")
    if args.json:
        write_json(
            args.json,
            {
                **machine_record(["tensorflow", "neural-compressor"]),
                "isa": topo.isa_summary(),
                "model": args.model,
                "batch_size": args.batch_size,
                "instances": len(plan.instances),
                "paths": [p.to_dict() for p in paths.values()],
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
