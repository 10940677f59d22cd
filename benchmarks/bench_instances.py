"""One instance with all cores vs N pinned instances, INT8 ResNet-50, measured in one run.

    python benchmarks/bench_instances.py [--rounds 3] [--duration 15] [--batch-size 16]

The model is optimised and quantised once; then each round runs the 1-instance layout and
the N-instance layout back to back (alternating which goes first), each as fresh pinned child
processes with ``TF_ENABLE_ONEDNN_OPTS=1``. Printed: the median common-window throughput of
each layout over the rounds, min–max, and the ratio N / 1. Issue 6's bar: N=2 ≥ 1.05× on a
2-core machine.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

from _common import fmt_compared, model_parser, spread_lines

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> int:
    parser = model_parser(__doc__)
    parser.add_argument("--instances", type=int, default=2)
    args = parser.parse_args()

    import tfcpu
    from tfcpu.plan import InstancePlan
    from tfcpu.quantize import Quantizer
    from tfcpu.runtime.multi import run_instances

    topo = tfcpu.Topology.detect()
    t0 = time.monotonic()
    model = tfcpu.load(f"keras:{args.model}")
    int8 = Quantizer().int8().calibrate("synthetic", batches=8, batch_size=args.batch_size).run(model).model
    print(f"optimised + quantised {args.model} in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    layouts = {
        "1 instance": InstancePlan.for_topology(topo, instances=1),
        f"{args.instances} instances": InstancePlan.for_topology(topo, instances=args.instances),
    }
    env = {"TF_ENABLE_ONEDNN_OPTS": "1"}
    samples: dict[str, list[float]] = {name: [] for name in layouts}
    for r in range(args.rounds):
        order = list(layouts) if r % 2 == 0 else list(reversed(layouts))
        for name in order:
            res = run_instances(
                int8, layouts[name], batch_size=args.batch_size, warmup=3, duration=args.duration, env=env
            )
            if res.partial:
                print(f"round {r + 1} {name}: partial ({res.failed[0].error})", file=sys.stderr)
                continue
            samples[name].append(res.throughput)
            print(f"round {r + 1} {name}: {res.throughput:.1f} img/s", file=sys.stderr)
    medians = {name: statistics.median(v) for name, v in samples.items() if v}
    one, many = medians.get("1 instance"), medians.get(f"{args.instances} instances")
    print(
        f"\n{args.model} INT8, batch {args.batch_size}, {args.rounds} rounds of {args.duration:g} s — {topo.summary()}"
    )
    print("\n".join("  " + line for line in spread_lines(samples)))
    ratio = many / one if one and many else float("nan")
    compared = fmt_compared(samples[f"{args.instances} instances"], samples["1 instance"])
    print(f"  ratio {args.instances} instances / 1 instance = {compared}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": topo.summary(), "samples": samples, "medians": medians, "ratio": ratio}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
