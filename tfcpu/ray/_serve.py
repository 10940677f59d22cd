"""Online inference on Ray Serve: one pinned replica per slot of every node's plan, batched with ``@serve.batch``.

`serve()` deploys a model as a Ray Serve application (``pip install "tfcpu[ray]"``):

* placement is `tfcpu.ray.predict()`'s: `survey()` asks every node for its `InstancePlan`,
  `pool_size()` turns the slots into a replica count and the Ray CPUs each replica reserves, so Ray
  places at most one replica per slot on a node;
* each replica (`ServeReplica`, in its own Ray actor process) wraps a `Predictor`: it claims a slot
  through the node-local lock file, pins every thread of its process to the slot's CPUs, sets the
  instance's thread variables and, for INT8/BF16 graphs, ``TF_ENABLE_ONEDNN_OPTS=1``
  (`tfcpu.session.precision`) before TensorFlow starts, then opens one session with the
  instance's intra/inter-op threads and runs one warm-up batch before it reports ready;
* requests are merged with ``@serve.batch`` (``max_batch_size`` counts *rows*, through
  ``batch_size_fn``; ``batch_wait_timeout_s`` is the longest the first request waits for others);
  each caller gets its own rows back;
* the replica is its own HTTP ingress and speaks what ``tfcpu serve`` speaks (the decoders and
  encoders of `tfcpu.serve._protocols`): KServe v2 (``/v2/...``) and TF Serving REST
  (``/v1/models/NAME:predict``). Python callers can also use the handle:
  ``deployment.handle.infer.remote({"x": array})``.

Why the replica is the ingress (no separate ingress deployment): Ray Serve's proxy already balances
HTTP requests over replicas, so one hop is enough; a separate ingress would add an actor process
per node (memory and CPU next to the pinned replicas) and a second serialisation of every tensor.
JSON decoding runs on the replica's own cores, which is the work the replica's CPUs are reserved for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tfcpu._lazy import import_optional
from tfcpu.errors import ConfigError, PlanError, RunnerError
from tfcpu.ray._payload import ModelPayload
from tfcpu.ray._predictor import Predictor, _check_plan_args, _node_id, column_name, process_cpus

if TYPE_CHECKING:
    from types import ModuleType

    from tfcpu.ray._cluster import NodeSlots
    from tfcpu.serve._protocols import Signature

__all__ = ["ReplicaStats", "ServeDeployment", "ServeReplica", "serve"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def _serve_module() -> ModuleType:
    return import_optional(
        "ray.serve", package="ray[serve]", extra="ray", purpose="tfcpu.ray.serve deploys a model on Ray Serve"
    )


@dataclass(frozen=True)
class ReplicaStats:
    """What one replica reports: where it runs, the CPUs its process may use, and its batching counters.

    ``cpus`` is read from ``/proc`` at call time (the union over every thread of the replica's process),
    so it shows the pinning as the kernel sees it, not as planned. ``merged_batches`` counts model runs
    that served more than one request.
    """

    replica: str
    node_id: str
    host: str
    pid: int
    slot: int
    cpus: tuple[int, ...]
    pinned: bool
    requests: int
    batches: int
    rows: int
    merged_batches: int
    max_batch_requests: int
    max_batch_rows: int

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["cpus"] = list(self.cpus)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplicaStats:
        values = {k: data[k] for k in cls.__dataclass_fields__}
        values["cpus"] = tuple(int(c) for c in data["cpus"])
        return cls(**values)


@dataclass
class _Counters:
    requests: int = 0
    batches: int = 0
    rows: int = 0
    merged_batches: int = 0
    max_batch_requests: int = 0
    max_batch_rows: int = 0


def _rows(item: Mapping[str, np.ndarray]) -> int:
    for arr in item.values():
        return int(arr.shape[0]) if arr.ndim else 1
    return 0


def _batch_rows(items: list[Mapping[str, np.ndarray]]) -> int:
    return sum(_rows(i) for i in items)


def _group_key(item: Mapping[str, np.ndarray]) -> tuple[Any, ...]:
    """Requests can share a model run when every input has the same dtype and non-batch dimensions."""
    return tuple((name, arr.dtype.str, arr.shape[1:]) for name, arr in sorted(item.items()))


class ServeReplica:
    """One Ray Serve replica: a pinned `Predictor` behind ``@serve.batch`` and both REST protocols.

    Constructed by Ray Serve in the replica's actor process (see `serve()` for the arguments); the
    slot claim, pinning, thread variables and oneDNN decision all happen before TensorFlow starts.
    """

    def __init__(
        self,
        model: Any,
        *,
        name: str,
        signature: Signature,
        needs_onednn: bool,
        onednn: bool | None,
        cores_per_instance: int | None,
        instances: int | None,
        smt: bool,
        lock_dir: str | None,
        claim_timeout: float,
        pin: bool,
        backend: str | None,
        backend_options: Mapping[str, Any] | None,
        max_batch_size: int,
        batch_wait_timeout_s: float,
        max_body_bytes: int,
        warmup: bool = True,
    ) -> None:
        from tfcpu.session.precision import decide_onednn, prepare_process

        serve = _serve_module()
        # TF_ENABLE_ONEDNN_OPTS is read once, when TensorFlow is imported: decide before the Predictor loads it.
        prepare_process(decide_onednn(needs_onednn=needs_onednn, explicit=onednn), where=f"Ray Serve replica {name}")
        self.name = name
        self.signature = signature
        self.max_batch_size = max_batch_size
        self.max_body_bytes = max_body_bytes
        self._predictor = Predictor(
            model,
            cores_per_instance=cores_per_instance,
            instances=instances,
            smt=smt,
            input_columns={spec.name: spec.name for _, spec in signature.inputs},
            keep_columns=False,
            lock_dir=lock_dir,
            claim_timeout=claim_timeout,
            pin=pin,
            backend=backend,
            backend_options=backend_options,
        )
        self._columns = tuple((column_name(spec.name), spec.name) for _, spec in signature.outputs)
        # One thread runs the model: Predictor re-pins it if Ray created it before the process was pinned.
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tfcpu-serve-replica")
        self._counters = _Counters()
        self._batched = serve.batch(
            max_batch_size=max_batch_size,
            batch_wait_timeout_s=batch_wait_timeout_s,
            batch_size_fn=_batch_rows,
        )(self._run_batch)
        self._replica = _replica_id()
        self._node = _node_id()
        self._host = socket.gethostname()
        if warmup:
            from tfcpu.runtime.feeds import synthetic_batch

            self._run(synthetic_batch(self._predictor.model, min(max_batch_size, 8)))
        log.info("replica %s of %s ready: %r", self._replica, name, self._predictor)

    # -- the model ---------------------------------------------------------------------------
    def _run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One model run (on the replica's model thread): arrays by input tensor -> by output tensor."""
        out = self._predictor(dict(feeds))
        return {tensor: out[col] for col, tensor in self._columns}

    async def _run_async(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._run, feeds)

    async def _run_batch(self, items: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """``@serve.batch``: one model run per group of requests with equal shapes; rows split back per caller."""
        results: list[dict[str, np.ndarray] | None] = [None] * len(items)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault(_group_key(item), []).append(i)
        for members in groups.values():
            feeds = {name: np.concatenate([items[i][name] for i in members]) for name in items[members[0]]}
            outputs = await self._run_async(feeds)
            self._count(len(members), _rows(feeds))
            start = 0
            for i in members:
                stop = start + _rows(items[i])
                results[i] = {tensor: value[start:stop] for tensor, value in outputs.items()}
                start = stop
        return [r for r in results if r is not None]

    def _count(self, requests: int, rows: int) -> None:
        c = self._counters
        c.batches += 1
        c.rows += rows
        c.merged_batches += requests > 1
        c.max_batch_requests = max(c.max_batch_requests, requests)
        c.max_batch_rows = max(c.max_batch_rows, rows)

    async def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._counters.requests += 1
        if _rows(feeds) > self.max_batch_size:  # larger than any batch: runs alone (serve.batch would refuse it)
            outputs = await self._run_async(feeds)
            self._count(1, _rows(feeds))
            return outputs
        result: dict[str, np.ndarray] = await self._batched(feeds)
        return result

    # -- the handle API ----------------------------------------------------------------------
    async def infer(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Arrays by input key (the protocols' names, e.g. ``"x"``) -> arrays by output key; batched like HTTP."""
        from tfcpu.serve._protocols import BadRequest

        try:
            feeds = self.signature.check(inputs)
        except BadRequest as exc:
            raise ConfigError(str(exc), where=f"Ray Serve deployment {self.name}") from None
        outputs = await self._infer(feeds)
        return {key: outputs[spec.name] for key, spec in self.signature.outputs}

    def stats(self) -> dict[str, Any]:
        """This replica's `ReplicaStats` as a dict (`ServeDeployment.replica_stats()` collects them)."""
        p = self._predictor
        return ReplicaStats(
            replica=self._replica,
            node_id=self._node,
            host=self._host,
            pid=os.getpid(),
            slot=p.instance.index if p.pinned else -1,
            cpus=process_cpus(),
            pinned=p.pinned,
            **vars(self._counters),
        ).to_dict()

    # -- HTTP ----------------------------------------------------------------------------------
    async def __call__(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        path = str(request.scope.get("path", request.url.path))
        root = str(request.scope.get("root_path") or "")
        if root and path.startswith(root):
            path = path[len(root) :]
        path = "/" + path.strip("/")
        parts = path.strip("/").split("/")
        method = request.method
        if path == "/v2/health/live":
            return JSONResponse({"live": True})
        if path == "/v2/health/ready":
            return JSONResponse({"ready": True})
        if path == "/v2":
            from tfcpu import __version__

            return JSONResponse({"name": "tfcpu-ray-serve", "version": __version__, "extensions": []})
        if len(parts) >= 3 and parts[:2] == ["v2", "models"]:
            if parts[2] != self.name:
                return _error(404, f"unknown model {parts[2]!r}; this deployment serves {self.name!r}")
            rest = parts[3:]
            if not rest and method == "GET":
                sig = self.signature
                return JSONResponse({"name": self.name, "versions": ["1"], "platform": "tfcpu",
                                     "inputs": sig.describe("inputs"), "outputs": sig.describe("outputs")})  # fmt: skip
            if rest == ["ready"] and method == "GET":
                return JSONResponse({"name": self.name, "ready": True})
            if rest == ["infer"] and method == "POST":
                return await self._kserve(request)
        if len(parts) == 3 and parts[:2] == ["v1", "models"]:
            model, _, verb = parts[2].partition(":")
            if model != self.name:
                return _error(404, f"unknown model {model!r}; this deployment serves {self.name!r}")
            if method == "GET" and not verb:
                status = {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
                return JSONResponse({"model_version_status": [status]})
            if method == "POST" and verb == "predict":
                return await self._tfserving(request)
        return _error(404, f"no route {method} {path}")

    async def _body(self, request: Any) -> bytes | Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return _error(413, f"the body is {declared} bytes; the limit is {self.max_body_bytes} (max_body_bytes)")
        body: bytes = await request.body()
        if len(body) > self.max_body_bytes:
            return _error(413, f"the body is {len(body)} bytes; the limit is {self.max_body_bytes} (max_body_bytes)")
        return body

    async def _kserve(self, request: Any) -> Any:
        from tfcpu.serve._protocols import decode_kserve, encode_kserve

        header = request.headers.get("inference-header-content-length")
        length = int(header) if header and header.isdigit() else None
        return await self._answer(
            request,
            lambda body: decode_kserve(body, length, self.signature),
            lambda d, out: encode_kserve(self.name, self.signature, out, d),
        )

    async def _tfserving(self, request: Any) -> Any:
        from tfcpu.serve._protocols import decode_tfserving, encode_tfserving

        return await self._answer(
            request,
            lambda body: decode_tfserving(body, self.signature),
            lambda d, out: encode_tfserving(self.signature, out, d.form),
        )

    async def _answer(self, request: Any, decode: Any, encode: Any) -> Any:
        """One request of either protocol: body (413), decode (400), the batched run (500), encode."""
        from tfcpu.serve._protocols import BadRequest

        body = await self._body(request)
        if not isinstance(body, bytes):
            return body
        try:
            decoded = decode(body)
        except BadRequest as exc:
            return _error(400, str(exc))
        try:
            outputs = await self._infer(decoded.feeds)
        except Exception as exc:  # noqa: BLE001 - the model's failure, answered with its reason
            return _error(500, f"{type(exc).__name__}: {exc}")
        return encode(decoded, outputs).response()

    def __del__(self) -> None:
        thread = getattr(self, "_thread", None)
        if thread is not None:
            thread.shutdown(wait=False)


def _error(status: int, message: str) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


def _replica_id() -> str:
    try:
        from ray import serve

        return str(serve.get_replica_context().replica_id.unique_id)
    except Exception:  # noqa: BLE001 - outside Ray Serve (unit tests) there is no replica context
        return f"local-{os.getpid()}"


@dataclass
class ServeDeployment:
    """A running `serve()` application: its URL, its Ray Serve handle, and `shutdown()`.

    Attributes:
        name: the model's name in the URLs (``/v2/models/NAME``, ``/v1/models/NAME``).
        app_name: the Ray Serve application's name.
        url: ``http://HOST:PORT`` plus the route prefix (no trailing ``/``).
        replicas: how many replicas were asked for.
        num_cpus: Ray CPUs each replica reserves.
        nodes: the survey the placement was computed from.
        handle: the ``DeploymentHandle`` (``handle.infer.remote({...})``, ``handle.stats.remote()``).
    """

    name: str
    app_name: str
    url: str
    replicas: int
    num_cpus: float
    nodes: tuple[NodeSlots, ...]
    handle: Any = field(repr=False)
    started_serve: bool = field(default=False, repr=False)
    _closed: bool = field(default=False, repr=False)

    def replica_stats(self, *, timeout: float = 60.0, max_calls: int | None = None) -> tuple[ReplicaStats, ...]:
        """Every replica's `ReplicaStats`, sorted by slot.

        Ray Serve routes a handle call to one replica of its choosing (power of two choices, no
        locality preference for a driver's handle), so this calls ``stats`` until it has heard from
        ``replicas`` distinct replicas, at most ``max_calls`` times (default ``64 * replicas``) and
        ``timeout`` seconds; it returns what it heard then (check the length when it matters).
        """
        calls = max_calls if max_calls is not None else 64 * max(1, self.replicas)
        deadline = time.monotonic() + timeout
        seen: dict[str, ReplicaStats] = {}
        for _ in range(calls):
            left = deadline - time.monotonic()
            if left <= 0 or len(seen) >= self.replicas:
                break
            stats = ReplicaStats.from_dict(self.handle.stats.remote().result(timeout_s=left))
            seen[stats.replica] = stats  # the newest counters of that replica
        return tuple(sorted(seen.values(), key=lambda s: (s.host, s.slot, s.pid)))

    def shutdown(self) -> None:
        """Delete the application; stop Ray Serve too when `serve()` started it and no application is left."""
        if self._closed:
            return
        self._closed = True
        serve = _serve_module()
        serve.delete(self.app_name, _blocking=True)
        if self.started_serve and not serve.status().applications:
            serve.shutdown()

    def __enter__(self) -> ServeDeployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _serve_running() -> bool:
    import ray

    try:
        ray.get_actor("SERVE_CONTROLLER_ACTOR", namespace="serve")
    except ValueError:
        return False
    return True


def _model_parts(model: Any, onednn: bool | None) -> tuple[ModelPayload, Signature, bool]:
    """(payload for the replicas, the signature clients use, whether the graph needs oneDNN)."""
    from tfcpu.graph.model import Model
    from tfcpu.serve._protocols import Signature

    if isinstance(model, (str, os.PathLike)):
        from tfcpu.graph.load import load

        model = load(os.fspath(model))
    if isinstance(model, Model):
        return ModelPayload.from_model(model), Signature.of(model), model.needs_onednn
    if isinstance(model, ModelPayload):
        from tfcpu.graph.model import TensorSpec

        shell = Model(
            None,
            tuple(TensorSpec.from_dict(dict(s)) for s in model.inputs),
            tuple(TensorSpec.from_dict(dict(s)) for s in model.outputs),
            source=model.source,
        )
        return model, Signature.of(shell), bool(onednn)  # a payload's ops are not read without TensorFlow
    raise ConfigError(
        f"cannot serve a {type(model).__name__}",
        where="tfcpu.ray.serve",
        hint="pass a tfcpu Model (tfcpu.load(...)), a ModelPayload, or a path tfcpu.load() reads",
    )


def serve(
    model: Any,
    *,
    name: str = "model",
    cores_per_instance: int | None = None,
    instances_per_node: int | None = None,
    max_batch_size: int = 32,
    batch_wait_timeout_s: float = 0.005,
    route_prefix: str = "/",
    host: str = "127.0.0.1",
    port: int = 8000,
    blocking: bool = False,
    smt: bool = True,
    replicas: int | None = None,
    num_cpus: float | None = None,
    max_ongoing_requests: int | None = None,
    max_body_bytes: int = 64 * 1024 * 1024,
    lock_dir: str | None = None,
    claim_timeout: float = 60.0,
    pin: bool = True,
    onednn: bool | None = None,
    backend: str | None = None,
    backend_options: dict[str, Any] | None = None,
    app_name: str | None = None,
    deployment_options: dict[str, Any] | None = None,
) -> ServeDeployment:
    """Deploy ``model`` on Ray Serve as one pinned, batching replica per slot of every node's plan.

    Connects to the running Ray cluster (``ray.init()`` if needed) and starts Ray Serve's HTTP
    proxy on ``host:port`` if Serve is not running yet (a running Serve keeps its own address).

    Args:
        model: a `Model`, a `ModelPayload`, or a path `tfcpu.load()` reads on the driver. It is put in
            the object store once; replicas fetch it from there (the driver owns it: keep the driver
            alive while the application serves, e.g. ``blocking=True``).
        name: the model's name in the URLs (``/v2/models/NAME/infer``, ``/v1/models/NAME:predict``).
        cores_per_instance: cores per replica on each node (give this or ``instances_per_node``).
        instances_per_node: replicas per node (give this or ``cores_per_instance``).
        max_batch_size: rows one model run takes at most (requests are merged up to it).
        batch_wait_timeout_s: how long the first request of a batch waits for others.
        route_prefix: the application's URL prefix (``"/"``: the standard paths, so stock clients work).
        host: the address Ray Serve's proxy binds when this call starts Serve (loopback by default).
        port: that proxy's port.
        blocking: serve until Ctrl-C (then shut down) instead of returning at once.
        smt: give each replica its cores' SMT siblings.
        replicas: the replica count (default: one per slot Ray can place, see `pool_size()`).
        num_cpus: Ray CPUs each replica reserves (default: see `pool_size()`).
        max_ongoing_requests: requests one replica holds at once (default ``2 * max_batch_size``,
            so a batch can fill while another runs).
        max_body_bytes: the largest request body (413 beyond).
        lock_dir: see `Predictor`.
        claim_timeout: see `Predictor`.
        pin: see `Predictor` (``False``: plan threads, no pinning; for comparisons).
        onednn: force ``TF_ENABLE_ONEDNN_OPTS`` in the replicas (default: on when the graph needs it).
        backend: the runner backend of every replica (a key of `tfcpu.runtime.backends.BACKENDS`).
        backend_options: that backend's options.
        app_name: the Ray Serve application name (default ``name``).
        deployment_options: more ``serve.deployment`` options (e.g. ``health_check_period_s``).

    Returns:
        A `ServeDeployment` (``url``, ``handle``, ``replica_stats()``, ``shutdown()``), once every
        replica has claimed its slot, loaded the model and run one warm-up batch.

    Raises:
        ConfigError: a bad name, port, batch size, prefix or model.
        PlanError: the plan is invalid on some node, or no replica fits.
        MissingDependencyError: Ray Serve is not installed (``pip install "tfcpu[ray]"``).
    """
    from tfcpu.ray._cluster import pool_size, survey
    from tfcpu.serve import ServeOptions

    _check_plan_args(cores_per_instance, instances_per_node)
    ServeOptions(name=name, host=host, port=port, max_batch_size=max_batch_size,
                 max_delay_ms=batch_wait_timeout_s * 1000, max_body_bytes=max_body_bytes)  # fmt: skip
    if not route_prefix.startswith("/"):
        raise ConfigError(f"route_prefix {route_prefix!r} must start with '/'", hint='e.g. "/" or "/resnet50"')
    if backend is not None:
        from tfcpu.runtime.backends._base import check_backend

        check_backend(backend, where="tfcpu.ray.serve(backend=...)")
    if replicas is not None and (isinstance(replicas, bool) or int(replicas) < 1):
        raise PlanError("replicas must be a positive integer", why=f"got {replicas!r}")
    app = app_name or name
    if not _NAME.fullmatch(app):
        raise ConfigError(f"bad application name {app!r}", hint="letters, digits, '_', '.', '-'")
    payload, signature, needs_onednn = _model_parts(model, onednn)

    serve_mod = _serve_module()
    import ray

    nodes = survey(cores_per_instance=cores_per_instance, instances=instances_per_node, smt=smt)
    fitted, per_replica = pool_size(nodes, num_cpus)
    count = fitted if replicas is None else int(replicas)
    if count > fitted:
        log.warning("%d replicas asked for but only %d fit one per slot; extra replicas wait for a slot", count, fitted)
    started = not _serve_running()
    if started:
        serve_mod.start(http_options={"host": host, "port": port})
    else:
        log.info("Ray Serve is already running: its proxy keeps its own address (host/port not applied)")
    options: dict[str, Any] = {
        "name": "TfcpuReplica",
        "num_replicas": count,
        "ray_actor_options": {"num_cpus": per_replica},
        "max_ongoing_requests": max_ongoing_requests or 2 * max_batch_size,
        "max_constructor_retry_count": 3,  # a replica that cannot claim a slot or load the model fails fast
        **(deployment_options or {}),
    }
    deployment = serve_mod.deployment(ServeReplica, **options)
    bound = deployment.bind(
        ray.put(payload),
        name=name,
        signature=signature,
        needs_onednn=needs_onednn,
        onednn=onednn,
        cores_per_instance=cores_per_instance,
        instances=instances_per_node,
        smt=smt,
        lock_dir=lock_dir,
        claim_timeout=claim_timeout,
        pin=pin,
        backend=backend,
        backend_options=dict(backend_options or {}),
        max_batch_size=max_batch_size,
        batch_wait_timeout_s=batch_wait_timeout_s,
        max_body_bytes=max_body_bytes,
    )
    log.info(
        "tfcpu.ray.serve: %d replica(s) of %s, %g Ray CPU(s) each, over %d node(s): %s",
        count,
        name,
        per_replica,
        len(nodes),
        "; ".join(f"{n.host}: {n.slots} slot(s) {list(n.cpulists)}" for n in nodes),
    )
    try:
        handle = serve_mod.run(bound, name=app, route_prefix=route_prefix, blocking=False)
    except Exception as exc:
        if started:
            serve_mod.shutdown()
        raise RunnerError(
            f"Ray Serve could not start the application {app!r}",
            why=f"{type(exc).__name__}: {exc}",
            hint="the replicas' logs (ray logs / the dashboard) name the cause, e.g. a plan error on a node",
        ) from exc
    url = f"http://{host}:{port}{route_prefix.rstrip('/')}"
    out = ServeDeployment(name, app, url, count, per_replica, nodes, handle, started_serve=started)
    if blocking:
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            out.shutdown()
    return out
