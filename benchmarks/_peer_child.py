"""Child of the peer benchmark: time an ONNX Runtime or LiteRT model on CPU.

    python benchmarks/_peer_child.py KIND MODEL BATCH DURATION WARMUP THREADS INSTANCES FEEDS.npz OUT.json

KIND is ``ort`` or ``litert``. THREADS intra-op threads per instance (ORT ``intra_op_num_threads``,
LiteRT/XNNPACK ``num_threads``); INSTANCES sessions side by side, each driven by its own Python thread
(both runtimes release the GIL while they run), throughput summed over the real elapsed time. The batch
(FEEDS.npz, the same arrays the TensorFlow check used) is loaded before the timed region; every
instance is warmed up first. No TensorFlow is imported.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peer_tools import litert_interpreter, litert_run, ort_feeds, ort_session


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    kind, path, out = args[0], args[1], args[8]
    batch, duration, warmup = int(args[2]), float(args[3]), int(args[4])
    threads, instances = int(args[5]), int(args[6])
    import numpy as np

    feeds = dict(np.load(args[7]))
    calls = []
    for _ in range(instances):
        if kind == "ort":
            session = ort_session(path, threads)
            ordered = ort_feeds(session, feeds)
            calls.append(lambda s=session, f=ordered: s.run(None, f))
        else:
            interpreter = litert_interpreter(path, threads, batch)
            calls.append(lambda i=interpreter: litert_run(i, feeds))
    for call in calls:
        for _ in range(max(1, warmup)):
            call()
    counts = [0] * instances
    start = time.perf_counter()
    deadline = start + duration

    def loop(k: int) -> None:
        while time.perf_counter() < deadline:
            calls[k]()
            counts[k] += 1

    workers = [threading.Thread(target=loop, args=(k,)) for k in range(instances)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - start
    from tfcpu._io import atomic_write_text

    items = sum(counts) * batch
    atomic_write_text(out, json.dumps({"throughput": items / seconds, "items": items, "seconds": seconds,
                                       "per_instance": counts}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
