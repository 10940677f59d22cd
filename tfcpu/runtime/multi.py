"""Many pinned instances of one model, each on its own shard, started and measured together.

What the white paper's Appendix A does with ``nohup numactl ... &`` and a hand-summed
``nohup.out``, done so that it cannot silently lie:

* one child per `Instance`, started inside the plan's pinning prefix
  with the instance's environment (so thread variables are set before TensorFlow starts);
* every child warms up, then waits at a barrier; the timed region starts for all at once;
* parent and child talk through frozen, versioned values (`WorkerSpec`
  in, `WorkerResult` out), JSON files, not scraped log lines;
* children start with ``python -P`` (the user's current directory is not on their ``sys.path``)
  and with the environment `tfcpu.session.precision.child_env()` builds (the oneDNN decision
  for the model's ops, TensorFlow's C++ start-up lines silenced);
* a child that crashes or hangs is reported (exit code or signal, last log lines), the
  others' results are kept and the aggregate is marked partial; every child runs in its own
  process group, killed on deadline, and ended (SIGTERM, a grace period, SIGKILL:
  `tfcpu._stop.end_groups`) on error, Ctrl-C or, under `tfcpu._stop.stop_signals` (every
  ``tfcpu`` command), SIGTERM/SIGHUP; the temp dir goes with them, so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tfcpu._io import atomic_write_text
from tfcpu._stop import deferred, end_groups, temp_dir
from tfcpu.errors import ConfigError, InstanceError
from tfcpu.graph.model import Model
from tfcpu.runtime._protocol import DataShard, WorkerPaths, WorkerResult, WorkerSpec
from tfcpu.runtime._settings import InstanceSettings, from_keywords
from tfcpu.runtime.backends._base import BenchmarkOptions, Timing
from tfcpu.runtime.feeds import normalise_feed
from tfcpu.runtime.results import InstanceResult, MultiInstanceResult
from tfcpu.session.precision import child_env, decide_onednn
from tfcpu.session.xeon import preload_env

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.plan import Instance, InstancePlan

__all__ = ["InstanceSettings", "kill_group", "pinned_argv", "run_instances", "shard_bounds", "worker_argv"]

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


@dataclass
class _Child:
    instance: Instance
    proc: subprocess.Popen[bytes]
    spec: WorkerSpec
    log_path: Path
    status: str = "running"
    deadline: float = math.inf

    @property
    def ready(self) -> bool:
        return Path(self.spec.paths.ready).exists()


def worker_argv() -> list[str]:
    """The worker's command line before the spec path: ``-P`` keeps the cwd off ``sys.path``."""
    return [sys.executable, "-P", "-m", "tfcpu.runtime.worker"]


def run_instances(
    model: Model,
    plan: InstancePlan,
    options: BenchmarkOptions | None = None,
    *,
    data: Data = "synthetic",
    settings: InstanceSettings | None = None,
    progress: Progress | None = None,
    **keywords: Any,
) -> MultiInstanceResult:
    """Run ``model`` in one pinned child per instance of ``plan`` and aggregate honestly.

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
        **keywords: the former keyword form, still accepted: ``batch_size``, ``warmup``, ``steps``,
            ``duration``, ``shapes``, ``seed`` (into ``options``) and ``threads``, ``env``,
            ``collect_outputs``, ``startup_timeout``, ``timeout`` (into ``settings``).

    Raises:
        ConfigError: an invalid setting, before any child starts.
        InstanceError: with ``settings.strict``, when an instance failed (its cause first).
    """
    opts, cfg = from_keywords(options, settings, keywords)
    instances = tuple(plan.instances)
    if not instances:
        raise ConfigError("the plan has no instances")
    preload_env(cfg.allocator, {}, "run_instances (InstanceSettings.allocator)")  # refused before any child starts
    sharded = not isinstance(data, str)
    if isinstance(data, str) and data != "synthetic":
        raise ConfigError(f"unknown data source {data!r}", hint='use "synthetic" or pass a dataset array')
    with temp_dir("tfcpu-run-") as work:
        _write_model(model, work)
        shards = (
            _shards(model, data, work, len(instances), opts)
            if sharded
            else [DataShard(seed=opts.seed)] * len(instances)
        )
        children: list[_Child] = []
        try:
            for inst, shard in zip(instances, shards, strict=True):
                spec = _spec(model, inst, shard, work, opts, cfg)
                with deferred():  # a stop between the start and the append would orphan the child
                    children.append(_start(inst, spec, work, _env(model, inst, cfg), plan.method, cfg))
            _wait_ready(children, cfg.startup_timeout, progress)
            go = time.monotonic() + 0.05
            from tfcpu.runtime.contention import ContentionProbe

            probe = ContentionProbe(sorted({c for inst in instances for c in inst.cpus})).start()
            atomic_write_text(work / "go", repr(go))
            for child in children:
                if child.status == "running":
                    child.deadline = go + cfg.deadline_after_start(opts)
            _wait_done(children, progress)
            contention = probe.stop()
            from tfcpu.topology import Topology

            cpu = Topology.detect().summary()
            results = [_collect(child, model, opts, cpu) for child in children]
        finally:
            end_groups([child.proc for child in children])
        outputs = _gather_outputs(results, model) if cfg.collect_outputs and sharded else None
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


def _backend_options(backend: str, cfg: InstanceSettings) -> tuple[tuple[str, Any], ...]:
    """The child's backend options: an OpenVINO instance runs one stream on its own cores unless told
    otherwise (its threads are the instance's, from the config the worker builds)."""
    options = dict(cfg.backend_options)
    if backend == "openvino":
        options.setdefault("streams", 1)
    return tuple(sorted(options.items()))


