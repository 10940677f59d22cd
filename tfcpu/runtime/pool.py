"""``Pool``: long-lived pinned workers, one per `Instance` of an `InstancePlan`, fed from Python.

Section 7's speed (several pinned instances beat one big one) for a stream of real batches inside
one program, instead of a benchmark that starts, measures and exits (`Runner.multi_instance`)::

    plan = tfcpu.InstancePlan.for_topology(instances=2)
    with tfcpu.Pool(model, plan) as pool:                 # workers start once, pinned, warm
        future = pool.submit(batch)                       # -> concurrent.futures.Future of {output: array}
        for outputs in pool.map(batches):                 # outputs in input order, bounded in-flight work
            ...
        outputs = await pool.asubmit(batch)               # asyncio: asubmit / amap
        stats = pool.stats()                              # PoolStats: per instance and in total

How it works:

* every worker is ``python -P -m tfcpu.runtime._pool_worker`` started inside the plan's pinning
  prefix (numactl → taskset → the ``sched_setaffinity`` trampoline, `pinned_argv`), in its own
  process group, with its Instance's **whole** `SessionConfig` serialised (``to_dict``) and applied
  in the child before TensorFlow starts: threads, the oneDNN choice (`decide_onednn`: an INT8 graph
  gets oneDNN on), KMP/OMP, frozen weights, the allocator (``LD_PRELOAD``), ITEX. Each worker
  reports what it sees (`WorkerReport`: pid, affinity, variables, threads, backend);
* the model is written once to the pool's temp dir in its own format (`tfcpu.formats`); each child
  loads it and runs it through a `Runner` in-process;
* tensors cross through shared memory: per worker, ``slots`` input segments (the parent's) and
  output segments (the worker's), grown on demand; only small JSON headers cross the pipes;
* one reader thread per worker answers futures and watches the worker: a worker that exits or does
  not answer a batch within ``timeout`` is ended and started again (up to ``max_restarts`` times);
  the batches it held fail with `InstanceError` naming the batch, the instance and the cause (exit
  signal, its last log lines), or go back to the queue once more with ``retries=1``. No wait is
  unbounded;
* `close()`, the ``with`` block, garbage collection and interpreter exit (``weakref.finalize``) end
  every process group (`end_groups`) and remove the shared memory and the temp dir; a worker whose
  parent vanished sees its request pipe close and exits. For SIGTERM/SIGHUP, run inside
  `tfcpu.stop_signals()` (every ``tfcpu`` command does) so they unwind like Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tfcpu._stop import deferred, end_groups, temp_dir
from tfcpu.errors import ConfigError, InstanceError, RunnerError
from tfcpu.graph.model import Model
from tfcpu.runtime._pool_stats import InstanceStats, PoolStats, latency
from tfcpu.runtime._pool_worker import attach, describe_tensors, layout, views
from tfcpu.runtime.feeds import normalise_feed

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.plan import Instance, InstancePlan
    from tfcpu.session.config import SessionConfig

__all__ = ["InstanceStats", "Pool", "PoolStats", "WorkerReport", "instance_config"]

log = logging.getLogger(__name__)

MARKER = "TFCPU_POOL_ID"
"""Set in every worker's environment to the pool's id (what a test or an operator looks for)."""

_POOL_IDS = itertools.count(1)
_LATENCIES = 100_000  # latencies kept per worker for the percentiles


@dataclass(frozen=True)
class WorkerReport:
    """What a worker process saw once it was ready (read in the child, not assumed by the parent).

    Attributes:
        index: the instance's index in the plan.
        pid: the worker's process id.
        cpus: the CPUs the plan gave the instance.
        affinity: the CPUs the process is allowed to run on (``sched_getaffinity`` in the child).
        method: how it was pinned (`tfcpu.plan.pinning.METHODS`).
        env: the managed variables (threads, KMP/OMP, oneDNN, ITEX, LD_PRELOAD...) as set in the child.
        threads: ``(intra, inter)`` of the config the child applied.
        config: that `SessionConfig`'s record (``SessionConfig.to_dict``).
        backend: the backend's ``describe()`` in the child.
        warm_ms: the warm-up batch's time.
        generation: 1 for the first process of this instance, +1 per restart.
    """

    index: int
    pid: int
    cpus: tuple[int, ...]
    affinity: tuple[int, ...]
    method: str
    env: Mapping[str, str]
    threads: tuple[int, int]
    config: Mapping[str, Any]
    backend: Mapping[str, Any]
    warm_ms: float
    generation: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "pid": self.pid,
            "cpus": list(self.cpus),
            "affinity": list(self.affinity),
            "method": self.method,
            "env": dict(self.env),
            "threads": list(self.threads),
            "config": dict(self.config),
            "backend": dict(self.backend),
            "warm_ms": self.warm_ms,
            "generation": self.generation,
        }


def instance_config(inst: Instance, config: SessionConfig | None) -> SessionConfig:
    """The whole `SessionConfig` of one worker: ``config``'s settings with the instance's threads and CPUs.

    Without ``config``: the instance's own (`Instance.session_config`). With it: its oneDNN choice,
    KMP block time, ITEX, allocator, frozen weights and extra variables are kept; intra/inter-op
    threads, ``OMP_NUM_THREADS``, ``KMP_AFFINITY`` and the CPUs come from the instance (pinning
    decides them), and the parent's environment no longer overrides them.
    """
    own = inst.session_config()
    if config is None:
        return own
    cfg = (
        config.with_trust_env(False)
        .with_intra_op_threads(inst.intra_op_threads)
        .with_inter_op_threads(inst.inter_op_threads)
        .with_omp_threads(own.omp)
        .with_kmp(affinity=own.kmp_affinity)
    )
    return dataclasses.replace(cfg, cpus=tuple(inst.cpus), budget=len(inst.cpus))


@dataclass(eq=False)
class _Job:
    seq: int
    label: str
    arrays: list[np.ndarray]
    items: int
    future: Future[dict[str, np.ndarray]]
    submitted: float
    attempts: int = 0
    started: bool = False
    slot: int = -1
    generation: int = 0
    sent: float = 0.0


@dataclass(eq=False)
class _Worker:
    inst: Instance
    config: SessionConfig
    env: dict[str, str]
    slots: int
    state: str = "starting"
    proc: subprocess.Popen[bytes] | None = None
    rx: Connection | None = None
    tx: Connection | None = None
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    free: list[int] = field(default_factory=list)
    in_flight: dict[int, _Job] = field(default_factory=dict)
    inputs: dict[int, SharedMemory] = field(default_factory=dict)
    outputs: dict[int, SharedMemory] = field(default_factory=dict)
    generation: int = 0
    prefix: str = ""
    restarts: int = 0
    made: int = 0
    kill_reason: str = ""
    report: WorkerReport | None = None
    thread: threading.Thread | None = None
    batches: int = 0
    items: int = 0
    failed: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCIES))
    computes: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCIES))

    @property
    def index(self) -> int:
        return self.inst.index

    def where(self) -> str:
        pid = self.proc.pid if self.proc is not None else 0
        return f"instance {self.index} (CPUs {self.inst.cpulist}, pid {pid})"


def _signal_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def _tail(path: Path, lines: int = 5) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


class _Core:
    """The pool's state, shared by its reader threads and its finalizer (it never refers to the Pool)."""

    def __init__(
        self,
        model: Model,
        plan: InstancePlan,
        configs: list[SessionConfig],
        envs: list[dict[str, str]],
        *,
        backend: str,
        backend_options: Mapping[str, Any],
        slots: int,
        retries: int,
        timeout: float,
        startup_timeout: float,
        max_restarts: int,
        warm: bool,
        pool_id: str,
    ) -> None:
        self.model = model
        self.plan = plan
        self.backend = backend
        self.backend_options = dict(backend_options)
        self.slots = slots
        self.retries = retries
        self.timeout = timeout
        self.startup_timeout = startup_timeout
        self.max_restarts = max_restarts
        self.warm = warm
        self.id = pool_id
        self.lock = threading.Lock()
        self.queue: deque[_Job] = deque()
        self.closed = False
        self.seq = itertools.count()
        self.ready_at = math.nan
        self.stack = contextlib.ExitStack()
        self.work: Path | None = None
        self.model_file: Path | None = None
        self.format = ""
        self.workers = [
            _Worker(inst, cfg, env, slots) for inst, cfg, env in zip(plan.instances, configs, envs, strict=True)
        ]

    # -- start-up -----------------------------------------------------------------------------
    def start(self) -> None:
        self.prepare()
        for w in self.workers:
            self.launch(w)
        deadline = time.monotonic() + self.startup_timeout
        for w in self.workers:
            self.await_ready(w, deadline)
        for w in self.workers:
            w.state = "ready"
            w.free = list(range(self.slots))
            w.thread = threading.Thread(target=self.read_loop, args=(w,), name=f"tfcpu-pool-{w.index}", daemon=True)
            w.thread.start()
        self.ready_at = time.monotonic()

    def prepare(self) -> None:
        """Make the pool's temp dir and write the model there in its own format (before any worker starts)."""
        from tfcpu import formats

        self.work = self.stack.enter_context(temp_dir("tfcpu-pool-"))
        own = formats.for_model(self.model)
        fmt = own
        if own.directory:  # a SavedModel's graph is written as the file format of the same artefact
            fmt = next(f for f in formats.FORMATS.values() if f.artefact == own.artefact and not f.directory)
        self.format = fmt.name
        self.model_file = self.model.save(self.work / f"model{fmt.suffixes[0]}", format=fmt.name)

    def spec(self, w: _Worker) -> dict[str, Any]:
        return {
            "index": w.index,
            "model": str(self.model_file),
            "format": self.format,
            "inputs": list(self.model.input_names),
            "outputs": list(self.model.output_names),
            "backend": self.backend,
            "backend_options": self.backend_options,
            "config": w.config.to_dict(),
            "prefix": w.prefix,
            "warm": self.warm,
        }

    def launch(self, w: _Worker) -> None:
        """Start (or start again) ``w``'s process, pinned, with its two pipe ends."""
        from tfcpu.runtime.multi import pinned_argv

        assert self.work is not None
        with w.send_lock:
            w.generation += 1
            w.prefix = f"tfp{os.getpid()}_{self.id}_{w.index}_{w.generation}_"
        spec_path = self.work / f"spec-{w.index}.json"
        spec_path.write_text(json.dumps(self.spec(w)))
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        argv = [sys.executable, "-P", "-m", "tfcpu.runtime._pool_worker", str(spec_path)]
        argv = pinned_argv(w.inst, self.plan.method, [*argv, str(to_child_r), str(from_child_w)])
        log_path = self.work / f"worker-{w.index}.log"
        try:
            with open(log_path, "ab") as log_file, deferred():  # a stop here would orphan the child
                w.proc = subprocess.Popen(
                    argv,
                    env=w.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=(to_child_r, from_child_w),
                )
        except BaseException:
            for fd in (to_child_r, to_child_w, from_child_r, from_child_w):
                os.close(fd)
            raise
        os.close(to_child_r)
        os.close(from_child_w)
        with w.send_lock:
            w.tx = Connection(to_child_w, readable=False)
        w.rx = Connection(from_child_r, writable=False)
        w.kill_reason = ""
        log.debug("pool %s: instance %d started, pid %d: %s", self.id, w.index, w.proc.pid, " ".join(argv))

    def cause(self, w: _Worker) -> str:
        """Why ``w``'s process ended: the kill reason or exit status, and its last log lines."""
        code = w.proc.poll() if w.proc is not None else None
        parts = [w.kill_reason] if w.kill_reason else []
        parts.append(_signal_text(code))
        assert self.work is not None
        tail = _tail(self.work / f"worker-{w.index}.log")
        if tail:
            parts.append("last lines: " + " | ".join(tail))
        return "; ".join(parts)

    def await_ready(self, w: _Worker, deadline: float) -> None:
        """Wait for ``w``'s ``ready`` (or its failure, exit, or the deadline): `InstanceError` unless ready."""
        why = self.wait_ready(w, deadline)
        if why:
            raise InstanceError(
                f"instance {w.index} of the pool did not start",
                where=f"{w.where()}, model {self.model.source}",
                why=why,
                hint="run the model with tfcpu.Runner in this process to see the full error, or raise "
                "startup_timeout for a model that takes long to load",
            )

    def wait_ready(self, w: _Worker, deadline: float) -> str:
        """Wait for ``w``'s ``ready``: ``""`` once it is, else why not (its process then ended)."""
        assert w.rx is not None and w.proc is not None
        while True:
            why = ""
            try:
                if w.rx.poll(0.05):
                    msg = json.loads(w.rx.recv_bytes())
                    if msg["op"] == "ready":
                        w.report = self._report(w, msg["report"])
                        return ""
                    why = str(msg.get("cause", msg))
            except (EOFError, OSError):
                w.proc.poll()
                why = self.cause(w)
            if not why and w.proc.poll() is not None:
                why = self.cause(w)
            if not why and time.monotonic() > deadline:
                w.kill_reason = f"not ready after {self.startup_timeout:g} s"
                self.end_process(w)
                why = self.cause(w)
            if not why and self.closed:
                why = "the pool was closed while it started"
            if why:
                self.end_process(w)
                return why

    def _report(self, w: _Worker, data: Mapping[str, Any]) -> WorkerReport:
        threads = data.get("threads") or (0, 0)
        return WorkerReport(
            index=w.index,
            pid=int(data["pid"]),
            cpus=tuple(w.inst.cpus),
            affinity=tuple(int(c) for c in data.get("affinity", ())),
            method=self.plan.method,
            env=dict(data.get("env", {})),
            threads=(int(threads[0]), int(threads[1])),
            config=dict(data.get("config", {})),
            backend=dict(data.get("backend", {})),
            warm_ms=float(data.get("warm_ms", 0.0)),
            generation=w.generation,
        )

    # -- the queue ----------------------------------------------------------------------------
    def usable(self) -> bool:
        return any(w.state in ("ready", "restarting") for w in self.workers)

    def enqueue(self, job: _Job) -> None:
        with self.lock:
            if self.closed:
                raise RunnerError("the pool is closed", where=self.model.source, hint="create a new Pool")
            if not self.usable():
                raise InstanceError(
                    "no instance of the pool is running",
                    where=self.model.source,
                    why="every worker failed and could not be started again",
                    hint="see pool.stats() and the errors of earlier batches; create a new Pool",
                )
            self.queue.append(job)
        self.pump()

    def pump(self) -> None:
        """Send queued jobs to ready workers with a free slot (the least loaded first)."""
        while True:
            with self.lock:
                if not self.queue or self.closed:
                    return
                ready = [w for w in self.workers if w.state == "ready" and w.free]
                if not ready:
                    return
                w = max(ready, key=lambda x: (len(x.free), -x.index))
                job = self.queue.popleft()
                if not job.started:
                    if not job.future.set_running_or_notify_cancel():
                        continue  # cancelled while queued
                    job.started = True
                job.slot = w.free.pop()
                job.attempts += 1
                job.generation = w.generation
                job.sent = time.monotonic()
                w.in_flight[job.seq] = job
            self.send(w, job)

    def send(self, w: _Worker, job: _Job) -> None:
        """Copy ``job``'s inputs into its slot's segment and send the header (dropped if the worker changed)."""
        offsets, size = layout(job.arrays)
        with w.send_lock:
            if w.generation != job.generation or w.in_flight.get(job.seq) is not job or w.tx is None:
                return  # the worker died since the slot was taken: the reader thread dealt with the job
            shm = w.inputs.get(job.slot)
            if shm is None or shm.size < size:
                if shm is not None:
                    shm.close()
                    shm.unlink()
                w.made += 1
                name = f"tfp{os.getpid()}_{self.id}_{w.index}_i{job.slot}_{w.made}"
                shm = SharedMemory(name=name, create=True, size=max(size + size // 4, 1 << 16))
                w.inputs[job.slot] = shm
            for arr, dst in zip(job.arrays, views(shm, describe_tensors(job.arrays, offsets)), strict=True):
                np.copyto(dst, arr, casting="no")
            header = {
                "op": "run",
                "id": job.seq,
                "slot": job.slot,
                "shm": shm.name,
                "inputs": describe_tensors(job.arrays, offsets),
            }
            with contextlib.suppress(OSError):  # a dead worker: its reader thread sees it
                w.tx.send_bytes(json.dumps(header).encode())

    # -- answers and faults -------------------------------------------------------------------
    def read_loop(self, w: _Worker) -> None:
        try:
            while True:
                if self.closed and not w.in_flight:
                    return
                rx, proc = w.rx, w.proc
                assert rx is not None and proc is not None
                try:
                    has = rx.poll(0.1)
                    raw = rx.recv_bytes() if has else None
                except (EOFError, OSError):
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=5)  # the pipe closes as the process ends
                    if not self.died(w):
                        return
                    continue
                if raw is not None:
                    self.answer(w, json.loads(raw))
                elif proc.poll() is not None:
                    if not self.died(w):
                        return
                else:
                    self.check_deadline(w)
        except BaseException as exc:  # a bug here must not leave futures waiting forever
            log.exception("pool %s: the reader of instance %d failed", self.id, w.index)
            with self.lock:
                w.state = "failed"
                jobs = list(w.in_flight.values())
                w.in_flight.clear()
            self.end_process(w)
            for job in jobs:
                _set_exception(job, RunnerError(f"{job.label} failed: the pool's reader failed", why=repr(exc)))
            self.fail_queue_if_unusable()

    def check_deadline(self, w: _Worker) -> None:
        with self.lock:
            oldest = min(w.in_flight.values(), key=lambda j: j.sent, default=None)
        if oldest is not None and time.monotonic() - oldest.sent > self.timeout and w.proc is not None:
            w.kill_reason = f"no answer to {oldest.label} within {self.timeout:g} s (timeout); the worker was killed"
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(w.proc.pid, signal.SIGKILL)

    def answer(self, w: _Worker, msg: Mapping[str, Any]) -> None:
        with self.lock:
            job = w.in_flight.pop(int(msg["id"]), None)
            if job is not None:
                w.free.append(job.slot)
        if job is None:
            return
        if msg["op"] == "done":
            try:
                outputs = self.read_outputs(w, job.slot, str(msg["shm"]), msg["outputs"])
            except Exception as exc:  # noqa: BLE001 - becomes this batch's error
                w.failed += 1
                _set_exception(job, RunnerError(f"{job.label}: the outputs could not be read", why=repr(exc)))
                self.pump()
                return
            now = time.monotonic()
            w.batches += 1
            w.items += job.items
            w.latencies.append(now - job.submitted)
            w.computes.append(float(msg.get("compute_s", math.nan)))
            self.pump()
            _set_result(job, outputs)
            return
        w.failed += 1
        self.pump()
        _set_exception(
            job,
            RunnerError(
                f"{job.label} failed on instance {w.index}",
                where=self.model.source,
                why=str(msg.get("cause", "")),
                hint="check the batch's shapes and dtypes against the model's inputs (model.inputs)",
            ),
        )

    def read_outputs(self, w: _Worker, slot: int, name: str, tensors: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        shm = w.outputs.get(slot)
        if shm is None or shm.name != name:
            if shm is not None:
                shm.close()
            shm = w.outputs[slot] = attach(name)
        arrays = [np.array(v, copy=True) for v in views(shm, tensors)]
        return dict(zip(self.model.output_names, arrays, strict=True))

    def died(self, w: _Worker) -> bool:
        """``w``'s process ended: fail or requeue its batches, start it again. False: its reader should stop."""
        cause = self.cause(w)
        with self.lock:
            jobs = sorted(w.in_flight.values(), key=lambda j: j.seq)
            w.in_flight.clear()
            w.free = []
            w.state = "closed" if self.closed else "restarting"
            again = [j for j in jobs if j.attempts <= self.retries and not self.closed]
            lost = [j for j in jobs if j not in again]
            self.queue.extendleft(reversed(again))
            w.failed += len(lost)
        self.end_process(w)
        if self.closed:
            for job in lost:
                _set_exception(job, RunnerError(f"{job.label} was not answered: the pool was closed"))
            return False
        log.warning("pool %s: %s ended (%s); %d batch(es) retried", self.id, w.where(), cause, len(again))
        for job in lost:
            _set_exception(
                job,
                InstanceError(
                    f"{job.label} failed: its worker died",
                    where=f"{w.where()}, model {self.model.source}",
                    why=cause,
                    hint="the worker was started again; pass retries=1 to Pool to run such batches once more",
                ),
            )
        self.pump()
        if w.restarts >= self.max_restarts:
            log.warning("pool %s: instance %d died %d times; not started again", self.id, w.index, w.restarts + 1)
            w.state = "failed"
            self.fail_queue_if_unusable()
            return False
        w.restarts += 1
        try:
            self.launch(w)
            self.await_ready(w, time.monotonic() + self.startup_timeout)
        except InstanceError as exc:
            log.warning("pool %s: instance %d could not be started again: %s", self.id, w.index, exc)
            w.state = "failed"
            self.fail_queue_if_unusable()
            return False
        with self.lock:
            if self.closed:
                w.state = "closed"
                return False
            w.free = list(range(self.slots))
            w.state = "ready"
        self.pump()
        return True

    def fail_queue_if_unusable(self) -> None:
        with self.lock:
            if self.usable():
                return
            jobs = list(self.queue)
            self.queue.clear()
        for job in jobs:
            _set_exception(
                job,
                InstanceError(
                    f"{job.label} was not run: no instance of the pool is left",
                    where=self.model.source,
                    why="every worker died and could not be started again",
                    hint="see the errors of earlier batches",
                ),
            )

    def end_process(self, w: _Worker) -> None:
        """End ``w``'s process group, close its pipes and its output segments (its input segments stay)."""
        with w.send_lock:
            tx, w.tx = w.tx, None
        if w.proc is not None:
            end_groups([w.proc])
        for conn in (tx, w.rx):
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.close()
        for shm in w.outputs.values():
            shm.close()
        w.outputs.clear()
        _unlink_prefix(w.prefix)

    # -- the end ------------------------------------------------------------------------------
    def shutdown(self, drain: float = 0.0) -> None:
        """Stop: fail what is queued, let in-flight batches finish for up to ``drain`` s, end every process."""
        with self.lock:
            already = self.closed
            self.closed = True
            queued = list(self.queue)
            self.queue.clear()
        for job in queued:
            if job.started:
                _set_exception(job, RunnerError(f"{job.label} was not run: the pool was closed"))
            else:
                job.future.cancel()
        if already and self.work is None:
            return
        for w in self.workers:
            with w.send_lock:
                if w.tx is not None:
                    with contextlib.suppress(OSError):
                        w.tx.send_bytes(b'{"op": "stop"}')
        deadline = time.monotonic() + drain
        for w in self.workers:
            if w.thread is not None and w.thread is not threading.current_thread():
                w.thread.join(timeout=max(deadline - time.monotonic(), 0.0))
        end_groups([w.proc for w in self.workers if w.proc is not None])
        for w in self.workers:
            with self.lock:
                jobs = list(w.in_flight.values())
                w.in_flight.clear()
            for job in jobs:
                _set_exception(job, RunnerError(f"{job.label} was not answered: the pool was closed"))
            self.end_process(w)
            w.state = "closed"
            for shm in w.inputs.values():
                shm.close()
                with contextlib.suppress(FileNotFoundError):
                    shm.unlink()
            w.inputs.clear()
        for w in self.workers:
            if w.thread is not None and w.thread is not threading.current_thread():
                w.thread.join(timeout=5.0)
        _unlink_prefix(f"tfp{os.getpid()}_{self.id}_")
        self.stack.close()
        self.work = None


def _unlink_prefix(prefix: str) -> None:
    """Remove the shared-memory segments whose names start with ``prefix`` (a dead worker's outputs)."""
    if not prefix:
        return
    shm_dir = Path("/dev/shm")
    try:
        names = [p.name for p in shm_dir.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return
    for name in names:
        with contextlib.suppress(OSError):
            (shm_dir / name).unlink()


def _set_result(job: _Job, outputs: dict[str, np.ndarray]) -> None:
    if not job.future.done():
        job.future.set_result(outputs)


def _set_exception(job: _Job, exc: BaseException) -> None:
    if not job.future.done():
        if not job.started:
            job.future.cancel()
            return
        job.future.set_exception(exc)


def _shutdown(core: _Core) -> None:
    """The finalizer (garbage collection, interpreter exit): no draining, everything ended and removed."""
    core.shutdown(drain=0.0)


class Pool:
    """Long-lived pinned workers running one model: submit batches, get futures.

    Args:
        model: the `tfcpu.Model` every worker runs.
        plan: one worker per instance (default: ``InstancePlan.for_topology(cores_per_instance=1)``).
        config: settings every worker shares (oneDNN, KMP block time, ITEX, allocator, frozen
            weights, extra variables); threads, ``OMP_NUM_THREADS``, ``KMP_AFFINITY`` and CPUs are
            each instance's (`instance_config`). Default: the instance's own config.
        backend: the registered backend (default: the model's format's, `tfcpu.formats`).
        backend_options: the backend's options (an OpenVINO worker runs one stream unless told otherwise).
        env: extra variables for every worker.
        slots: batches in flight per worker (2: the next batch waits in the worker while one runs).
        retries: how many times a batch whose worker died is run again on another (or the restarted)
            worker before its future fails with `InstanceError` (0 or 1 are the useful values).
        timeout: seconds a worker may take to answer a batch before it is killed and started again.
        startup_timeout: seconds a worker may take to load the model and warm up.
        max_restarts: how many times each worker is started again after dying.
        warm: run one synthetic batch of size 1 in each worker before it counts as ready.
        debug: let TensorFlow's C++ start-up lines through to the workers' logs.

    Raises:
        ConfigError: an invalid argument (before any process starts).
        InstanceError: a worker did not start (its cause and last log lines); nothing is left running.
    """

    def __init__(
        self,
        model: Model,
        plan: InstancePlan | None = None,
        config: SessionConfig | None = None,
        *,
        backend: str | None = None,
        backend_options: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        slots: int = 2,
        retries: int = 0,
        timeout: float = 600.0,
        startup_timeout: float = 600.0,
        max_restarts: int = 3,
        warm: bool = True,
        debug: bool = False,
    ) -> None:
        from tfcpu._numbers import MAX_SECONDS, check_number
        from tfcpu.runtime.backends._base import check_backend

        if not isinstance(model, Model) or not model.runnable:
            raise ConfigError(
                f"Pool needs a runnable tfcpu Model, got {type(model).__name__}",
                hint="load it first: model = tfcpu.load(path_or_keras_model)",
            )
        where = "Pool"
        check_number(slots, "slots", where=where, integer=True, minimum=1, maximum=64)
        check_number(retries, "retries", where=where, integer=True, minimum=0, maximum=10)
        check_number(max_restarts, "max_restarts", where=where, integer=True, minimum=0, maximum=1000)
        check_number(timeout, "timeout (seconds)", where=where, above=0, maximum=MAX_SECONDS)
        check_number(startup_timeout, "startup_timeout (seconds)", where=where, above=0, maximum=MAX_SECONDS)
        backend_name = backend or model.preferred_backend
        check_backend(backend_name, where="Pool(backend=...)")
        if plan is None:
            from tfcpu.plan import InstancePlan

            plan = InstancePlan.for_topology(cores_per_instance=1)
        if not plan.instances:
            raise ConfigError("the plan has no instances", where=where)
        self.id, self._core = new_core(
            model,
            plan,
            config,
            backend=backend_name,
            backend_options=backend_options or {},
            env=env or {},
            debug=debug,
            slots=slots,
            retries=retries,
            timeout=timeout,
            startup_timeout=startup_timeout,
            max_restarts=max_restarts,
            warm=warm,
        )
        self.model = model
        self.plan = plan
        self.backend = backend_name
        self._finalizer = weakref.finalize(self, _shutdown, self._core)
        try:
            self._core.start()
        except BaseException:
            self._finalizer()
            raise

    # -- what runs ----------------------------------------------------------------------------
    @property
    def reports(self) -> tuple[WorkerReport, ...]:
        """What each worker saw when it (last) became ready: pid, affinity, variables, threads, backend."""
        return tuple(w.report for w in self._core.workers if w.report is not None)

    @property
    def method(self) -> str:
        """How the workers are pinned (numactl, numactl-cpubind, taskset or sched_setaffinity)."""
        return self.plan.method

    @property
    def closed(self) -> bool:
        return self._core.closed

    @property
    def capacity(self) -> int:
        """Batches the workers can hold at once (instances × slots)."""
        return len(self._core.workers) * self._core.slots

    @property
    def workers(self) -> int:
        """Batches that run at once: one per worker (instance)."""
        return len(self._core.workers)

    def pids(self) -> tuple[int, ...]:
        """The workers' current process ids (0 for one that is not running)."""
        return tuple(w.proc.pid if w.proc is not None and w.proc.poll() is None else 0 for w in self._core.workers)

    # -- work ---------------------------------------------------------------------------------
    def submit(self, feeds: Any, *, label: str | None = None) -> Future[dict[str, np.ndarray]]:
        """Queue one batch; the future's result is ``{output name: array}``.

        ``feeds`` is what `Runner.run` takes: a dict by input name, a sequence in input order, or one
        array for a single-input model (checked here: a bad batch raises at once). Do not change the
        arrays until the future is done (they are copied into shared memory when the batch is sent).

        Raises:
            ConfigError: the batch does not fit the model's inputs.
            RunnerError: the pool is closed; `InstanceError` when no worker is left.
        """
        core = self._core
        arrays = normalise_feed(self.model, feeds)
        ordered = [np.ascontiguousarray(arrays[n]) for n in self.model.input_names]
        first = ordered[0] if ordered else None
        items = int(first.shape[0]) if first is not None and first.ndim else 1
        seq = next(core.seq)
        job = _Job(seq, label or f"batch {seq}", ordered, items, Future(), time.monotonic())
        core.enqueue(job)
        return job.future

    def _result(self, future: Future[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """The future's result; every wait is bounded and the pool's liveness is checked in between."""
        while True:
            try:
                return future.result(timeout=0.5)
            except FutureTimeout:
                if self._core.closed and not future.done():
                    raise RunnerError("the pool was closed while waiting for a batch") from None

    def map(
        self, batches: Iterable[Any], *, ordered: bool = True, window: int | None = None
    ) -> Iterator[dict[str, np.ndarray]]:
        """Run every batch of ``batches``; yield the outputs in input order (or as they finish).

        At most ``window`` batches (default: twice `capacity`) are submitted and not yet yielded,
        so a long or endless stream is read as it is consumed. A failed batch raises its error
        (`InstanceError` names the batch by its position, ``batch 7``); the batches after it that
        were not sent yet are cancelled.
        """
        limit = window or 2 * self.capacity
        if limit < 1:
            raise ConfigError("window must be at least 1", where="Pool.map")
        source = iter(batches)
        pending: deque[Future[dict[str, np.ndarray]]] = deque()
        count = itertools.count()
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < limit:
                    try:
                        batch = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    pending.append(self.submit(batch, label=f"batch {next(count)}"))
                if not pending:
                    return
                if ordered:
                    yield self._result(pending.popleft())
                    continue
                done, _ = wait_futures(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in [f for f in pending if f in done]:
                    pending.remove(fut)
                    yield self._result(fut)
                if not done and self._core.closed:
                    raise RunnerError("the pool was closed during map")
        finally:
            for fut in pending:
                fut.cancel()

    async def asubmit(self, feeds: Any, *, label: str | None = None) -> dict[str, np.ndarray]:
        """`submit` for asyncio code: await the outputs."""
        return await asyncio.wrap_future(self.submit(feeds, label=label))

    async def amap(
        self, batches: Iterable[Any] | AsyncIterable[Any], *, ordered: bool = True, window: int | None = None
    ) -> AsyncIterator[dict[str, np.ndarray]]:
        """`map` for asyncio code: ``async for outputs in pool.amap(batches)``; ``batches`` may be async."""
        limit = window or 2 * self.capacity
        pending: deque[asyncio.Future[dict[str, np.ndarray]]] = deque()
        count = itertools.count()
        source = _aiter(batches)
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < limit:
                    try:
                        batch = await source.__anext__()
                    except StopAsyncIteration:
                        exhausted = True
                        break
                    pending.append(asyncio.wrap_future(self.submit(batch, label=f"batch {next(count)}")))
                if not pending:
                    return
                if ordered:
                    yield await pending.popleft()
                    continue
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for fut in [f for f in pending if f in done]:
                    pending.remove(fut)
                    yield fut.result()
        finally:
            for fut in pending:
                fut.cancel()

    # -- stats --------------------------------------------------------------------------------
    def stats(self) -> PoolStats:
        """What the pool did so far, per instance and in total (a snapshot)."""
        core = self._core
        with core.lock:
            rows = []
            every: list[float] = []
            for w in core.workers:
                lat = list(w.latencies)
                every.extend(lat)
                alive = w.proc is not None and w.proc.poll() is None
                rows.append(
                    InstanceStats(
                        index=w.index,
                        cpus=tuple(w.inst.cpus),
                        pid=w.proc.pid if w.proc is not None and alive else 0,
                        state=w.state,
                        restarts=w.restarts,
                        batches=w.batches,
                        items=w.items,
                        failed=w.failed,
                        in_flight=len(w.in_flight),
                        latency_ms=latency(lat),
                        compute_ms=latency(list(w.computes)),
                    )
                )
            queued = len(core.queue)
        seconds = time.monotonic() - core.ready_at if not math.isnan(core.ready_at) else 0.0
        return PoolStats(
            model=self.model.source,
            backend=self.backend,
            method=self.plan.method,
            instances=tuple(rows),
            queued=queued,
            seconds=seconds,
            latency_ms=latency(every),
        )

    # -- the end ------------------------------------------------------------------------------
    def close(self, timeout: float = 30.0) -> None:
        """Cancel queued batches, let in-flight ones finish (up to ``timeout`` s), end every worker.

        Afterwards no worker process, shared-memory segment or temp dir of this pool is left. Safe to
        call twice.
        """
        if self._finalizer.alive:
            self._finalizer.detach()
            self._core.shutdown(drain=timeout)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        # interrupted (Ctrl-C, a stop signal): end at once; otherwise let the last batches finish
        interrupted = exc_type is not None and issubclass(exc_type, KeyboardInterrupt)
        self.close(timeout=0.0 if interrupted else 30.0)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<tfcpu.Pool {self.model.source!r} × {len(self.plan.instances)} ({self.backend}, {state})>"


async def _agen(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


def _aiter(batches: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if isinstance(batches, AsyncIterable):
        return batches.__aiter__()
    return _agen(batches)


def new_core(
    model: Model,
    plan: InstancePlan,
    config: SessionConfig | None,
    *,
    backend: str,
    backend_options: Mapping[str, Any],
    env: Mapping[str, str],
    debug: bool,
    threads: tuple[int, int] | None = None,
    slots: int,
    retries: int,
    timeout: float,
    startup_timeout: float,
    max_restarts: int,
    warm: bool,
) -> tuple[str, _Core]:
    """The pool's id and its state, every worker's whole config and environment decided (nothing started).

    Shared by `Pool` and `tfcpu.runtime.multi.run_instances` (which drives the same workers with
    ``bench`` requests). ``threads`` overrides every instance's ``(intra, inter)`` (``0``: the
    runtime's defaults).
    """
    from tfcpu.runtime.backends._base import backend_entry

    options = {**backend_entry(backend).pool_defaults, **backend_options}
    pool_id = f"{os.getpid()}-{next(_POOL_IDS)}"
    configs, envs = [], []
    for inst in plan.instances:
        cfg, child = _child_setup(model, inst, config, env, debug=debug, threads=threads)
        child[MARKER] = pool_id
        configs.append(cfg)
        envs.append(child)
    core = _Core(
        model,
        plan,
        configs,
        envs,
        backend=backend,
        backend_options=options,
        slots=slots,
        retries=retries,
        timeout=timeout,
        startup_timeout=startup_timeout,
        max_restarts=max_restarts,
        warm=warm,
        pool_id=pool_id.replace("-", "_"),
    )
    return pool_id, core


def _child_setup(
    model: Model,
    inst: Instance,
    config: SessionConfig | None,
    extra: Mapping[str, str],
    *,
    debug: bool,
    threads: tuple[int, int] | None = None,
) -> tuple[SessionConfig, dict[str, str]]:
    """One worker's whole config (with the oneDNN decision in it) and its process environment."""
    from tfcpu.session._resolve import MANAGED
    from tfcpu.session.precision import child_env, decide_onednn
    from tfcpu.session.xeon import preload_env

    cfg = instance_config(inst, config)
    if threads is not None:
        intra, inter = threads
        cfg = cfg.with_intra_op_threads(intra).with_inter_op_threads(inter).with_omp_threads(intra or None)
    environ = {**os.environ, **extra}
    decision = decide_onednn(
        needs_onednn=model.needs_onednn,
        explicit=config.onednn_opts if config is not None else None,
        itex=cfg.itex is not None,
        environ=environ,
    )
    log.debug("instance %d: %s", inst.index, decision.reason)
    if decision.value is not None:
        cfg = cfg.with_onednn(decision.value)
    base = {k: v for k, v in environ.items() if k not in MANAGED}  # the parent's threads do not leak in
    base.update(extra)
    base.update(cfg.env(environ=base))
    env = child_env(decision, base, debug=debug)
    env.update(preload_env(cfg.allocator, env, "Pool (SessionConfig.allocator)"))
    env["PYTHONUNBUFFERED"] = "1"
    env["TFCPU_INSTANCE_INDEX"] = str(inst.index)
    return cfg, env
