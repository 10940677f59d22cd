"""The ASGI application: both REST protocols, health, metrics, over one batcher.

A request crosses each layer once: the route decodes and checks it (`tfcpu.serve._protocols`), the
`Batcher` merges it with others, the executor (pinned pool or in-process Runner) runs the batch, and
the route encodes the caller's rows. Nothing here knows which backend or format runs underneath.

Status codes: 200; 400 a request that does not fit the signature (the input named); 404 an unknown
model or path; 413 a body over ``max_body_bytes``; 503 not ready yet, draining, or the queue full
(with ``Retry-After``); 500 the model failed on a batch (the runtime's reason in the body).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfcpu.serve._batcher import Batcher, QueueFull
from tfcpu.serve._protocols import (
    BadRequest,
    Reply,
    Signature,
    decode_kserve,
    decode_tfserving,
    encode_kserve,
    encode_tfserving,
)

__all__ = ["AppState", "build_app"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class AppState:
    """What the routes share: the model's name and signature, the batcher, readiness, metrics."""

    name: str
    signature: Signature
    batcher: Batcher
    max_body_bytes: int
    warmup: Callable[[], Any] | None = None
    close: Callable[[], Any] | None = None
    instances: Callable[[], list[dict[str, Any]]] | None = None
    ready: bool = False
    draining: bool = False
    metrics: Any = field(default=None)


class _Metrics:
    """Prometheus metrics in a registry of the app's own (several apps in one process do not clash)."""

    def __init__(self, state: AppState) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        labels = ("model", "protocol", "code")
        self.requests = Counter("tfcpu_requests", "Inference requests answered", labels, registry=self.registry)
        self.errors = Counter("tfcpu_request_errors", "Requests answered with an error, by kind", ("model", "kind"),
                              registry=self.registry)  # fmt: skip
        self.latency = Histogram("tfcpu_request_latency_seconds", "Time from request to answer",
                                 ("model", "protocol"), buckets=_LATENCY_BUCKETS, registry=self.registry)  # fmt: skip
        self.batch_size = Histogram("tfcpu_batch_size", "Rows per batch the batcher ran", ("model",),
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=self.registry)  # fmt: skip
        self.batch_latency = Histogram("tfcpu_batch_latency_seconds", "Time one batch took on the executor",
                                       ("model",), buckets=_LATENCY_BUCKETS, registry=self.registry)  # fmt: skip
        depth = Gauge("tfcpu_queue_depth", "Requests waiting to be batched", ("model",), registry=self.registry)
        depth.labels(state.name).set_function(lambda: state.batcher.depth)
        in_flight = Gauge("tfcpu_batches_in_flight", "Batches running", ("model",), registry=self.registry)
        in_flight.labels(state.name).set_function(lambda: state.batcher.stats.in_flight)
        if state.instances is not None:
            self.registry.register(_InstanceCollector(state))

    def observe_batch(self, model: str, rows: int, seconds: float) -> None:
        self.batch_size.labels(model).observe(rows)
        self.batch_latency.labels(model).observe(seconds)


class _InstanceCollector:
    """Per-instance counters read from the executor at scrape time."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        batches = CounterMetricFamily("tfcpu_instance_batches", "Batches each pinned instance ran",
                                      labels=("model", "instance"))  # fmt: skip
        items = CounterMetricFamily("tfcpu_instance_items", "Rows each instance ran", labels=("model", "instance"))
        restarts = GaugeMetricFamily("tfcpu_instance_restarts", "Times each instance was restarted",
                                     labels=("model", "instance"))  # fmt: skip
        assert self.state.instances is not None
        for row in self.state.instances():
            key = [self.state.name, str(row.get("instance", "?"))]
            batches.add_metric(key, float(row.get("batches", 0)))
            items.add_metric(key, float(row.get("items", 0)))
            restarts.add_metric(key, float(row.get("restarts", 0)))
        yield batches
        yield items
        yield restarts


def build_app(state: AppState) -> Any:
    """The Starlette application serving ``state`` (see the module docstring)."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    service = _Service(state)
    routes = [
        Route("/v2/health/live", service.live),
        Route("/v2/health/ready", service.ready),
        Route("/v2", service.server_meta),
        Route("/v2/models/{name}", service.model_meta),
        Route("/v2/models/{name}/ready", service.model_ready),
        Route("/v2/models/{name}/infer", service.kserve_infer, methods=["POST"]),
        Route("/v1/models/{rest}", service.tfserving, methods=["GET", "POST"]),
        Route("/metrics", service.prometheus),
    ]
    return Starlette(routes=routes, lifespan=service.lifespan)


Decode = Callable[[bytes], Any]
Encode = Callable[[Any, dict[str, np.ndarray]], Reply]


