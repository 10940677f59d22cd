"""Size an actor pool from the cluster's nodes and their topologies, and run ``map_batches``.

`survey()` runs one small task on every alive node (pinned to that node with a hard
node-affinity strategy, ``num_cpus=0`` so it never waits for CPUs); the task detects the
node's `Topology` and builds the `InstancePlan` the actors will
build there. `predict()` then asks Ray for one actor per slot:

* each actor reserves ``num_cpus = max over nodes of (Ray CPUs of the node / slots of the
  node)``, so Ray's own placement never puts more actors on a node than it has slots
  (for a cluster started with ``ray start`` defaults this equals the logical CPUs of an
  instance);
* the pool size is the number of actors that fit that way, summed over nodes.

Fault tolerance is Ray Data's (see docs/scale-out.md): actors are created with
``max_restarts=-1`` and ``max_task_retries=-1`` unless you pass other values, so a crashed
actor process is restarted (it claims a free slot again: the dead process's lock went with
it) and the batch it was running is submitted again. A block's output is only kept when its
task finishes, so no row is lost or duplicated. Python exceptions raised by the model are
*not* retried by default (``DataContext.actor_task_retry_on_errors``); they fail the run.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tfcpu._lazy import import_optional
from tfcpu.errors import PlanError
from tfcpu.ray._payload import ModelPayload
from tfcpu.ray._predictor import METADATA_COLUMNS, InputColumns, Predictor, _check_plan_args, node_plan
from tfcpu.ray._report import ClusterReport, aggregate

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["NodeSlots", "pool_size", "predict", "predict_with_report", "survey"]

log = logging.getLogger(__name__)


def _ray() -> ModuleType:
    return import_optional(
        "ray", package="ray[data]", extra="ray", purpose="tfcpu.ray runs batch inference on a Ray cluster"
    )


@dataclass(frozen=True)
class NodeSlots:
    """What one node offers: its Ray CPUs and the instance slots of its plan."""

    node_id: str
    host: str
    ray_cpus: float
    slots: int
    cpulists: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "host": self.host,
            "ray_cpus": self.ray_cpus,
            "slots": self.slots,
            "cpulists": list(self.cpulists),
            "notes": list(self.notes),
        }


def _node_plan(cores_per_instance: int | None, instances: int | None, smt: bool) -> dict[str, Any]:
    """Runs on a node: its plan's slots (the same plan the actors build there)."""
    import socket

    plan = node_plan(cores_per_instance, instances, smt)
    return {
        "host": socket.gethostname(),
        "cpulists": [inst.cpulist for inst in plan.instances],
        "notes": list(plan.notes),
    }


def survey(
    *, cores_per_instance: int | None = None, instances: int | None = None, smt: bool = True
) -> tuple[NodeSlots, ...]:
    """Ask every alive node of the connected Ray cluster for its instance slots.

    Raises:
        PlanError: the plan is invalid on some node (e.g. ``cores_per_instance`` larger
            than a NUMA node there), or no node is alive.
    """
    _check_plan_args(cores_per_instance, instances)
    ray = _ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if not ray.is_initialized():
        ray.init()
    alive = [n for n in ray.nodes() if n.get("Alive")]
    if not alive:
        raise PlanError("the Ray cluster has no alive node", hint="start one: ray start --head")
    task = ray.remote(num_cpus=0)(_node_plan)
    refs = [
        task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
            cores_per_instance, instances, smt
        )
        for n in alive
    ]
    try:
        answers = ray.get(refs)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, PlanError):
            raise cause from exc
        raise
    out = []
    for node, answer in zip(alive, answers, strict=True):
        out.append(
            NodeSlots(
                node_id=str(node["NodeID"]),
                host=str(answer["host"]),
                ray_cpus=float(node.get("Resources", {}).get("CPU", 0.0)),
                slots=len(answer["cpulists"]),
                cpulists=tuple(answer["cpulists"]),
                notes=tuple(answer["notes"]),
            )
        )
    return tuple(out)


