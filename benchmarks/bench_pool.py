"""tfcpu.Pool vs Runner.multi_instance vs one in-process Runner, and the pool's per-call overhead (issue 25).

    python benchmarks/bench_pool.py [--precision int8|fp32] [--batches 40] [--rounds 3] [--batch-size 16]

Throughput paths, over the same stream of ``--batches`` ResNet-50 batches (3 interleaved rounds,
rotated order, medians):

* ``pool.map``: a `tfcpu.Pool` on the N-instance plan, started once before the rounds (that is the
  point of a pool), mapping the stream;
* ``multi_instance``: ``Runner.multi_instance`` with the same plan and the same items as a dataset
  (its own timed-region throughput; start-up and model load excluded);
* ``in-process``: one `Runner` in this process with all cores, ``run`` over the stream.

Overhead (the pool's transport: pipes + shared memory + threads), measured one call at a time so
nothing overlaps:

* tiny model: median per-call time of ``pool.submit(x).result()`` on a 1-instance pool minus that of
  ``runner.run(x)`` in this process (target ≤ 1 ms);
* ResNet-50 batch 16: a 1-instance pool with all cores, one call at a time, vs the in-process Runner
  (target ≤ 5%).

The issue's figure is ``--batches 200``; the default keeps the run short on a 2-core machine.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

from _common import fmt_compared, model_parser, spread_lines

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _tiny_model():  # type: ignore[no-untyped-def]
    """x[?,4] → MatMul → BiasAdd → Softmax with seeded random weights."""
    import numpy as np
    import tensorflow as tf

    from tfcpu.graph.model import Model, TensorSpec

    rng = np.random.default_rng(5)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        w = tf.constant(rng.standard_normal((4, 3)).astype(np.float32))
        b = tf.constant(rng.standard_normal(3).astype(np.float32))
        tf.nn.softmax(tf.nn.bias_add(tf.matmul(x, w), b), name="probs")
    return Model(
        g.as_graph_def(),
        (TensorSpec("x:0", "float32", (None, 4), "Placeholder"),),
        (TensorSpec("probs:0", "float32", (None, 3), "Softmax"),),
        source="tiny",
    )


def _per_call_ms(call, n: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0


def main() -> int:
    parser = model_parser(__doc__)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--batches", type=int, default=40, help="batches in the stream (the issue: 200)")
    parser.add_argument("--precision", choices=("int8", "fp32"), default="int8")
    parser.add_argument("--calls", type=int, default=500, help="calls timed for the tiny model's overhead")
    args = parser.parse_args()
    if args.precision == "int8":
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"  # before TensorFlow starts here; the children decide the same

    import numpy as np

    import tfcpu
    from tfcpu.plan import InstancePlan
    from tfcpu.session.config import SessionConfig

    topo = tfcpu.Topology.detect()
    t0 = time.monotonic()
    model = tfcpu.load(f"keras:{args.model}")
    if args.precision == "int8":
        from tfcpu.quantize import Quantizer

        model = Quantizer().int8().calibrate("synthetic", batches=8, batch_size=args.batch_size).run(model).model
    print(f"{args.model} {args.precision} ready in {time.monotonic() - t0:.0f} s", file=sys.stderr)

    rng = np.random.default_rng(0)
    name = model.input_names[0]
    shape = tuple(args.batch_size if d is None else d for d in (model.inputs[0].shape or ()))
    stream = [{name: rng.standard_normal(shape).astype(np.float32)} for _ in range(min(args.batches, 8))]
    stream = [stream[i % len(stream)] for i in range(args.batches)]
    dataset = np.concatenate([b[name] for b in stream])
    items = dataset.shape[0]

    plan = InstancePlan.for_topology(topo, instances=args.instances)
    whole = InstancePlan.for_topology(topo, instances=1)
    all_cores = SessionConfig.for_topology(topo)
    runner = tfcpu.Runner(model, all_cores).activate()
    runner.run(stream[0])

    t0 = time.monotonic()
    pool = tfcpu.Pool(model, plan)
    print(f"pool of {len(plan)} started in {time.monotonic() - t0:.0f} s ({pool.method})", file=sys.stderr)
    one = tfcpu.Pool(model, whole)

    def pool_map() -> float:
        t = time.perf_counter()
        n = sum(1 for _ in pool.map(stream))
        assert n == len(stream)
        return items / (time.perf_counter() - t)

    def multi() -> float:
        res = runner.multi_instance(plan, data=dataset, batch_size=args.batch_size, warmup=1)
        if res.partial:
            raise RuntimeError(res.failed[0].error)
        return float(res.throughput)

    def in_process() -> float:
        t = time.perf_counter()
        for batch in stream:
            runner.run(batch)
        return items / (time.perf_counter() - t)

    def one_call_at_a_time() -> float:
        t = time.perf_counter()
        for batch in stream:
            one.submit(batch).result()
        return items / (time.perf_counter() - t)

    paths = {
        f"pool.map ({len(plan)} inst)": pool_map,
        f"multi_instance ({len(plan)} inst)": multi,
        "in-process Runner (all cores)": in_process,
        "pool 1 inst, 1 call at a time": one_call_at_a_time,
    }
    samples: dict[str, list[float]] = {p: [] for p in paths}
    names = list(paths)
    try:
        for r in range(args.rounds):
            k = r % len(names)
            for path in names[k:] + names[:k]:
                value = paths[path]()
                samples[path].append(value)
                print(f"round {r + 1} {path}: {value:.1f} img/s", file=sys.stderr)
    finally:
        pool.close()
        one.close()
        runner.close()

    # the tiny model's per-call overhead: 1-instance pool vs the same config in this process
    tiny = _tiny_model()
    x = np.ones((1, 4), np.float32)
    tiny_plan = InstancePlan.for_topology(topo, instances=1)
    with tfcpu.Pool(tiny, tiny_plan) as tiny_pool, tfcpu.Runner(tiny, tiny_plan.session_config(0)) as tiny_runner:
        for _ in range(50):
            tiny_pool.submit(x).result()
            tiny_runner.run(x)
        pool_ms, local_ms = [], []
        for _ in range(args.rounds):
            pool_ms.append(_per_call_ms(lambda: tiny_pool.submit(x).result(), args.calls))
            local_ms.append(_per_call_ms(lambda: tiny_runner.run(x), args.calls))
    overhead_ms = statistics.median(p - q for p, q in zip(pool_ms, local_ms, strict=True))

    med = {p: statistics.median(v) for p, v in samples.items() if v}
    k_pool, k_multi, k_local, k_one = names
    print(
        f"\n{args.model} {args.precision.upper()}, batch {args.batch_size}, {args.batches} batches per path, "
        f"{args.rounds} interleaved rounds — {topo.summary()}"
    )
    print("\n".join("  " + line for line in spread_lines(samples, width=32)))
    print(f"  pool.map / multi_instance        = {fmt_compared(samples[k_pool], samples[k_multi])}  (target ≥ 0.95×)")
    print(f"  pool.map / in-process all cores  = {fmt_compared(samples[k_pool], samples[k_local])}")
    print(f"  multi_instance / in-process      = {fmt_compared(samples[k_multi], samples[k_local])}")
    overhead_pct = (1 - med[k_one] / med[k_local]) * 100 if med.get(k_local) else float("nan")
    print(f"  pool overhead on batch {args.batch_size}, 1 call at a time = {overhead_pct:.1f}%  (target ≤ 5%)")
    print(
        f"  tiny model per call: pool {statistics.median(pool_ms):.3f} ms, in-process "
        f"{statistics.median(local_ms):.3f} ms, overhead {overhead_ms:.3f} ms  (target ≤ 1 ms)"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "machine": topo.summary(),
                    "precision": args.precision,
                    "batches": args.batches,
                    "samples": samples,
                    "medians": med,
                    "overhead_percent_batch": overhead_pct,
                    "tiny_ms": {"pool": pool_ms, "in_process": local_ms, "overhead_median": overhead_ms},
                },
                fh,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
