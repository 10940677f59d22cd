"""``tfcpu serve``: online inference behind KServe v2 and TF Serving REST, with dynamic batching.

    from tfcpu.serve import ServeOptions, serve
    serve(model, ServeOptions(name="resnet50", port=8000, max_batch_size=16), plan=plan)

The layers, each crossed once per request: HTTP (Starlette on uvicorn, `tfcpu.serve._app`) → wire
format (`tfcpu.serve._protocols`) → `Batcher` (merges requests into batches) → executor (a pinned
`tfcpu.Pool` of one worker per instance of an `InstancePlan`, or one in-process `Runner`) → backend.

Needs the ``serve`` extra: ``pip install "tfcpu[serve]"`` (starlette, uvicorn, prometheus-client).
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tfcpu.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.graph.model import Model
    from tfcpu.session.config import SessionConfig

logger = logging.getLogger(__name__)

__all__ = ["BackgroundServer", "RunnerExecutor", "ServeOptions", "make_app", "serve", "start"]


@dataclass(frozen=True)
class ServeOptions:
    """How the server listens and batches.

    Attributes:
        name: the model's name in the URLs (``/v2/models/NAME``, ``/v1/models/NAME``).
        host: the address to bind (loopback by default; bind another only behind your own network controls).
        port: the TCP port.
        max_batch_size: rows per batch at most.
        max_delay_ms: how long the first request of a batch waits for others.
        max_queue: requests waiting at most before 503.
        max_body_bytes: the largest request body (413 beyond).
        graceful_timeout: seconds to finish in-flight requests after SIGTERM.
        warmup_shapes: sizes of dynamic non-batch dimensions for the warm-up batch, by input name.
    """

    name: str = "model"
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch_size: int = 32
    max_delay_ms: float = 5.0
    max_queue: int = 256
    max_body_bytes: int = 64 * 1024 * 1024
    graceful_timeout: float = 30.0
    warmup_shapes: Mapping[str, tuple[int, ...]] | None = None

    def __post_init__(self) -> None:
        import math
        import re

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", self.name):
            raise ConfigError(f"bad model name {self.name!r}", hint="letters, digits, '_', '.', '-' (it is in URLs)")
        if not (0 <= self.port <= 65535):
            raise ConfigError(f"port {self.port} is out of range", hint="0-65535 (0: any free port)")
        for what, value, low in (("max_batch_size", self.max_batch_size, 1), ("max_queue", self.max_queue, 1),
                                 ("max_body_bytes", self.max_body_bytes, 1024)):  # fmt: skip
            if int(value) < low:
                raise ConfigError(f"{what} must be at least {low}, got {value}")
        for what, number in (("max_delay_ms", self.max_delay_ms), ("graceful_timeout", self.graceful_timeout)):
            if not math.isfinite(number) or number < 0 or number > 3600_000:
                raise ConfigError(f"{what} must be a finite number >= 0, got {number}")


class RunnerExecutor:
    """One in-process `Runner` on one thread: the executor when no pinned pool is asked for."""

    workers = 1

    def __init__(self, model: Model, config: SessionConfig | None = None, backend: str | None = None) -> None:
        from tfcpu.runtime.runner import Runner

        self._runner = Runner(model, config, backend=backend).activate()
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tfcpu-runner")
        self.batches = 0
        self.items = 0

    def submit(self, feeds: Mapping[str, np.ndarray]) -> concurrent.futures.Future[dict[str, np.ndarray]]:
        return self._thread.submit(self._run, dict(feeds))

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self._runner.run(feeds)
        self.batches += 1
        self.items += len(next(iter(feeds.values())))
        return out

    def instances(self) -> list[dict[str, Any]]:
        return [{"instance": 0, "batches": self.batches, "items": self.items, "restarts": 0}]

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self._runner.close()


def pool_instances(pool: Any) -> list[dict[str, Any]]:
    """Per-instance counters of a `tfcpu.Pool` for the server's metrics."""
    return [
        {"instance": s.index, "batches": s.batches, "items": s.items, "restarts": s.restarts}
        for s in pool.stats().instances
    ]