def pool_size(nodes: tuple[NodeSlots, ...], num_cpus: float | None = None) -> tuple[int, float]:
    """``(actors, num_cpus per actor)`` so that Ray places at most one actor per slot on each node."""
    usable = [n for n in nodes if n.slots > 0 and n.ray_cpus > 0]
    if not usable:
        raise PlanError("no node has both instance slots and Ray CPUs", hint="check `ray status`")
    if num_cpus is None:
        num_cpus = max(n.ray_cpus / n.slots for n in usable)
    if num_cpus <= 0:
        raise PlanError("num_cpus per actor must be > 0", why=f"got {num_cpus}")
    actors = sum(min(n.slots, math.floor(n.ray_cpus / num_cpus + 1e-9)) for n in usable)
    if actors < 1:
        raise PlanError(
            f"no actor fits with num_cpus={num_cpus:g}",
            why=f"the largest node has {max(n.ray_cpus for n in usable):g} Ray CPUs",
            hint="leave num_cpus unset",
        )
    return actors, float(num_cpus)


def predict(
    dataset: Any,
    model: Any,
    *,
    cores_per_instance: int | None = None,
    instances: int | None = None,
    batch_size: int = 32,
    input_columns: InputColumns = None,
    output_prefix: str = "",
    keep_columns: bool = True,
    smt: bool = True,
    metadata: bool = False,
    actors: int | None = None,
    num_cpus: float | None = None,
    lock_dir: str | None = None,
    claim_timeout: float = 60.0,
    pin: bool = True,
    predictor_class: type[Predictor] = Predictor,
    backend: str | None = None,
    backend_options: dict[str, Any] | None = None,
    **map_batches_kwargs: Any,
) -> Any:
    """Run ``model`` over ``dataset`` with one pinned tfcpu instance per slot of every node.

    Args:
        dataset: a ``ray.data.Dataset``. Ray hands each actor whole blocks: give the
            dataset at least as many blocks as actors (``override_num_blocks=`` when
            reading, or ``dataset.repartition(n)``).
        model: a `Model` (e.g. optimised and quantised once on the driver),
            a `ModelPayload`, or a path `tfcpu.load()` reads on the driver. It is
            put in the object store once; actors fetch it from there.
        cores_per_instance: cores per pinned instance on each node (give this or ``instances``).
        instances: instances per node (give this or ``cores_per_instance``).
        batch_size: rows per model run.
        input_columns: see `Predictor`.
        output_prefix: see `Predictor`.
        keep_columns: see `Predictor`.
        metadata: see `Predictor`.
        lock_dir: see `Predictor`.
        claim_timeout: see `Predictor`.
        pin: see `Predictor`.
        actors: pool size (default: from `survey()`, one per slot that Ray can place).
        predictor_class: `Predictor` or a subclass of it.
        num_cpus: Ray CPUs each actor reserves (default: see `pool_size()`).
        backend: the runner backend of every actor (``"tensorflow"`` default, or another registered
            one, OpenVINO: each actor converts and compiles the model with its instance's threads);
            checked here, before Ray starts.
        backend_options: that backend's options (see `tfcpu.Runner`).
        map_batches_kwargs: passed to ``map_batches`` (e.g. ``max_restarts=``).

    Returns:
        The lazy mapped ``Dataset`` (outputs as columns; see `Predictor`).
    """
    return _map(
        dataset,
        model,
        cores_per_instance=cores_per_instance,
        instances=instances,
        batch_size=batch_size,
        input_columns=input_columns,
        output_prefix=output_prefix,
        keep_columns=keep_columns,
        smt=smt,
        metadata=metadata,
        actors=actors,
        num_cpus=num_cpus,
        lock_dir=lock_dir,
        claim_timeout=claim_timeout,
        pin=pin,
        predictor_class=predictor_class,
        backend=backend,
        backend_options=backend_options,
        **map_batches_kwargs,
    )[0]