class _Service:
    """The routes of one served model."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.metrics = _Metrics(state)
        state.metrics = self.metrics
        state.batcher._on_batch = lambda rows, s: self.metrics.observe_batch(state.name, rows, s)

    # -- helpers ----------------------------------------------------------------------------
    def error(self, status: int, message: str, *, kind: str, retry: bool = False) -> Any:
        from starlette.responses import JSONResponse

        self.metrics.errors.labels(self.state.name, kind).inc()
        return JSONResponse({"error": message}, status_code=status, headers={"Retry-After": "1"} if retry else None)

    def unknown(self, name: str) -> Any:
        return self.error(404, f"unknown model {name!r}; this server serves {self.state.name!r}", kind="not_found")

    @property
    def serving(self) -> bool:
        return self.state.ready and not self.state.draining

    async def body_of(self, request: Any) -> bytes:
        limit = self.state.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _TooLarge(int(declared))
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _TooLarge(size)
            chunks.append(chunk)
        return b"".join(chunks)

    async def infer(self, request: Any, protocol: str, decode: Decode, encode: Encode) -> Any:
        start = time.perf_counter()
        response = await self.answer(request, decode, encode)
        self.metrics.requests.labels(self.state.name, protocol, str(response.status_code)).inc()
        self.metrics.latency.labels(self.state.name, protocol).observe(time.perf_counter() - start)
        return response

    async def answer(self, request: Any, decode: Decode, encode: Encode) -> Any:
        if request.path_params.get("name") != self.state.name:
            return self.unknown(str(request.path_params.get("name")))
        if not self.serving:
            text = "not ready" if not self.state.ready else "shutting down"
            return self.error(503, text, kind="unavailable", retry=True)
        try:
            decoded = decode(await self.body_of(request))
        except _TooLarge as exc:
            limit = self.state.max_body_bytes
            return self.error(413, f"the body is {exc.size} bytes; the limit is {limit} (--max-body-bytes)",
                              kind="too_large")  # fmt: skip
        except BadRequest as exc:
            return self.error(400, str(exc), kind="bad_request")
        try:
            outputs = await self.state.batcher.infer(decoded.feeds)
        except QueueFull as exc:
            return self.error(503, f"the queue is full ({exc}); retry later", kind="queue_full", retry=True)
        except Exception as exc:  # noqa: BLE001 - the model's failure, answered with its reason
            return self.error(500, f"{type(exc).__name__}: {exc}", kind="model_error")
        return encode(decoded, outputs).response()

    # -- KServe v2 --------------------------------------------------------------------------
    async def kserve_infer(self, request: Any) -> Any:
        header = request.headers.get("inference-header-content-length")
        length = int(header) if header and header.isdigit() else None
        sig, name = self.state.signature, self.state.name
        return await self.infer(
            request,
            "kserve_v2",
            lambda body: decode_kserve(body, length, sig),
            lambda d, out: encode_kserve(name, sig, out, d),
        )

    async def live(self, _: Any) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse({"live": True})

    async def ready(self, _: Any) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse({"ready": self.serving}, status_code=200 if self.serving else 503)

    async def server_meta(self, _: Any) -> Any:
        from starlette.responses import JSONResponse

        from tfcpu import __version__

        return JSONResponse({"name": "tfcpu", "version": __version__, "extensions": ["binary_tensor_data"]})

    async def model_meta(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        if request.path_params["name"] != self.state.name:
            return self.unknown(request.path_params["name"])
        sig = self.state.signature
        return JSONResponse({"name": self.state.name, "versions": ["1"], "platform": "tfcpu",
                             "inputs": sig.describe("inputs"), "outputs": sig.describe("outputs")})  # fmt: skip

    async def model_ready(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        if request.path_params["name"] != self.state.name:
            return self.unknown(request.path_params["name"])
        return JSONResponse({"name": self.state.name, "ready": self.serving}, status_code=200 if self.serving else 503)

    # -- TF Serving ----------------------------------------------------------------------------
    async def tfserving(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        name, _, verb = request.path_params["rest"].partition(":")
        request.path_params["name"] = name
        if request.method == "GET":
            if verb or name != self.state.name:
                return self.unknown(name)
            text = "AVAILABLE" if self.serving else "LOADING"
            status = {"version": "1", "state": text, "status": {"error_code": "OK", "error_message": ""}}
            return JSONResponse({"model_version_status": [status]})
        if verb != "predict":
            return self.error(404, f"unknown method {verb!r}; use :predict", kind="not_found")
        sig = self.state.signature
        return await self.infer(
            request,
            "tfserving",
            lambda body: decode_tfserving(body, sig),
            lambda d, out: encode_tfserving(sig, out, d.form),
        )

    # -- metrics and lifecycle -----------------------------------------------------------------
    async def prometheus(self, _: Any) -> Any:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        from starlette.responses import Response

        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(self, _: Any) -> AsyncIterator[None]:
        state = self.state
        state.batcher.start()
        loop = asyncio.get_running_loop()
        if state.warmup is not None:
            await loop.run_in_executor(None, state.warmup)
        state.ready = True
        try:
            yield
        finally:
            state.draining = True
            await state.batcher.stop()  # what was accepted is answered
            if state.close is not None:
                await loop.run_in_executor(None, state.close)


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size
