"""Soak test: thousands of batches through Runner and run_instances, with RSS at start and end.

    python benchmarks/soak.py [--batches 5000] [--rounds 5] [--bound-mib 64]

Phase 1 runs ``--batches`` single-batch ``Runner.run`` calls on a small dense model (after a
warm-up of 200 calls, so TensorFlow's one-time allocations are in the baseline) and reports the
parent's RSS growth (psutil). Phase 2 starts ``--rounds`` pinned multi-instance runs
(``run_instances``, one instance per usable core, ``--instance-steps`` batches each) and reports
the parent's RSS growth across the rounds (children start fresh each round, so a leak would be
in the parent: result files, pipes, bookkeeping). Exit status 1 when a growth exceeds
``--bound-mib`` (default 64 MiB, stated in docs/security.md).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _rss_mib() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def _model() -> object:
    import numpy as np
    import tensorflow as tf

    import tfcpu

    rng = np.random.default_rng(0)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 64], name="x")
        h = tf.nn.relu(tf.matmul(x, tf.constant(rng.standard_normal((64, 128)).astype(np.float32))))
        tf.nn.softmax(tf.matmul(h, tf.constant(rng.standard_normal((128, 10)).astype(np.float32))), name="probs")
    return tfcpu.load(g.as_graph_def())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=5000, help="Runner.run calls in phase 1")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5, help="multi-instance runs in phase 2")
    parser.add_argument("--instance-steps", type=int, default=500, help="batches per instance per round")
    parser.add_argument("--bound-mib", type=float, default=64.0, help="allowed RSS growth per phase")
    parser.add_argument("--json", metavar="OUT", help="also write the result as JSON")
    args = parser.parse_args()

    import numpy as np

    from tfcpu.plan import InstancePlan
    from tfcpu.runtime.multi import run_instances
    from tfcpu.runtime.runner import Runner
    from tfcpu.topology import Topology

    model = _model()
    feed = {"x:0": np.random.default_rng(1).standard_normal((args.batch_size, 64)).astype(np.float32)}
    result: dict[str, object] = {"batches": args.batches, "rounds": args.rounds, "bound_mib": args.bound_mib}
    with Runner(model) as runner:  # type: ignore[arg-type]
        for _ in range(200):
            runner.run(feed)
        gc.collect()
        start = _rss_mib()
        t0 = time.monotonic()
        for _ in range(args.batches):
            runner.run(feed)
        gc.collect()
        end = _rss_mib()
    result["runner"] = {
        "rss_start_mib": round(start, 1),
        "rss_end_mib": round(end, 1),
        "growth_mib": round(end - start, 1),
        "seconds": round(time.monotonic() - t0, 1),
    }
    print(f"Runner: {args.batches} batches, RSS {start:.1f} -> {end:.1f} MiB ({end - start:+.1f} MiB)")

    plan = InstancePlan.for_topology(Topology.detect(), cores_per_instance=1)
    run_instances(model, plan, batch_size=args.batch_size, warmup=5, steps=20)  # type: ignore[arg-type]
    gc.collect()
    start = _rss_mib()
    items = 0
    t0 = time.monotonic()
    for _ in range(args.rounds):
        multi = run_instances(model, plan, batch_size=args.batch_size, warmup=5, steps=args.instance_steps)  # type: ignore[arg-type]
        items += sum(i.benchmark.items for i in multi.instances if i.benchmark is not None)
    gc.collect()
    end = _rss_mib()
    result["instances"] = {
        "instances": len(plan.instances),
        "batches_total": items // args.batch_size,
        "rss_start_mib": round(start, 1),
        "rss_end_mib": round(end, 1),
        "growth_mib": round(end - start, 1),
        "seconds": round(time.monotonic() - t0, 1),
    }
    print(
        f"run_instances: {args.rounds} rounds x {len(plan.instances)} instances, {items // args.batch_size} batches, "
        f"parent RSS {start:.1f} -> {end:.1f} MiB ({end - start:+.1f} MiB)"
    )
    growths = [result["runner"]["growth_mib"], result["instances"]["growth_mib"]]  # type: ignore[index]
    ok = all(float(g) <= args.bound_mib for g in growths)
    result["ok"] = ok
    print(f"bound {args.bound_mib} MiB per phase: {'OK' if ok else 'EXCEEDED'}")
    if args.json:
        from tfcpu._io import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