def _map(
    dataset: Any,
    model: Any,
    *,
    cores_per_instance: int | None,
    instances: int | None,
    batch_size: int,
    input_columns: InputColumns,
    output_prefix: str,
    keep_columns: bool,
    smt: bool,
    metadata: bool,
    actors: int | None,
    num_cpus: float | None,
    lock_dir: str | None,
    claim_timeout: float,
    pin: bool,
    predictor_class: type[Predictor],
    backend: str | None = None,
    backend_options: dict[str, Any] | None = None,
    **map_batches_kwargs: Any,
) -> tuple[Any, int]:
    _check_plan_args(cores_per_instance, instances)
    if backend is not None:
        from tfcpu.runtime.backends._base import check_backend

        check_backend(backend, where="tfcpu.ray.predict(backend=...)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise PlanError("batch_size must be a positive integer", why=f"got {batch_size!r}")
    ray = _ray()
    nodes = survey(cores_per_instance=cores_per_instance, instances=instances, smt=smt)
    fitted, per_actor = pool_size(nodes, num_cpus)
    size = fitted if actors is None else actors
    if size > fitted:
        log.warning("%d actors requested but only %d fit one per slot; extra actors will wait for a slot", size, fitted)
    log.info(
        "tfcpu.ray: %d actor(s), %g Ray CPU(s) each, over %d node(s): %s",
        size,
        per_actor,
        len(nodes),
        "; ".join(f"{n.host}: {n.slots} slot(s) {list(n.cpulists)}" for n in nodes),
    )
    ref = ray.put(ModelPayload.coerce(model))
    kwargs = {
        "model": ref,
        "cores_per_instance": cores_per_instance,
        "instances": instances,
        "smt": smt,
        "input_columns": input_columns,
        "output_prefix": output_prefix,
        "keep_columns": keep_columns,
        "metadata": metadata,
        "lock_dir": lock_dir,
        "claim_timeout": claim_timeout,
        "pin": pin,
        "backend": backend,
        "backend_options": dict(backend_options or {}),
    }
    mapped = dataset.map_batches(
        predictor_class,
        fn_constructor_kwargs=kwargs,
        compute=ray.data.ActorPoolStrategy(size=size),
        num_cpus=per_actor,
        batch_size=batch_size,
        batch_format="numpy",
        **map_batches_kwargs,
    )
    return mapped, size


_PREDICT_DEFAULTS: dict[str, Any] = {
    name: p.default
    for name, p in inspect.signature(predict).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY
}


def predict_with_report(
    dataset: Any, model: Any, *, keep_metadata: bool = False, **kwargs: Any
) -> tuple[Any, ClusterReport]:
    """`predict()`, materialized, plus a per-node `ClusterReport`.

    The report is computed from the output rows' metadata columns, so retried batches
    count once. ``keep_metadata=False`` drops the ``tfcpu_*`` columns from the returned
    dataset. Other arguments are `predict()`'s.
    """
    kwargs["metadata"] = True
    start = time.perf_counter()
    mapped, actors = _map(dataset, model, **{**_PREDICT_DEFAULTS, **kwargs})
    materialized = mapped.materialize()
    seconds = time.perf_counter() - start
    parts: dict[str, list[np.ndarray]] = {c: [] for c in METADATA_COLUMNS}
    # Read the materialised blocks as they are and pick the columns here: a select_columns()
    # first would start a new Ray Data execution, which cost 3-4 s per call on a 2-CPU node.
    for batch in materialized.iter_batches(batch_format="numpy", batch_size=None):
        for col in METADATA_COLUMNS:
            parts[col].append(np.asarray(batch[col]))
    columns = {c: np.concatenate(v) if v else np.empty(0) for c, v in parts.items()}
    stats = materialized.stats() if log.isEnabledFor(logging.DEBUG) else ""
    if stats:
        log.debug("%s", stats)
    report = aggregate(columns, seconds=seconds, actors=actors, pinned=bool(kwargs.get("pin", True)))
    if not keep_metadata:
        materialized = materialized.drop_columns(list(METADATA_COLUMNS)).materialize()
    return materialized, report
