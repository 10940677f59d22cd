"""The servers bench_serve.py compares tfcpu serve with, written the way a user would write them.

    python benchmarks/_serve_peers.py baseline MODEL.pb NAME PORT     # Starlette + uvicorn, one TF runner, no batching
    python benchmarks/_serve_peers.py ray SAVEDMODEL_DIR NAME PORT    # Ray Serve, @serve.batch, one unpinned replica

Both answer KServe v2 ``GET /v2/models/NAME`` and ``POST /v2/models/NAME/infer`` (JSON, or the binary
tensor extension both ways, as the load generator sends and asks) on 127.0.0.1, and run until SIGTERM.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # INT8 graphs need it on AVX2 CPUs
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _decode(body: bytes, header_length: str | None = None) -> np.ndarray:
    """The first input of a KServe v2 request: JSON, or the binary tensor extension (as tritonclient sends)."""
    if header_length:
        n = int(header_length)
        item = json.loads(body[:n])["inputs"][0]
        return np.frombuffer(body[n:], dtype=np.float32).reshape(item["shape"])
    item = json.loads(body)["inputs"][0]
    return np.asarray(item["data"], dtype=np.float32).reshape(item["shape"])


def _binary_out(body: bytes, header_length: str | None) -> bool:
    """Whether the request asks for the answer in the binary extension (as tritonclient does by default)."""
    head = body[: int(header_length)] if header_length else body
    return bool(json.loads(head).get("parameters", {}).get("binary_data_output"))


def _encode(name: str, out: np.ndarray, binary: bool) -> Any:
    from starlette.responses import JSONResponse, Response

    item: dict[str, Any] = {"name": "output_0", "shape": list(out.shape), "datatype": "FP32"}
    if not binary:
        return JSONResponse({"model_name": name, "outputs": [{**item, "data": out.ravel().tolist()}]})
    raw = np.ascontiguousarray(out, dtype="<f4").tobytes()
    head = json.dumps({"model_name": name, "outputs": [{**item, "parameters": {"binary_data_size": len(raw)}}]})
    return Response(head.encode() + raw, media_type="application/octet-stream",
                    headers={"inference-header-content-length": str(len(head.encode()))})  # fmt: skip


def _meta(name: str, shape: list[int]) -> dict[str, Any]:
    return {"name": name, "inputs": [{"name": "input", "datatype": "FP32", "shape": shape}], "outputs": []}


def baseline(path: str, name: str, port: int) -> None:
    """One process, one TensorFlow session, every request run on its own (no batching)."""
    import tensorflow as tf
    import uvicorn
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    graph_def = tf.compat.v1.GraphDef()
    with open(path, "rb") as fh:
        graph_def.ParseFromString(fh.read())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    placeholders = [op for op in graph.get_operations() if op.type == "Placeholder"]
    feed = placeholders[0].outputs[0]
    consumed = {t.name for op in graph.get_operations() for t in op.inputs}
    fetch = next(t for op in reversed(graph.get_operations()) for t in op.outputs if t.name not in consumed)
    session = tf.compat.v1.Session(graph=graph)
    shape = [-1 if d is None else d for d in feed.shape.as_list()]

    async def meta(_: Request) -> JSONResponse:
        return JSONResponse(_meta(name, shape))

    async def infer(request: Request) -> Any:
        body, header = await request.body(), request.headers.get("inference-header-content-length")
        out = await run_in_threadpool(session.run, fetch, {feed: _decode(body, header)})
        return _encode(name, out, _binary_out(body, header))

    app = Starlette(routes=[Route(f"/v2/models/{name}", meta), Route(f"/v2/models/{name}/infer", infer,
                                                                      methods=["POST"])])  # fmt: skip
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def ray_serve(path: str, name: str, port: int, max_batch: int = 16) -> None:
    """Ray Serve with @serve.batch and one TensorFlow replica that Ray does not pin."""
    import signal
    import time

    import ray
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}})  # fmt: skip
    serve.start(http_options={"host": "127.0.0.1", "port": port})

    @serve.deployment(num_replicas=1, max_ongoing_requests=256)
    class Model:
        def __init__(self) -> None:
            import tensorflow as tf

            self.fn = tf.saved_model.load(path).signatures["serving_default"]
            _, kwargs = self.fn.structured_input_signature
            (self.key, spec), *_ = kwargs.items()
            self.shape = [-1 if d is None else d for d in spec.shape.as_list()]

        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=0.005)
        async def run(self, xs: list[np.ndarray]) -> list[np.ndarray]:
            import tensorflow as tf

            rows = [len(x) for x in xs]
            (out,) = self.fn(**{self.key: tf.constant(np.concatenate(xs))}).values()
            out = out.numpy()
            cuts = np.cumsum(rows)[:-1]
            return list(np.split(out, cuts))

        async def __call__(self, request: Request) -> Any:
            if request.method == "GET":
                return JSONResponse(_meta(name, self.shape))
            body, header = await request.body(), request.headers.get("inference-header-content-length")
            out = await self.run(_decode(body, header))
            return _encode(name, out, _binary_out(body, header))

    serve.run(Model.bind(), name=name, route_prefix=f"/v2/models/{name}")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        time.sleep(0.2)
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    kind, model_path, model_name, port_text = sys.argv[1:5]
    (baseline if kind == "baseline" else ray_serve)(model_path, model_name, int(port_text))
