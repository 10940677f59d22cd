"""Child of the peer benchmark: time an OpenVINO IR on CPU with the THROUGHPUT hint.

    python benchmarks/_ov_child.py MODEL.xml BATCH DURATION WARMUP PRECISION OUT.json

PRECISION is ``f32`` (INFERENCE_PRECISION_HINT forced to f32) or ``default`` (for an INT8 IR:
OpenVINO picks the kernels). Requests run through an AsyncInferQueue sized by OpenVINO's
optimal number of requests; the synthetic batch is made before the timed region; submission stops
after DURATION and the requests in flight are waited for and counted over the real elapsed time.
"""

from __future__ import annotations

import json
import sys
import time


def _compile(path: str, batch: int, precision: str):  # type: ignore[no-untyped-def]
    import openvino as ov

    core = ov.Core()
    model = core.read_model(path)
    dims = list(model.inputs[0].get_partial_shape())
    shape = [batch, *(d.get_length() for d in dims[1:])]
    model.reshape({model.inputs[0].any_name: shape})
    config = {"PERFORMANCE_HINT": "THROUGHPUT"}
    if precision == "f32":
        config["INFERENCE_PRECISION_HINT"] = "f32"
    return core.compile_model(model, "CPU", config), shape


def _run(compiled, x, seconds: float) -> tuple[int, float]:  # type: ignore[no-untyped-def]
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
        queue.start_async({0: x})
    queue.wait_all()
    return done[0], time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path, precision, out = args[0], args[4], args[5]
    batch, duration, warmup = int(args[1]), float(args[2]), int(args[3])
    import numpy as np

    from tfcpu._io import atomic_write_text

    compiled, shape = _compile(path, batch, precision)
    x = np.random.default_rng(0).standard_normal(shape).astype("float32")
    request = compiled.create_infer_request()
    for _ in range(max(1, warmup)):
        request.infer({0: x})
    n, seconds = _run(compiled, x, duration)
    nireq = compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
    atomic_write_text(
        out,
        json.dumps({"throughput": n * batch / seconds, "items": n * batch, "seconds": seconds, "requests": nireq}),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
