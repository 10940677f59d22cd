"""``Predictor``: the callable class that ``Dataset.map_batches`` runs on each actor.

Life of one actor (a fresh Ray worker process):

1. ``__init__``: detect this machine's `Topology`, build the same
   `InstancePlan` every actor on the machine builds, claim one instance of it
   through a node-local lock file (`tfcpu.ray._slots`), pin every thread of the process
   to the instance's CPUs, set the instance's thread variables (``TF_NUM_*``, ``OMP_*``,
   ``KMP_*``) if TensorFlow has not started yet, then import TensorFlow, parse the model and
   open one session with the instance's intra/inter-op threads.
2. ``__call__(batch)``: map input columns to model inputs, run the session, add one column
   per model output.
3. When the actor exits (end of the dataset, ``ray.kill``, crash), the kernel releases the
   lock, so the slot is free for a restarted actor.

Column names
------------
Model inputs are read from columns named after the input tensor, sanitized (see
`column_name()`): ``"x:0"`` reads column ``x``; pass ``input_columns`` to map other
columns. Outputs are written to ``output_prefix + column_name(tensor)``: ``"probs:0"`` becomes
``probs``, ``"model/dense/BiasAdd:0"`` becomes ``model_dense_BiasAdd``, a second output
``"split:1"`` becomes ``split_1``.

With ``metadata=True`` each row also gets ``tfcpu_node`` (Ray node id), ``tfcpu_host``,
``tfcpu_pid``, ``tfcpu_slot`` (instance index), ``tfcpu_cpus`` (the CPUs that all threads
of the actor process are allowed to run on, read from ``/proc`` at call time),
``tfcpu_start``/``tfcpu_end`` (wall-clock bounds of the model run for the row's batch) and
``tfcpu_batch_rows``. `tfcpu.ray.predict_with_report()` aggregates them per node.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tfcpu.errors import ConfigError, PlanError, RunnerError, did_you_mean
from tfcpu.ray._payload import ModelPayload

if TYPE_CHECKING:
    from tfcpu.plan import InstancePlan
    from tfcpu.ray._slots import SlotClaim
    from tfcpu.runtime.runner import Runner

__all__ = ["METADATA_COLUMNS", "Predictor", "column_name", "pin_all_threads", "process_cpus"]

log = logging.getLogger(__name__)

METADATA_COLUMNS = (
    "tfcpu_node",
    "tfcpu_host",
    "tfcpu_pid",
    "tfcpu_slot",
    "tfcpu_cpus",
    "tfcpu_start",
    "tfcpu_end",
    "tfcpu_batch_rows",
)

InputColumns = str | Sequence[str] | Mapping[str, str] | None


def column_name(tensor: str, prefix: str = "") -> str:
    """The column for a tensor: ``node`` for ``node:0``, ``node_1`` for ``node:1``, other
    characters than letters, digits and ``_`` replaced by ``_``; ``prefix`` prepended."""
    node, sep, index = tensor.rpartition(":")
    if not sep or not index.isdigit():
        node, index = tensor, "0"
    base = node if index == "0" else f"{node}_{index}"
    return prefix + re.sub(r"[^0-9A-Za-z_]", "_", base.lstrip("^"))


def node_plan(cores_per_instance: int | None, instances: int | None, smt: bool) -> InstancePlan:
    """The instance plan of this node as every actor on it builds it (threads pinned with
    ``sched_setaffinity``, no memory binding), so that the driver's survey sees the same slots."""
    from tfcpu.plan import InstancePlan
    from tfcpu.topology import Topology

    return InstancePlan.for_topology(
        Topology.detect(),
        instances=instances,
        cores_per_instance=cores_per_instance,
        smt=smt,
        memory_binding=False,
        method="sched_setaffinity",
    )


def _thread_ids() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


