"""Many pinned instances of one model, each on its own shard, started and measured together.

What the white paper's Appendix A does with ``nohup numactl ... &`` and a hand-summed
``nohup.out``, done so that it cannot silently lie:

* the children are the pool's workers (`tfcpu.runtime.pool`, ``python -P -m
  tfcpu.runtime._pool_worker``): one per `Instance`, started inside the plan's pinning prefix,
  each applying its Instance's **whole** `SessionConfig` (the caller's config — a Runner's oneDNN
  choice, KMP/OMP, ITEX, allocator, frozen weights — with the instance's threads and CPUs) before
  TensorFlow starts, so a benchmark measures what `tfcpu.Pool` users run;
* every child loads the model and sends ``ready``; it is sent a ``bench`` request (its data shard,
  the timing options), warms up (``Backend.warm``) and answers ``armed``; once every child is armed
  the parent sends all of them the same ``go`` time on CLOCK_MONOTONIC (one clock for every process
  of the machine): the timed regions (``Backend.timed``) start together;
* parent and child talk through small JSON messages on pipes, the answer a versioned
  `WorkerResult`, not scraped log lines;
* children start with ``python -P`` (the user's current directory is not on their ``sys.path``)
  and with the environment `tfcpu.session.precision.child_env()` builds (the oneDNN decision
  for the model's ops, TensorFlow's C++ start-up lines silenced);
* a child that crashes or hangs is reported (exit code or signal, its own cause, last log lines),
  the others' results are kept and the aggregate is marked partial; every child runs in its own
  process group, killed at its deadline (never restarted), and ended (SIGTERM, a grace period,
  SIGKILL: `tfcpu._stop.end_groups`) on error, Ctrl-C or, under `tfcpu._stop.stop_signals`
  (every ``tfcpu`` command), SIGTERM/SIGHUP; the temp dir goes with them, so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import wait as wait_conns
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tfcpu._io import atomic_write_text
from tfcpu.errors import ConfigError, InstanceError
from tfcpu.graph.model import Model
from tfcpu.runtime._protocol import DataShard, WorkerResult
from tfcpu.runtime._settings import InstanceSettings, from_keywords
from tfcpu.runtime.backends._base import BenchmarkOptions, Timing
from tfcpu.runtime.feeds import normalise_feed
from tfcpu.runtime.results import InstanceResult, MultiInstanceResult
from tfcpu.session._resolve import AFFINITY, BLOCKTIME, MANAGED, SETTINGS
from tfcpu.session.xeon import preload_env

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.plan import Instance, InstancePlan
    from tfcpu.runtime.pool import _Core, _Worker
    from tfcpu.session.config import SessionConfig

__all__ = ["InstanceSettings", "kill_group", "pinned_argv", "run_instances", "shard_bounds"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
Data = str | np.ndarray | Mapping[str, np.ndarray]


def shard_bounds(n_items: int, n_shards: int) -> list[tuple[int, int]]:
    """Split ``range(n_items)`` into ``n_shards`` contiguous, disjoint, covering ranges."""
    if n_shards < 1:
        raise ConfigError("need at least one shard")
    base, extra = divmod(n_items, n_shards)
    bounds = []
    lo = 0
    for i in range(n_shards):
        hi = lo + base + (1 if i < extra else 0)
        bounds.append((lo, hi))
        lo = hi
    return bounds


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Signal the child's whole process group (it was started in a new session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


_TRAMPOLINE = "import os, sys; os.sched_setaffinity(0, {cpus}); os.execvp(sys.argv[1], sys.argv[1:])"


def pinned_argv(inst: Instance, method: str, argv: Sequence[str]) -> list[str]:
    """The argv that runs ``argv`` pinned to the instance's CPUs.

    numactl/taskset methods use the plan's prefix; the ``sched_setaffinity`` method execs
    through a tiny Python trampoline that pins itself first (no ``preexec_fn``, which is
    unsafe once threads exist).
    """
    if method == "sched_setaffinity":
        code = _TRAMPOLINE.format(cpus=sorted(inst.cpus))
        return [sys.executable, "-P", "-c", code, *argv]
    return list(inst.wrap(list(argv)))


def _signal_name(code: int | None) -> str | None:
    if code is None or code >= 0:
        return None
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _tail(path: Path, lines: int = 20) -> tuple[str, ...]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ()
    return tuple(line for line in text.splitlines() if line.strip())[-lines:]


def run_instances(
    model: Model,
    plan: InstancePlan,
    options: BenchmarkOptions | None = None,
    *,
    data: Data = "synthetic",
    settings: InstanceSettings | None = None,
    progress: Progress | None = None,
    config: SessionConfig | None = None,
    **keywords: Any,
) -> MultiInstanceResult:
    """Run ``model`` on one pinned pool worker per instance of ``plan`` and aggregate honestly.

    Args:
        model: the model every instance runs.
        plan: the instances (CPUs, threads, environment, pinning method).
        options: how each instance times (batch size, warm-up, steps or duration, seed, shapes);
            ``steps``/``duration`` apply to synthetic data (default 50 steps).
        data: ``"synthetic"`` (each instance its own seeded random batch) or a dataset (an
            array for a single-input model, or a dict by input name): it is split into one
            contiguous shard per instance and every item is processed exactly once.
        settings: how the children are started and supervised (backend, threads, environment,
            timeouts, strictness); default ``InstanceSettings()``.
        progress: callback ``(phase, done, total)`` for progress bars.
        config: the `SessionConfig` every child applies (oneDNN, KMP/OMP, ITEX, allocator, frozen
            weights, extra variables; threads and CPUs are each instance's, `instance_config`);
            ``settings`` (onednn, allocator, threads, env) is laid over it. Default: the instance's own.
        **keywords: the former keyword form, still accepted: ``batch_size``, ``warmup``, ``steps``,
            ``duration``, ``shapes``, ``seed`` (into ``options``) and ``threads``, ``env``,
            ``collect_outputs``, ``startup_timeout``, ``timeout`` (into ``settings``).

    Raises:
        ConfigError: an invalid setting, before any child starts.
        InstanceError: with ``settings.strict``, when an instance failed (its cause first).
    """
    from tfcpu.runtime.pool import new_core

    opts, cfg = from_keywords(options, settings, keywords)
    instances = tuple(plan.instances)
    if not instances:
        raise ConfigError("the plan has no instances")
    preload_env(cfg.allocator, {}, "run_instances (InstanceSettings.allocator)")  # refused before any child starts
    sharded = not isinstance(data, str)
    if isinstance(data, str) and data != "synthetic":
        raise ConfigError(f"unknown data source {data!r}", hint='use "synthetic" or pass a dataset array')
    # an OpenVINO IR has no TF graph: it runs on its own backend unless another was named
    backend = model.preferred_backend if cfg.backend == "tensorflow" else cfg.backend
    _, core = new_core(
        model,
        plan,
        _session_config(instances[0], cfg, config),
        backend=backend,
        backend_options=dict(cfg.backend_options),
        env=_extra_env(cfg),
        debug=cfg.debug,
        threads=cfg.threads,
        slots=1,
        retries=0,
        timeout=cfg.deadline_after_start(opts),
        startup_timeout=cfg.startup_timeout,
        max_restarts=0,
        warm=False,  # Backend.warm times the first real batch
    )
    try:
        core.prepare()
        assert core.work is not None
        work = core.work
        shards = (
            _shards(model, data, work, len(instances), opts)
            if sharded
            else [DataShard(seed=opts.seed)] * len(instances)
        )
        runs = [_Run(w, shard) for w, shard in zip(core.workers, shards, strict=True)]
        for run in runs:
            core.launch(run.worker)
            run.deadline = time.monotonic() + cfg.startup_timeout
        _wait(core, runs, ("starting", "warming"), opts, cfg, work, "warm-up", progress)
        go = time.monotonic() + 0.05
        from tfcpu.runtime.contention import ContentionProbe

        probe = ContentionProbe(sorted({c for inst in instances for c in inst.cpus})).start()
        atomic_write_text(work / "go", repr(go))  # the common start, for whoever watches the run
        for run in runs:
            if run.status == "armed":
                run.deadline = go + cfg.deadline_after_start(opts)
                if _tell(run, {"op": "go", "at": go}):
                    run.status = "running"
                else:
                    _ended(core, run)
        _wait(core, runs, ("running",), opts, cfg, work, "timed run", progress)
        contention = probe.stop()
        from tfcpu.topology import Topology

        cpu = Topology.detect().summary()
        results = [_collect(core, run, model, opts, cpu) for run in runs]
        outputs = _gather_outputs(results, model) if cfg.collect_outputs and sharded else None
    finally:
        core.shutdown(drain=0.0)
    result = replace(
        _aggregate(results, plan.method, opts.batch_size, model.source, outputs), contention=contention.to_dict()
    )
    if cfg.strict and result.partial:
        raise _instance_error(result, model.source)
    return result


def _instance_error(result: MultiInstanceResult, source: str) -> InstanceError:
    bad = result.failed[0]
    others = f" ({len(result.failed) - 1} more failed)" if len(result.failed) > 1 else ""
    return InstanceError(
        f"instance {bad.index} {bad.status}{others}",
        where=source,
        why=bad.error,
        hint="run again with --debug (or InstanceSettings(debug=True)) to keep TensorFlow's own log lines",
    )


def _shards(model: Model, data: Any, work: Path, n: int, opts: BenchmarkOptions) -> list[DataShard]:
    arrays = normalise_feed(model, data)
    n_items = min(a.shape[0] for a in arrays.values())
    paths = []
    for k, (name, arr) in enumerate(arrays.items()):
        path = work / f"data-{k}.npy"
        np.save(path, arr[:n_items])
        paths.append((name, str(path)))
    return [DataShard("shard", opts.seed, tuple(paths), lo, hi) for lo, hi in shard_bounds(n_items, n)]


_KMP = {BLOCKTIME: "blocktime", SETTINGS: "settings", AFFINITY: "affinity"}


def _session_config(inst: Instance, cfg: InstanceSettings, config: SessionConfig | None) -> SessionConfig | None:
    """The config every child applies: ``config`` (default: the instance's own) with ``cfg`` laid over it.

    ``cfg.onednn`` and ``cfg.allocator`` set the config's; KMP variables in ``cfg.env`` become the
    config's (the child applies its config, which would set them back otherwise). The threads
    (``cfg.threads``) are each instance's, applied by `tfcpu.runtime.pool.new_core`.
    """
    env = dict(cfg.env)
    kmp: dict[str, Any] = {_KMP[k]: v for k, v in env.items() if k in _KMP}
    if "settings" in kmp:
        kmp["settings"] = kmp["settings"].strip().lower() in ("1", "true", "yes", "on")
    if config is None and cfg.onednn is None and cfg.allocator is None and not kmp:
        return None
    base = config if config is not None else inst.session_config()
    if cfg.onednn is not None:
        base = base.with_onednn(cfg.onednn)
    if cfg.allocator is not None:
        base = replace(base, allocator=cfg.allocator)
    if kmp:
        base = base.with_kmp(**kmp)
    return base


def _extra_env(cfg: InstanceSettings) -> dict[str, str]:
    """``cfg.env`` but the variables the children's config decides (`_session_config`, the threads)."""
    return {k: v for k, v in cfg.env if k not in MANAGED}


def _env(model: Model, inst: Instance, cfg: InstanceSettings, config: SessionConfig | None = None) -> dict[str, str]:
    """One child's environment as `run_instances` starts it (the pool worker's, `new_core`)."""
    from tfcpu.runtime.pool import _child_setup

    session = _session_config(inst, cfg, config)
    return _child_setup(model, inst, session, _extra_env(cfg), debug=cfg.debug, threads=cfg.threads)[1]


@dataclass(eq=False)
class _Run:
    """One instance of the run: its pool worker, its shard, where it is (starting → warming → armed →
    running → done; or failed, timeout) and what it answered."""

    worker: _Worker
    shard: DataShard
    status: str = "starting"
    deadline: float = math.inf
    cause: str = ""
    raw: WorkerResult | None = None


def _tell(run: _Run, header: Mapping[str, Any]) -> bool:
    tx = run.worker.tx
    if tx is None:
        return False
    try:
        tx.send_bytes(json.dumps(header).encode())
    except OSError:
        return False
    return True


def _ended(core: _Core, run: _Run, cause: str = "") -> None:
    """``run``'s worker stopped answering (exited, or said why): wait for its exit status (bounded)."""
    proc = run.worker.proc
    assert proc is not None
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        core.end_process(run.worker)
    run.cause = run.cause or cause
    run.status = "failed"


def _timeout(core: _Core, run: _Run) -> None:
    proc = run.worker.proc
    assert proc is not None
    kill_group(proc)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)
    core.end_process(run.worker)
    run.status = "timeout"


def _wait(
    core: _Core,
    runs: list[_Run],
    phase: tuple[str, ...],
    opts: BenchmarkOptions,
    cfg: InstanceSettings,
    work: Path,
    label: str,
    progress: Progress | None,
) -> None:
    """Answer every worker's messages until none is in ``phase`` (each bounded by its deadline)."""
    while True:
        active = [r for r in runs if r.status in phase]
        if progress is not None:
            progress(label, len(runs) - len(active), len(runs))
        if not active:
            return
        conns = {r.worker.rx: r for r in active if r.worker.rx is not None}
        ready = wait_conns(list(conns), timeout=0.05)
        for conn in ready:
            run = conns[conn]  # type: ignore[index]
            try:
                msg = json.loads(conn.recv_bytes())  # type: ignore[union-attr]
            except (EOFError, OSError):
                _ended(core, run)
                continue
            _answer(core, run, msg, opts, cfg, work)
        now = time.monotonic()
        for run in active:
            if run.status not in phase:
                continue
            proc = run.worker.proc
            assert proc is not None
            if proc.poll() is not None and run.worker.rx not in ready:
                _ended(core, run)
            elif now > run.deadline:
                _timeout(core, run)


def _answer(
    core: _Core, run: _Run, msg: Mapping[str, Any], opts: BenchmarkOptions, cfg: InstanceSettings, work: Path
) -> None:
    op = msg.get("op")
    w = run.worker
    if op == "ready":
        w.report = core._report(w, msg["report"])
        request = {
            "op": "bench",
            "index": w.index,
            "options": opts.to_dict(),
            "data": run.shard.to_dict(),
            "collect": cfg.collect_outputs,
            "outdir": str(work),
        }
        run.status = "warming" if _tell(run, request) else run.status
    elif op == "armed":
        run.status = "armed"
    elif op == "result":
        run.raw = WorkerResult.from_dict(msg["result"])
        run.status = "done"
    else:  # "failed": the worker's own one-line cause, then it exits
        _ended(core, run, str(msg.get("cause", msg)))


def _collect(
    core: _Core, run: _Run, model: Model, opts: BenchmarkOptions, cpu: str
) -> tuple[InstanceResult, WorkerResult | None]:
    from tfcpu.runtime.runner import benchmark_result

    w = run.worker
    inst = w.inst
    code = w.proc.poll() if w.proc is not None else None
    assert core.work is not None
    tail = _tail(core.work / f"worker-{inst.index}.log")
    if run.status == "timeout":
        return InstanceResult(
            inst.index,
            tuple(inst.cpus),
            "timeout",
            code,
            _signal_name(code),
            log_tail=tail,
            error="deadline exceeded; the instance was killed",
        ), None
    raw = run.raw
    if run.status != "done" or raw is None:
        sig = _signal_name(code)
        why = f"killed by {sig}" if sig else f"exited with code {code}"
        error = f"{run.cause} ({why})" if run.cause else why
        return InstanceResult(inst.index, tuple(inst.cpus), "failed", code, sig, log_tail=tail, error=error), None
    timing = Timing(raw.batches, raw.started_at)
    bench = benchmark_result(
        timing,
        opts,
        model=model.source,
        first_run_s=raw.first_run_ms / 1000.0,
        config={
            "intra_op_threads": w.config.intra_op_threads,
            "inter_op_threads": w.config.inter_op_threads,
            "cpus": list(inst.cpus),
        },
        topology=cpu,
        runtime=raw.runtime,
        backend=raw.backend,
        name=f"instance {inst.index}",
    )
    batches = raw.batches
    res = InstanceResult(
        inst.index,
        tuple(inst.cpus),
        "ok",
        0,
        None,
        bench,
        log_tail=tail,
        items_processed=raw.items,
        started=batches[0][0] if batches else math.nan,
        ended=batches[-1][1] if batches else math.nan,
        affinity=raw.affinity,
    )
    return res, raw


def _gather_outputs(results: list[tuple[InstanceResult, WorkerResult | None]], model: Model) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in model.output_names:
        parts = [np.load(dict(raw.outputs)[name]) for res, raw in results if res.ok and raw and raw.outputs]
        out[name] = np.concatenate(parts) if parts else None
    return out


def _aggregate(
    results: list[tuple[InstanceResult, WorkerResult | None]],
    method: str,
    batch_size: int,
    source: str,
    outputs: dict[str, Any] | None,
) -> MultiInstanceResult:
    ok = [(r, raw) for r, raw in results if r.ok and raw is not None and raw.batches]
    sum_tp = sum(r.benchmark.throughput for r, _ in ok if r.benchmark)
    items = sum(r.items_processed for r, _ in ok)
    window_tp = window_s = wall_tp = wall_s = 0.0
    final = []
    if ok:
        ws = max(r.started for r, _ in ok)
        we = min(r.ended for r, _ in ok)
        first = min(r.started for r, _ in ok)
        last = max(r.ended for r, _ in ok)
        wall_s = last - first
        wall_tp = items / wall_s if wall_s > 0 else 0.0
        if we > ws:
            window_s = we - ws
    for res, raw in results:
        if res.ok and raw is not None and window_s > 0:
            # items of batches that finished inside the common window
            inside = sum(n for b0, b1, n in raw.batches if ws < b1 <= we)
            res = replace(res, window_items=int(inside))
        final.append(res)
    if window_s > 0:
        window_tp = sum(r.window_items for r in final) / window_s
    return MultiInstanceResult(
        instances=tuple(final),
        method=method,
        sum_throughput=sum_tp,
        window_throughput=window_tp,
        window_seconds=window_s,
        wall_throughput=wall_tp,
        wall_seconds=wall_s,
        items=items,
        batch_size=batch_size,
        model=source,
        outputs=outputs,
    )
