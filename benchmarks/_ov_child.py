"""Child of the peer benchmark: time an OpenVINO IR on CPU with the THROUGHPUT hint.

    python benchmarks/_ov_child.py MODEL.xml BATCH DURATION WARMUP PRECISION OUT.json [FEEDS.npz]

PRECISION is ``f32`` (INFERENCE_PRECISION_HINT forced to f32) or ``default`` (for an INT8 IR:
OpenVINO picks the kernels). Requests run through an AsyncInferQueue sized by OpenVINO's
optimal number of requests; the synthetic batch is made before the timed region; submission stops
after DURATION and the requests in flight are waited for and counted over the real elapsed time.
With FEEDS.npz (one array per input, matched by name, else by position) every input is reshaped to its
array's static shape and fed that array (the encoder's token ids and mask); without it, the one input
gets a standard-normal batch.
"""

from __future__ import annotations

import json
import sys
import time


def _match(model, feeds: dict) -> list:  # type: ignore[no-untyped-def,type-arg]
    """The arrays of ``feeds`` in the order of the model's inputs (by name, else by position)."""
    by_base = {k.split(":")[0]: v for k, v in feeds.items()}
    values = list(feeds.values())
    out = []
    for i, port in enumerate(model.inputs):
        names = {n.split(":")[0] for n in port.get_names()}
        hit = [by_base[n] for n in names if n in by_base]
        out.append(hit[0] if hit else values[i])
    return out


def _compile(path: str, batch: int, precision: str, feeds: dict | None = None):  # type: ignore[no-untyped-def,type-arg]
    import openvino as ov

    core = ov.Core()
    model = core.read_model(path)
    if feeds:
        arrays = _match(model, feeds)
        model.reshape({port.any_name: list(a.shape) for port, a in zip(model.inputs, arrays, strict=True)})
        shape = arrays
    else:
        dims = list(model.inputs[0].get_partial_shape())
        shape = [batch, *(d.get_length() for d in dims[1:])]
        model.reshape({model.inputs[0].any_name: shape})
    config = {"PERFORMANCE_HINT": "THROUGHPUT"}
    if precision == "f32":
        config["INFERENCE_PRECISION_HINT"] = "f32"
    return core.compile_model(model, "CPU", config), shape


def _run(compiled, inputs, seconds: float) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    """Submit requests until ``seconds`` have passed, then wait for the ones in flight.

    Returns (requests finished, seconds from the first submission to the last completion), so a
    request longer than the window still counts, over the time it really took.
    """
    import openvino as ov

    done = [0]

    def callback(request, userdata) -> None:  # type: ignore[no-untyped-def]
        done[0] += 1

    queue = ov.AsyncInferQueue(compiled, 0)
    queue.set_callback(callback)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        queue.start_async(inputs)
    queue.wait_all()
    return done[0], time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path, precision, out = args[0], args[4], args[5]
    batch, duration, warmup = int(args[1]), float(args[2]), int(args[3])
    import numpy as np

    from tfcpu._io import atomic_write_text

    feeds = dict(np.load(args[6])) if len(args) > 6 else None
    compiled, shape = _compile(path, batch, precision, feeds)
    inputs = dict(enumerate(shape)) if feeds else {0: np.random.default_rng(0).standard_normal(shape).astype("float32")}
    request = compiled.create_infer_request()
    for _ in range(max(1, warmup)):
        request.infer(inputs)
    n, seconds = _run(compiled, inputs, duration)
    nireq = compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
    atomic_write_text(
        out,
        json.dumps({"throughput": n * batch / seconds, "items": n * batch, "seconds": seconds, "requests": nireq}),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