def pin_all_threads(cpus: Iterable[int]) -> None:
    """Set the affinity of every thread of this process (threads created later inherit it).

    ``sched_setaffinity(0, ...)`` changes only the calling thread; a Ray worker already runs
    several threads, and Ray may call the actor from another one.
    """
    wanted = set(cpus)
    for tid in _thread_ids():
        try:
            os.sched_setaffinity(tid, wanted)
        except ProcessLookupError:  # the thread ended meanwhile
            continue
    os.sched_setaffinity(0, wanted)


def process_cpus() -> tuple[int, ...]:
    """The union of the CPUs every thread of this process may run on (from ``/proc``)."""
    from tfcpu.topology.cpulist import parse_cpulist

    seen: set[int] = set()
    for tid in _thread_ids():
        try:
            text = Path(f"/proc/self/task/{tid}/status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Cpus_allowed_list:"):
                seen.update(parse_cpulist(line.split(":", 1)[1].strip()))
    return tuple(sorted(seen or os.sched_getaffinity(0)))


class Predictor:
    """A pinned tfcpu instance for ``ray.data.Dataset.map_batches`` (a callable class).

    Args:
        model: a `ModelPayload` (see `ModelPayload.from_model()`), a Ray
            ``ObjectRef`` to one (what `tfcpu.ray.predict()` passes: the model is stored
            once in the object store), a path `tfcpu.load()` reads on the actor's node,
            or a `Model` (works, but unpickling a Model imports TensorFlow
            before the actor can set thread variables; threads and pinning still apply).
        cores_per_instance: cores per pinned instance on each machine (give this or
            ``instances``; see `tfcpu.InstancePlan.for_topology()`). Every actor on a
            machine must use the same values, so that they claim slots of the same plan.
        instances: instances per machine (give this or ``cores_per_instance``).
        smt: give each instance its cores' SMT siblings.
        input_columns: which columns feed the model: ``None`` (columns named like the inputs,
            sanitized), one column name (single-input model), a sequence in input order, or a
            mapping ``{column: input tensor name}``.
        output_prefix: prepended to every output column name.
        keep_columns: keep the batch's columns next to the outputs (default) or return only
            the outputs (and metadata).
        metadata: add the ``tfcpu_*`` columns (node, pid, CPUs, timing).
        lock_dir: directory for slot locks (default ``$TFCPU_RAY_LOCK_DIR`` or
            ``<tmp>/tfcpu-ray-slots``); must be local to the machine.
        claim_timeout: seconds to wait for a free slot before failing.
        pin: pin the actor (default). ``False`` keeps the plan's threads but no affinity and
            no slot claim — for comparisons only.
        backend: the runner backend every actor runs the model on (``"tensorflow"`` by default,
            or another registered backend such as OpenVINO): the actor's `Runner` gets it with the instance's threads.
        backend_options: the backend's options (e.g. ``{"hint": "latency"}``), passed unchanged.
    """

    def __init__(
        self,
        model: Any,
        *,
        cores_per_instance: int | None = None,
        instances: int | None = None,
        smt: bool = True,
        input_columns: InputColumns = None,
        output_prefix: str = "",
        keep_columns: bool = True,
        metadata: bool = False,
        lock_dir: str | None = None,
        claim_timeout: float = 60.0,
        pin: bool = True,
        backend: str | None = None,
        backend_options: Mapping[str, Any] | None = None,
    ) -> None:
        from tfcpu.runtime.backends._base import check_backend

        if backend is not None:
            check_backend(backend, where="tfcpu.ray (backend=...)")  # before a slot is claimed
        self.backend_name = backend
        self.backend_options = dict(backend_options or {})
        from tfcpu.ray._slots import claim_slot

        tf_started = "tensorflow" in sys.modules
        # a payload (what tfcpu.ray.predict sends) is read without TensorFlow: its oneDNN need is known now
        early = self._resolve(model) if isinstance(model, ModelPayload) or type(model).__name__ == "ObjectRef" else None
        plan = node_plan(cores_per_instance, instances, smt)
        self._claim: SlotClaim | None = None
        if pin:
            self._claim = claim_slot(plan, lock_dir=lock_dir, timeout=claim_timeout)
            instance = self._claim.instance
            pin_all_threads(instance.cpus)
        else:
            instance = plan.instances[0]
        self.instance = instance
        self.pinned = pin
        if tf_started:
            log.warning(
                "TensorFlow was imported in this actor before tfcpu could set %s; intra/inter-op threads "
                "still apply through the session config (pass a ModelPayload, not a Model, to avoid this)",
                ", ".join(sorted(instance.env)),
            )
        else:
            instance.session_config().apply()  # the plan's variables, set through the one writer (apply)
        if early is not None and early.needs_onednn:  # INT8/BF16 kernels: oneDNN on before TensorFlow starts
            from tfcpu.session.precision import decide_onednn, prepare_process

            prepare_process(decide_onednn(needs_onednn=True), where=f"tfcpu.ray actor {instance.index}")
        payload = early if early is not None else self._resolve(model)
        self.model = payload.to_model() if isinstance(payload, ModelPayload) else payload
        self._feeds = self._map_inputs(input_columns)
        self._outputs = self._map_outputs(output_prefix)
        self.keep_columns = keep_columns
        self.metadata = metadata
        self._runner = self._open_runner()
        self._node = _node_id()
        self._host = socket.gethostname()
        log.info(
            "actor pid %d: instance %d on CPUs %s (%s), model %s",
            os.getpid(),
            instance.index,
            instance.cpulist,
            "pinned" if pin else "not pinned",
            self.model.source,
        )

    # -- construction helpers -------------------------------------------------------------
    @staticmethod
    def _resolve(model: Any) -> Any:
        from tfcpu.graph.model import Model

        if isinstance(model, (ModelPayload, Model)):
            return model
        if isinstance(model, (str, os.PathLike)):
            return ModelPayload.coerce(model)
        if type(model).__name__ == "ObjectRef":
            import ray

            got = ray.get(model)
            if isinstance(got, (ModelPayload, Model)):
                return got
            model = got
        raise ConfigError(
            f"cannot use a {type(model).__name__} as the model",
            where="tfcpu.ray.Predictor",
            hint="pass ModelPayload.from_model(model), ray.put(payload), or a path",
        )

    def _map_inputs(self, input_columns: InputColumns) -> tuple[tuple[str, str], ...]:
        """(column, input tensor name) pairs in model input order."""
        specs = self.model.inputs
        names = [s.name for s in specs]
        if input_columns is None:
            return tuple((column_name(s.name), s.name) for s in specs)
        if isinstance(input_columns, str):
            if len(specs) != 1:
                raise ConfigError(
                    f"input_columns={input_columns!r} names one column but the model has {len(specs)} inputs",
                    where=self.model.source,
                    hint=f"pass a mapping {{column: input}} for the inputs {names}",
                )
            return ((input_columns, specs[0].name),)
        if isinstance(input_columns, Mapping):
            from tfcpu.graph.model import tensor_name

            pairs = []
            for col, tensor in input_columns.items():
                full = tensor_name(str(tensor))
                if full not in names:
                    raise ConfigError(
                        f"input_columns maps {col!r} to unknown input {tensor!r}",
                        where=self.model.source,
                        why=f"the model's inputs are {names}",
                        hint=did_you_mean(str(tensor), names) or "use the input tensor names",
                    )
                pairs.append((str(col), full))
            missing = [n for n in names if n not in {t for _, t in pairs}]
            if missing:
                raise ConfigError(f"input_columns does not feed {missing}", where=self.model.source)
            order = {n: i for i, n in enumerate(names)}
            return tuple(sorted(pairs, key=lambda p: order[p[1]]))
        cols = list(input_columns)
        if len(cols) != len(specs):
            raise ConfigError(
                f"input_columns lists {len(cols)} columns for {len(specs)} model inputs",
                where=self.model.source,
                hint=f"one column per input, in the order {names}",
            )
        return tuple((str(c), s.name) for c, s in zip(cols, specs, strict=True))

    def _map_outputs(self, prefix: str) -> tuple[tuple[str, str], ...]:
        pairs = tuple((t.name, column_name(t.name, prefix)) for t in self.model.outputs)
        cols = [c for _, c in pairs]
        dupes = sorted({c for c in cols if cols.count(c) > 1})
        if dupes:
            raise ConfigError(
                f"outputs map to the same column(s) {dupes}",
                where=self.model.source,
                why="column names are sanitized tensor names",
                hint="load the model with fewer or differently named outputs",
            )
        return pairs

    def _open_runner(self) -> Runner:
        from tfcpu.runtime.runner import Runner

        config = self.instance.session_config()
        runner = Runner(
            self.model,
            config,
            backend=self.backend_name,
            options=self.backend_options,
            name=f"ray-instance-{self.instance.index}",
        )
        return runner.activate()

    # -- the batch function -----------------------------------------------------------------
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.pinned and self._claim is not None and set(os.sched_getaffinity(0)) != set(self.instance.cpus):
            # Ray may call from a thread it created before pinning; pin it too.
            os.sched_setaffinity(0, self.instance.cpus)
        feed = {}
        for col, tensor in self._feeds:
            if col not in batch:
                raise ConfigError(
                    f"the batch has no column {col!r} for model input {tensor!r}",
                    where=self.model.source,
                    why=f"the batch's columns are {sorted(batch)}",
                    hint=did_you_mean(col, list(batch)) or "pass input_columns= to map columns to inputs",
                )
            feed[tensor] = batch[col]
        rows = len(next(iter(batch.values()))) if batch else 0
        start = time.time()
        outputs = self._runner.run(feed)
        end = time.time()
        out: dict[str, np.ndarray] = dict(batch) if self.keep_columns else {}
        for tensor, col in self._outputs:
            value = np.asarray(outputs[tensor])
            if value.ndim == 0 or value.shape[0] != rows:
                raise RunnerError(
                    f"output {tensor!r} cannot be a column",
                    where=self.model.source,
                    why=f"it has shape {value.shape} for a batch of {rows} rows; a column needs one value per row",
                    hint="load the model with per-row outputs only (outputs=...)",
                )
            if col in out:
                raise ConfigError(
                    f"output column {col!r} would overwrite an input column",
                    where=self.model.source,
                    hint="pass output_prefix=, e.g. 'pred_'",
                )
            out[col] = value
        if self.metadata:
            from tfcpu.topology.cpulist import format_cpulist

            cpus = format_cpulist(process_cpus())
            out["tfcpu_node"] = np.full(rows, self._node, dtype=object)
            out["tfcpu_host"] = np.full(rows, self._host, dtype=object)
            out["tfcpu_pid"] = np.full(rows, os.getpid(), dtype=np.int64)
            out["tfcpu_slot"] = np.full(rows, self.instance.index if self.pinned else -1, dtype=np.int64)
            out["tfcpu_cpus"] = np.full(rows, cpus, dtype=object)
            out["tfcpu_start"] = np.full(rows, start, dtype=np.float64)
            out["tfcpu_end"] = np.full(rows, end, dtype=np.float64)
            out["tfcpu_batch_rows"] = np.full(rows, rows, dtype=np.int64)
        return out

    def __repr__(self) -> str:
        state = f"CPUs {self.instance.cpulist}" if self.pinned else "not pinned"
        return f"Predictor({self.model.source}, instance {self.instance.index}, {state})"


def _node_id() -> str:
    try:
        import ray

        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # noqa: BLE001 - outside Ray (unit tests) there is no node id
        return "local"


def _check_plan_args(cores_per_instance: int | None, instances: int | None) -> None:
    if (cores_per_instance is None) == (instances is None):
        raise PlanError(
            "give exactly one of cores_per_instance= or instances=",
            where="tfcpu.ray",
            hint="e.g. cores_per_instance=4 (the white paper's best for ResNet-50)",
        )
