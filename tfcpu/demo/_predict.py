"""Child process of the demo's baseline row: time ``model.predict`` on a saved Keras model.

``python -m tfcpu.demo._predict MODEL.keras BATCH DURATION WARMUP OUT.json`` — the model is
timed the way most users run inference first: ``model.predict`` on one in-memory batch,
TensorFlow's default threads, no tfcpu settings.
"""

from __future__ import annotations

import json
import os
import sys
import time

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path, batch, duration, warmup, out = args[0], int(args[1]), float(args[2]), int(args[3]), args[4]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    from tfcpu._io import atomic_write_text
    from tfcpu.runtime.stats import LatencyStats

    model = keras.models.load_model(path, compile=False)
    shape = (batch, *tuple(model.inputs[0].shape[1:]))
    x = np.random.default_rng(0).standard_normal(shape).astype("float32")
    t0 = time.perf_counter()
    model.predict(x, batch_size=batch, verbose=0)
    first = time.perf_counter() - t0
    for _ in range(warmup):
        model.predict(x, batch_size=batch, verbose=0)
    lat = []
    start = time.perf_counter()
    while True:
        b0 = time.perf_counter()
        model.predict(x, batch_size=batch, verbose=0)
        b1 = time.perf_counter()
        lat.append(b1 - b0)
        if b1 - start >= duration:
            break
    seconds = time.perf_counter() - start
    atomic_write_text(
        out,
        json.dumps(
            {
                "throughput": len(lat) * batch / seconds,
                "items": len(lat) * batch,
                "seconds": seconds,
                "first_run_ms": first * 1000,
                "latency_ms": LatencyStats.from_seconds(lat).to_dict(),
            }
        ),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
