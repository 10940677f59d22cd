"""Child-process entry point of a multi-instance run: ``python -m tfcpu.runtime.worker SPEC``.

The parent writes a JSON spec and starts this module pinned to the instance's CPUs
(numactl/taskset) with the instance's environment, so thread variables are in place before
TensorFlow starts. The protocol has no log scraping:

1. load the graph, prepare data, run the first batch
   and the warm-up batches;
2. write ``ready`` and wait for the parent's ``go`` file (all instances start together);
3. run the timed region, recording each batch's start and end on CLOCK_MONOTONIC (one clock
   for every process on the machine, so windows can be compared);
4. write the result JSON atomically and exit 0. Any failure exits non-zero with the reason on
   stderr, which the parent keeps as the log tail.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

log = logging.getLogger("tfcpu.worker")


class _Threads:
    """The minimal config the Runner needs: threads and a ConfigProto."""

    def __init__(self, intra: int, inter: int) -> None:
        self.intra_op_threads = intra
        self.inter_op_threads = inter

    def config_proto(self) -> Any:
        from tfcpu._lazy import import_tensorflow

        tf = import_tensorflow()
        return tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=self.intra_op_threads,
            inter_op_parallelism_threads=self.inter_op_threads,
        )


def _wait_for(path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no start signal from the parent after {timeout:.0f} s")
        if os.getppid() == 1:
            raise RuntimeError("the parent process is gone")
        time.sleep(0.002)
    return path.read_text()


def run(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from tfcpu._io import atomic_write_text
    from tfcpu._lazy import import_tensorflow
    from tfcpu.graph.model import Model, TensorSpec
    from tfcpu.runtime.feeds import synthetic_batch
    from tfcpu.runtime.runner import Runner
    from tfcpu.runtime.stats import LatencyStats
    from tfcpu.session.runtime import runtime_info

    tf = import_tensorflow()
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(Path(spec["graph_path"]).read_bytes())
    model = Model(
        graph_def,
        tuple(TensorSpec.from_dict(s) for s in spec["inputs"]),
        tuple(TensorSpec.from_dict(s) for s in spec["outputs"]),
        source=spec["source"],
    )
    runner = Runner(model, _Threads(spec["intra_op_threads"], spec["inter_op_threads"]))  # type: ignore[arg-type]
    runner.activate()
    names = model.input_names
    bs = int(spec["batch_size"])
    data = spec["data"]
    if data["kind"] == "shard":
        arrays = {n: np.load(p, mmap_mode="r") for n, p in data["paths"].items()}
        lo, hi = int(data["lo"]), int(data["hi"])
        batches = [[np.ascontiguousarray(arrays[n][s : min(s + bs, hi)]) for n in names] for s in range(lo, hi, bs)]
        warm = batches[:1] if batches else []
    else:
        feed = synthetic_batch(model, bs, seed=int(data.get("seed", 0)) + int(spec["index"]), shapes=data.get("shapes"))
        batches = [[feed[n] for n in names]]
        warm = batches

    t0 = time.perf_counter()
    first_ms = 0.0
    if warm:
        runner._call(warm[0])
        first_ms = (time.perf_counter() - t0) * 1000.0
        for _ in range(int(spec["warmup"])):
            runner._call(warm[0])

    ready = Path(spec["ready_path"])
    atomic_write_text(ready, str(os.getpid()))
    go = float(_wait_for(Path(spec["go_path"]), float(spec["startup_timeout"])))
    while time.monotonic() < go:
        time.sleep(0.0005)

    times: list[tuple[float, float, int]] = []
    outputs: list[list[Any]] = []
    collect = bool(spec.get("collect_outputs"))
    duration = spec.get("duration")
    steps = spec.get("steps")
    started_wall = time.time()

    def timed_feeds() -> Any:
        if data["kind"] == "shard":
            yield from batches
        elif steps:
            for _ in range(int(steps)):
                yield batches[0]
        else:
            while True:
                yield batches[0]

    deadline = go + float(duration) if duration is not None and data["kind"] != "shard" else None
    for feed_list in timed_feeds():
        b0 = time.monotonic()
        values = runner._call(feed_list)
        b1 = time.monotonic()
        times.append((b0, b1, int(feed_list[0].shape[0])))
        if collect:
            outputs.append(values)
        if deadline is not None and b1 >= deadline:
            break
    runner.close()

    out_paths: dict[str, str] = {}
    if collect and outputs:
        for k, name in enumerate(model.output_names):
            path = Path(spec["workdir"]) / f"out-{spec['index']}-{k}.npy"
            np.save(path, np.concatenate([o[k] for o in outputs]) if outputs else np.empty(0))
            out_paths[name] = str(path)
    items = sum(t[2] for t in times)
    seconds = (times[-1][1] - times[0][0]) if times else 0.0
    return {
        "index": spec["index"],
        "items": items,
        "seconds": seconds,
        "throughput": items / seconds if seconds > 0 else 0.0,
        "latency_ms": LatencyStats.from_seconds([b - a for a, b, _ in times]).to_dict(),
        "first_run_ms": first_ms,
        "batches": times,
        "started_at": started_wall,
        "outputs": out_paths,
        "pid": os.getpid(),
        "runtime": runtime_info().to_dict(),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [],
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m tfcpu.runtime.worker SPEC.json\n")
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    spec = json.loads(Path(args[0]).read_text())
    from tfcpu._io import atomic_write_text

    try:
        result = run(spec)
    except Exception as exc:  # noqa: BLE001 - reported to the parent through the exit code and log
        sys.stderr.write(f"tfcpu worker {spec.get('index')}: {type(exc).__name__}: {exc}\n")
        sys.stderr.flush()
        return 1
    atomic_write_text(spec["result_path"], json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