def _require() -> None:
    import importlib.util

    for module in ("starlette", "uvicorn", "prometheus_client"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(module, extra="serve", purpose="tfcpu serve runs an HTTP server")


def make_app(model: Model, executor: Any, options: ServeOptions | None = None) -> tuple[Any, Any]:
    """The ASGI app serving ``model`` on ``executor`` and its shared state (readiness, batcher, metrics)."""
    _require()
    from tfcpu.runtime.feeds import synthetic_batch
    from tfcpu.serve._app import AppState, build_app
    from tfcpu.serve._batcher import Batcher
    from tfcpu.serve._protocols import Signature

    opts = options or ServeOptions()
    batcher = Batcher(executor, max_batch_size=opts.max_batch_size, max_delay_ms=opts.max_delay_ms,
                      max_queue=opts.max_queue)  # fmt: skip
    shapes = dict(opts.warmup_shapes or {})
    for spec in model.inputs:  # a dynamic sequence length gets a small size for the warm-up
        if spec.shape and None in spec.shape[1:] and spec.node not in shapes and spec.name not in shapes:
            shapes[spec.name] = tuple(1 if d is None and i == 0 else (d or 8) for i, d in enumerate(spec.shape))

    def warmup() -> None:
        batch = synthetic_batch(model, min(opts.max_batch_size, 8), shapes=shapes or None)
        executor.submit(batch).result(timeout=600)

    state = AppState(
        name=opts.name,
        signature=Signature.of(model),
        batcher=batcher,
        max_body_bytes=opts.max_body_bytes,
        warmup=warmup,
        close=getattr(executor, "close", None),
        instances=getattr(executor, "instances", None) or (lambda: pool_instances(executor)),
    )
    return build_app(state), state


def serve(model: Model, options: ServeOptions | None = None, *, executor: Any = None, **executor_args: Any) -> None:
    """Serve ``model`` until SIGTERM/SIGINT (then drain: in-flight requests answered, workers stopped).

    Args:
        model: the model to serve.
        options: listening and batching (`ServeOptions`).
        executor: what runs batches (a `tfcpu.Pool`); default: `RunnerExecutor` in this process.
        executor_args: ``config``/``backend`` for the default executor.
    """
    _require()
    import uvicorn

    opts = options or ServeOptions()
    executor = executor if executor is not None else RunnerExecutor(model, **executor_args)
    app, _ = make_app(model, executor, opts)
    logger.info("serving %s on http://%s:%d", opts.name, opts.host, opts.port)
    uvicorn.run(app, host=opts.host, port=opts.port, log_level="warning",
                timeout_graceful_shutdown=int(opts.graceful_timeout) or None)  # fmt: skip


class BackgroundServer:
    """A server on a thread of this process: for notebooks and tests (``with start(...) as server:``).

    ``url`` is ``http://HOST:PORT`` with the port the OS gave when ``port=0``. Leaving the block (or
    `stop`) drains like SIGTERM does: in-flight requests answered, the executor closed.
    """

    def __init__(self, app: Any, state: Any, host: str, port: int, graceful_timeout: float) -> None:
        import threading

        import uvicorn

        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                timeout_graceful_shutdown=int(graceful_timeout) or None)  # fmt: skip
        self.server = uvicorn.Server(config)
        # uvicorn installs signal handlers only on the main thread: the caller's signals stay the caller's
        self.state = state
        self.host = host
        self._thread = threading.Thread(target=self.server.run, name="tfcpu-serve", daemon=True)
        self.port = port

    def start(self, timeout: float = 600.0) -> BackgroundServer:
        import time

        self._thread.start()
        deadline = time.monotonic() + timeout
        while not (self.server.started and self.state.ready):
            if not self._thread.is_alive():
                raise ConfigError("the server stopped while starting", where=f"{self.host}:{self.port}",
                                  hint="is the port in use? run with --debug for uvicorn's message")  # fmt: skip
            if time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"the server did not become ready within {timeout:.0f} s")
            time.sleep(0.02)
        sockets = [s for server in self.server.servers for s in server.sockets]
        self.port = int(sockets[0].getsockname()[1]) if sockets else self.port
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 60.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(model: Model, options: ServeOptions | None = None, *, executor: Any = None,
          **executor_args: Any) -> BackgroundServer:  # fmt: skip
    """`serve` on a background thread; returns once the server is ready (warm-up done)."""
    _require()
    opts = options or ServeOptions()
    executor = executor if executor is not None else RunnerExecutor(model, **executor_args)
    app, state = make_app(model, executor, opts)
    return BackgroundServer(app, state, opts.host, opts.port, opts.graceful_timeout).start()
