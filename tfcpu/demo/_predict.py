"""Child process of the demo's baseline row: time ``model.predict`` on a saved Keras model.

``python -P -m tfcpu.demo._predict MODEL.keras BATCH DURATION WARMUP OUT.json`` — the model is
timed the way most users run inference first: ``model.predict`` on one in-memory batch (one array
per input: images, or token ids and a mask),
TensorFlow's default threads, no tfcpu settings. The timing is tfcpu's one timed loop
(`tfcpu.runtime.backends._base.timed_loop()`), so this row means what every other row means.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path, batch, duration, warmup, out = args[0], int(args[1]), float(args[2]), int(args[3]), args[4]
    from tfcpu.session.precision import quiet_tensorflow

    quiet_tensorflow()
    import keras

    from tfcpu._io import atomic_write_text
    from tfcpu.runtime.backends._base import timed_loop
    from tfcpu.runtime.stats import LatencyStats, round_throughputs

    model = keras.models.load_model(path, compile=False)
    x = _batch(model.inputs, batch)

    def predict(ordered: Sequence[Any]) -> list[Any]:
        return [model.predict(ordered[0] if len(ordered) == 1 else list(ordered), batch_size=batch, verbose=0)]

    t0 = time.perf_counter()
    predict(x)
    first = time.perf_counter() - t0
    for _ in range(warmup):
        predict(x)

    def feeds() -> Iterator[list[Any]]:
        while True:
            yield x

    timing = timed_loop(predict, feeds(), deadline=time.monotonic() + duration)
    atomic_write_text(
        out,
        json.dumps(
            {
                "throughput": timing.throughput,
                "items": timing.items,
                "seconds": timing.seconds,
                "first_run_ms": first * 1000,
                "latency_ms": LatencyStats.from_seconds(timing.latencies).to_dict(),
                "rounds": list(round_throughputs(timing.batches)),
            }
        ),
    )
    return 0


def _batch(inputs: Sequence[Any], batch: int, seed: int = 0) -> list[Any]:
    """One batch for every Keras input, in order, drawn by the one input generator
    (`tfcpu.graph.compare.random_inputs`) the graph rows use: floats standard normal, integers
    (token ids, masks) in ``[0, INTEGER_HIGH)``; an unknown non-batch dimension is a ConfigError."""
    from tfcpu.graph._inputs import random_inputs
    from tfcpu.graph.model import Model, TensorSpec

    specs = tuple(
        TensorSpec(f"{t.name}:0", str(getattr(t.dtype, "name", t.dtype)), tuple(t.shape), "Placeholder") for t in inputs
    )
    feeds = random_inputs(Model(None, specs, (), source="the Keras model"), batch, seed=seed)
    return [feeds[spec.name] for spec in specs]


if __name__ == "__main__":
    sys.exit(main())
