"""Ray Data batch inference: tfcpu's pinned actors vs a plain unpinned TensorFlow predictor, one run.

    python benchmarks/bench_ray.py [--model MobileNetV2] [--rounds 3] [--items 256] [--batch-size 16]

Starts a local Ray cluster with this machine's CPUs, optimises the model once with
``GraphOptimizer.default()``, then each round runs the same dataset through

* ``tfcpu``: :func:`tfcpu.ray.predict_with_report`, one pinned actor per instance slot
  (``--cores-per-instance``, default 1), the plan's intra/inter-op threads;
* ``plain``: ``map_batches`` with the obvious callable class — load the same GraphDef, open a
  default ``tf.compat.v1.Session``, run — with the same pool size, ``num_cpus`` and batch size,
  not pinned.

Both report the model phase the same way: items / (last batch end - first batch start) over
the rows' timestamps, so actor start-up (TensorFlow import) is excluded; end-to-end wall time
is printed too. Rounds alternate which variant goes first. Printed: medians, min-max, ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class PlainTFPredictor:
    """What one writes without tfcpu: a session with TensorFlow's default threads, no pinning."""

    def __init__(self, graph: bytes, input_name: str, output_name: str) -> None:
        import tensorflow as tf

        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(graph)
        g = tf.Graph()
        with g.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        self.session = tf.compat.v1.Session(graph=g)
        self.fn = self.session.make_callable(g.get_tensor_by_name(output_name), [g.get_tensor_by_name(input_name)])
        self.output = output_name.split(":")[0].replace("/", "_")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        start = time.time()
        y = self.fn(batch["image"])
        end = time.time()
        n = len(y)
        return {
            self.output: y,
            "tfcpu_pid": np.full(n, os.getpid()),
            "tfcpu_start": np.full(n, start),
            "tfcpu_end": np.full(n, end),
        }


def model_phase(ds: Any) -> tuple[int, float]:
    """(items, items/s between the first batch start and the last batch end)."""
    batches = list(ds.select_columns(["tfcpu_start", "tfcpu_end"]).iter_batches(batch_format="numpy", batch_size=None))
    starts = np.concatenate([b["tfcpu_start"] for b in batches])
    ends = np.concatenate([b["tfcpu_end"] for b in batches])
    return len(starts), len(starts) / float(ends.max() - starts.min())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="MobileNetV2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--cores-per-instance", type=int, default=1)
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()

    import ray

    import tfcpu
    import tfcpu.ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.wait_for_min_actors_s = 600  # dispatch once the whole pool is up, for both variants

    t0 = time.monotonic()
    model = tfcpu.GraphOptimizer.default().run(tfcpu.load(f"keras:{args.model}")).model
    print(f"optimised {args.model} in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    (spec,) = model.inputs
    shape = tuple(d if d is not None else 224 for d in (spec.shape or (None, 224, 224, 3))[1:])
    images = np.random.default_rng(0).standard_normal((args.items, *shape)).astype(np.float32)

    nodes = tfcpu.ray.survey(cores_per_instance=args.cores_per_instance)
    actors, num_cpus = tfcpu.ray.pool_size(nodes)
    blocks = max(actors * 4, 8)

    def dataset() -> Any:
        return ray.data.from_numpy(np.array_split(images, blocks)).rename_columns({"data": "image"})

    graph = model.to_bytes()

    def run(name: str) -> tuple[float, float]:
        start = time.perf_counter()
        if name == "tfcpu":
            out, _ = tfcpu.ray.predict_with_report(
                dataset(),
                model,
                cores_per_instance=args.cores_per_instance,
                batch_size=args.batch_size,
                input_columns="image",
                keep_columns=False,
                keep_metadata=True,
            )
        else:
            out = (
                dataset()
                .map_batches(
                    PlainTFPredictor,
                    fn_constructor_kwargs={
                        "graph": graph,
                        "input_name": spec.name,
                        "output_name": model.outputs[0].name,
                    },
                    compute=ray.data.ActorPoolStrategy(size=actors),
                    num_cpus=num_cpus,
                    batch_size=args.batch_size,
                    batch_format="numpy",
                )
                .materialize()
            )
        wall = time.perf_counter() - start
        items, rate = model_phase(out)
        assert items == args.items, (name, items)
        return rate, args.items / wall

    samples: dict[str, list[tuple[float, float]]] = {"tfcpu": [], "plain": []}
    for r in range(args.rounds):
        order = ["tfcpu", "plain"] if r % 2 == 0 else ["plain", "tfcpu"]
        for name in order:
            rate, e2e = run(name)
            samples[name].append((rate, e2e))
            print(f"round {r + 1} {name}: {rate:.1f} img/s model phase, {e2e:.1f} img/s end to end", file=sys.stderr)
    ray.shutdown()

    summary: dict[str, Any] = {
        "model": args.model,
        "items": args.items,
        "batch_size": args.batch_size,
        "actors": actors,
        "num_cpus_per_actor": num_cpus,
        "slots": [list(n.cpulists) for n in nodes],
        "rounds": args.rounds,
    }
    for name, values in samples.items():
        rates = [v[0] for v in values]
        e2e = [v[1] for v in values]
        summary[name] = {
            "median": statistics.median(rates),
            "min": min(rates),
            "max": max(rates),
            "end_to_end_median": statistics.median(e2e),
        }
    summary["ratio"] = summary["tfcpu"]["median"] / summary["plain"]["median"]
    print(json.dumps(summary, indent=2))
    if args.json:
        from tfcpu._io import atomic_write_text

        atomic_write_text(args.json, json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
