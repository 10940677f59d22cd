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
    import numpy as np

    from tfcpu._io import atomic_write_text
    from tfcpu.runtime.backends._base import timed_loop
    from tfcpu.runtime.stats import LatencyStats, round_throughputs

    model = keras.models.load_model(path, compile=False)
    x = _batch(model.inputs, batch, np.random.default_rng(0))

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


def _batch(inputs: Sequence[Any], batch: int, rng: Any) -> list[Any]:
    """One batch for every Keras input, in order: floats standard normal, integers (token ids,
    masks) in ``[0, INTEGER_HIGH)`` as `tfcpu.graph.compare.random_inputs` draws them."""
    from tfcpu.graph._inputs import INTEGER_HIGH

    out = []
    for tensor in inputs:
        dims = tuple(tensor.shape)[1:]
        if any(d is None for d in dims):
            shown = tuple(tensor.shape)
            raise ValueError(f"input {tensor.name!r} has an unknown dimension in {shown}: give a fixed shape")
        shape = (batch, *(int(d) for d in dims))
        dtype = str(getattr(tensor.dtype, "name", tensor.dtype))
        if dtype.startswith(("int", "uint")):
            out.append(rng.integers(0, INTEGER_HIGH, shape).astype(dtype))
        else:
            out.append(rng.standard_normal(shape).astype(dtype))
    return out


if __name__ == "__main__":
    sys.exit(main())