def _spec(
    model: Model, inst: Instance, shard: DataShard, work: Path, opts: BenchmarkOptions, cfg: InstanceSettings
) -> WorkerSpec:
    # an OpenVINO IR has no TF graph: it runs on its own backend unless another was named
    backend = model.preferred_backend if cfg.backend == "tensorflow" else cfg.backend
    return WorkerSpec(
        index=inst.index,
        source=model.source,
        inputs=model.inputs,
        outputs=model.outputs,
        options=opts,
        data=shard,
        paths=WorkerPaths.in_dir(work, inst.index, _model_file(model)),
        backend=backend,
        backend_options=_backend_options(backend, cfg),
        threads=cfg.threads or (inst.intra_op_threads, inst.inter_op_threads),
        cpus=tuple(inst.cpus),
        collect_outputs=cfg.collect_outputs,
        startup_timeout=cfg.startup_timeout + 60,
    )


def _env(model: Model, inst: Instance, cfg: InstanceSettings) -> dict[str, str]:
    """The child's environment: the instance's threads, the settings' extras, the one oneDNN decision."""
    base = {**os.environ, **inst.env, **dict(cfg.env)}
    decision = decide_onednn(needs_onednn=model.needs_onednn, explicit=cfg.onednn, environ=base)
    log.debug("instance %d: %s", inst.index, decision.reason)
    env = child_env(decision, base, debug=cfg.debug)
    env.update(preload_env(cfg.allocator, env, "run_instances (InstanceSettings.allocator)"))
    env["PYTHONUNBUFFERED"] = "1"
    env["TFCPU_INSTANCE_INDEX"] = str(inst.index)
    return env


def _model_file(model: Model) -> str:
    """The file the children load: ``model`` plus the first suffix of the model's format (`tfcpu.formats`)."""
    from tfcpu import formats

    return "model" + formats.for_model(model).suffixes[0]


def _write_model(model: Model, work: Path) -> None:
    """Write the model for the children in its own format (a frozen .pb, an OpenVINO IR, ...)."""
    model.save(work / _model_file(model))


def _start(
    inst: Instance, spec: WorkerSpec, work: Path, env: Mapping[str, str], method: str, cfg: InstanceSettings
) -> _Child:
    idx = inst.index
    spec_path = work / f"spec-{idx}.json"
    spec_path.write_text(spec.to_json())
    argv = pinned_argv(inst, method, [*worker_argv(), str(spec_path)])
    log_path = work / f"instance-{idx}.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            argv,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    log.debug("instance %d started: pid %d, %s", idx, proc.pid, " ".join(argv))
    child = _Child(inst, proc, spec, log_path)
    child.deadline = time.monotonic() + cfg.startup_timeout
    return child


def _reap(child: _Child, now: float) -> None:
    code = child.proc.poll()
    if code is not None and child.status == "running":
        child.status = "exited"
    elif code is None and now > child.deadline:
        kill_group(child.proc)
        child.proc.wait()
        child.status = "timeout"


def _wait_ready(children: list[_Child], startup_timeout: float, progress: Progress | None) -> None:
    while True:
        now = time.monotonic()
        for child in children:
            if child.status == "running" and not child.ready:
                _reap(child, now)
        waiting = [c for c in children if c.status == "running" and not c.ready]
        if progress is not None:
            progress("warm-up", len(children) - len(waiting), len(children))
        if not waiting:
            return
        time.sleep(0.02)


def _wait_done(children: list[_Child], progress: Progress | None) -> None:
    while True:
        now = time.monotonic()
        for child in children:
            if child.status == "running":
                _reap(child, now)
        running = [c for c in children if c.status == "running"]
        if progress is not None:
            progress("timed run", len(children) - len(running), len(children))
        if not running:
            return
        time.sleep(0.02)


def _cause(child: _Child) -> str:
    """The worker's own one-line cause, when it wrote one (before TensorFlow's log lines)."""
    try:
        return Path(child.spec.paths.error).read_text(errors="replace").strip()
    except OSError:
        return ""


def _collect(
    child: _Child, model: Model, opts: BenchmarkOptions, cpu: str
) -> tuple[InstanceResult, WorkerResult | None]:
    from tfcpu.runtime.runner import benchmark_result

    inst = child.instance
    code = child.proc.returncode
    result_path = Path(child.spec.paths.result)
    tail = _tail(child.log_path)
    if child.status == "timeout":
        return InstanceResult(
            inst.index,
            tuple(inst.cpus),
            "timeout",
            code,
            _signal_name(code),
            log_tail=tail,
            error="deadline exceeded; the instance was killed",
        ), None
    if code != 0 or not result_path.exists():
        sig = _signal_name(code)
        why = f"killed by {sig}" if sig else f"exited with code {code}"
        cause = _cause(child)
        error = f"{cause} ({why})" if cause else why
        return InstanceResult(inst.index, tuple(inst.cpus), "failed", code, sig, log_tail=tail, error=error), None
    raw = WorkerResult.from_json(result_path.read_text())
    timing = Timing(raw.batches, raw.started_at)
    bench = benchmark_result(
        timing,
        opts,
        model=model.source,
        first_run_s=raw.first_run_ms / 1000.0,
        config={
            "intra_op_threads": child.spec.threads[0],
            "inter_op_threads": child.spec.threads[1],
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
