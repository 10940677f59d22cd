"""Many pinned instances of one model, each on its own shard, started and measured together.

What the white paper's Appendix A does with ``nohup numactl ... &`` and a hand-summed
``nohup.out``, done so that it cannot silently lie:

* one child per `Instance`, started inside the plan's pinning prefix
  with the instance's environment (so thread variables are set before TensorFlow starts);
* every child warms up, then waits at a barrier; the timed region starts for all at once;
* results come back as JSON files, not scraped log lines;
* a child that crashes or hangs is reported (exit code or signal, last log lines), the
  others' results are kept and the aggregate is marked partial; every child runs in its own
  process group and is killed on deadline, error or Ctrl-C, so nothing is left behind.
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
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tfcpu._io import atomic_write_text
from tfcpu.errors import ConfigError
from tfcpu.graph.model import Model
from tfcpu.runtime.feeds import normalise_feed
from tfcpu.runtime.results import BenchmarkResult, InstanceResult, MultiInstanceResult
from tfcpu.runtime.stats import LatencyStats

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.plan import Instance, InstancePlan

__all__ = ["kill_group", "pinned_argv", "run_instances", "shard_bounds"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


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
        return [sys.executable, "-c", code, *argv]
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
    spec: dict[str, Any]
    log_path: Path
    status: str = "running"
    deadline: float = math.inf

    @property
    def ready(self) -> bool:
        return Path(self.spec["ready_path"]).exists()


def run_instances(
    model: Model,
    plan: InstancePlan,
    *,
    batch_size: int = 32,
    warmup: int = 5,
    steps: int | None = None,
    duration: float | None = None,
    data: str | np.ndarray | Mapping[str, np.ndarray] = "synthetic",
    shapes: Mapping[str, Sequence[int]] | None = None,
    collect_outputs: bool = False,
    startup_timeout: float = 600.0,
    timeout: float | None = None,
    progress: Progress | None = None,
    env: Mapping[str, str] | None = None,
    seed: int = 0,
    threads: tuple[int, int] | None = None,
) -> MultiInstanceResult:
    """Run ``model`` in one pinned child per instance of ``plan`` and aggregate honestly.

    Args:
        data: ``"synthetic"`` (each instance its own seeded random batch) or a dataset (an
            array for a single-input model, or a dict by input name): it is split into one
            contiguous shard per instance and every item is processed exactly once.
        steps: timed batches per instance for synthetic data (default 50 when neither
            ``steps`` nor ``duration`` is given).
        duration: timed seconds per instance for synthetic data, instead of ``steps``.
        collect_outputs: with a dataset, return the outputs in dataset order
            (``result.outputs``).
        startup_timeout: seconds an instance may take to load and warm up.
        timeout: seconds an instance may run after the common start before it is killed;
            default: 3 × duration + 120 s, or 600 s.
        progress: callback ``(phase, done, total)`` for progress bars.
        env: extra environment for every child (e.g. ``TF_ENABLE_ONEDNN_OPTS``).
        threads: ``(intra, inter)`` for every child instead of the plan's; ``0`` lets
            TensorFlow choose (its defaults), for baselines.
    """
    instances = tuple(plan.instances)
    if not instances:
        raise ConfigError("the plan has no instances")
    if batch_size < 1:
        raise ConfigError("batch_size must be >= 1")
    if steps is not None and duration is not None:
        raise ConfigError("give steps or duration, not both")
    sharded = not isinstance(data, str)
    if isinstance(data, str) and data != "synthetic":
        raise ConfigError(f"unknown data source {data!r}", hint='use "synthetic" or pass a dataset array')
    if not sharded and steps is None and duration is None:
        steps = 50
    if timeout is None:
        timeout = 3 * duration + 120 if duration else 600.0
    env = _with_onednn_if_needed(model, instances, env)

    with tempfile.TemporaryDirectory(prefix="tfcpu-run-") as tmp:
        work = Path(tmp)
        graph_path = work / "model.pb"
        graph_path.write_bytes(model.to_bytes())
        data_spec: list[dict[str, Any]] = []
        n_items = 0
        if sharded:
            arrays = normalise_feed(model, data)
            n_items = min(a.shape[0] for a in arrays.values())
            paths = {}
            for k, (name, arr) in enumerate(arrays.items()):
                path = work / f"data-{k}.npy"
                np.save(path, arr[:n_items])
                paths[name] = str(path)
            for lo, hi in shard_bounds(n_items, len(instances)):
                data_spec.append({"kind": "shard", "paths": paths, "lo": lo, "hi": hi})
        else:
            data_spec = [{"kind": "synthetic", "seed": seed, "shapes": dict(shapes or {})}] * len(instances)

        base = {
            "graph_path": str(graph_path),
            "inputs": [s.to_dict() for s in model.inputs],
            "outputs": [s.to_dict() for s in model.outputs],
            "source": model.source,
            "batch_size": batch_size,
            "warmup": warmup,
            "steps": steps,
            "duration": duration,
            "collect_outputs": collect_outputs,
            "go_path": str(work / "go"),
            "workdir": str(work),
            "startup_timeout": startup_timeout + 60,
        }
        children: list[_Child] = []
        try:
            for inst, dspec in zip(instances, data_spec, strict=True):
                intra, inter = threads or (inst.intra_op_threads, inst.inter_op_threads)
                spec = {
                    **base,
                    "index": inst.index,
                    "cpus": list(inst.cpus),
                    "data": dspec,
                    "ready_path": str(work / f"ready-{inst.index}"),
                    "result_path": str(work / f"result-{inst.index}.json"),
                    "intra_op_threads": intra,
                    "inter_op_threads": inter,
                }
                children.append(_start(inst, spec, work, env or {}, plan.method, startup_timeout))
            _wait_ready(children, startup_timeout, progress)
            go = time.monotonic() + 0.05
            atomic_write_text(work / "go", repr(go))
            for child in children:
                if child.status == "running":
                    child.deadline = go + timeout
            _wait_done(children, progress)
            from tfcpu.topology import Topology

            cpu = Topology.detect().summary()
            results = [_collect(child, model, batch_size, warmup, cpu) for child in children]
        finally:
            for child in children:
                if child.proc.poll() is None:
                    kill_group(child.proc)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        child.proc.wait(timeout=10)
        outputs = _gather_outputs(results, model) if collect_outputs and sharded else None
        return _aggregate(results, plan.method, batch_size, model.source, outputs)


def _with_onednn_if_needed(
    model: Model, instances: Sequence[Instance], env: Mapping[str, str] | None
) -> dict[str, str]:
    """INT8/BF16 graphs run only with oneDNN on; turn it on in the children unless someone chose."""
    env = dict(env or {})
    key = "TF_ENABLE_ONEDNN_OPTS"
    chosen = env.get(key) or next((i.env[key] for i in instances if key in i.env), None) or os.environ.get(key)
    if model.needs_onednn:
        if chosen is None:
            env[key] = "1"
            log.info("%s needs oneDNN: the instances start with %s=1", model.source, key)
        elif chosen == "0":
            log.warning("%s needs oneDNN but %s=0 was asked for: its quantised ops will fail", model.source, key)
    return env


def _start(
    inst: Instance, spec: dict[str, Any], work: Path, env: Mapping[str, str], method: str, startup_timeout: float
) -> _Child:
    idx = inst.index
    spec_path = work / f"spec-{idx}.json"
    spec_path.write_text(json.dumps(spec))
    child_env = {**os.environ, **inst.env, **env, "PYTHONUNBUFFERED": "1"}
    child_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    child_env["TFCPU_INSTANCE_INDEX"] = str(idx)
    argv = pinned_argv(inst, method, [sys.executable, "-m", "tfcpu.runtime.worker", str(spec_path)])
    log_path = work / f"instance-{idx}.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            argv,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    log.debug("instance %d started: pid %d, %s", idx, proc.pid, " ".join(argv))
    child = _Child(inst, proc, spec, log_path)
    child.deadline = time.monotonic() + startup_timeout
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


def _collect(
    child: _Child, model: Model, batch_size: int, warmup: int, cpu: str
) -> tuple[InstanceResult, dict[str, Any]]:
    inst = child.instance
    code = child.proc.returncode
    result_path = Path(child.spec["result_path"])
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
        ), {}
    if code != 0 or not result_path.exists():
        sig = _signal_name(code)
        why = f"killed by {sig}" if sig else f"exited with code {code}"
        return InstanceResult(inst.index, tuple(inst.cpus), "failed", code, sig, log_tail=tail, error=why), {}
    raw = json.loads(result_path.read_text())
    bench = BenchmarkResult(
        model=model.source,
        batch_size=batch_size,
        warmup=warmup,
        steps=len(raw["batches"]),
        items=int(raw["items"]),
        seconds=float(raw["seconds"]),
        throughput=float(raw["throughput"]),
        latency_ms=LatencyStats.from_dict(raw["latency_ms"]),
        first_run_ms=float(raw["first_run_ms"]),
        mode="latency" if batch_size == 1 else "throughput",
        config={
            "intra_op_threads": inst.intra_op_threads,
            "inter_op_threads": inst.inter_op_threads,
            "cpus": list(inst.cpus),
        },
        topology=cpu,
        runtime=raw.get("runtime", {}),
        started_at=float(raw["started_at"]),
        name=f"instance {inst.index}",
    )
    batches = raw["batches"]
    res = InstanceResult(
        inst.index,
        tuple(inst.cpus),
        "ok",
        0,
        None,
        bench,
        log_tail=tail,
        items_processed=int(raw["items"]),
        started=batches[0][0] if batches else math.nan,
        ended=batches[-1][1] if batches else math.nan,
        affinity=tuple(raw.get("affinity", ())),
    )
    return res, raw


def _gather_outputs(results: list[tuple[InstanceResult, dict[str, Any]]], model: Model) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in model.output_names:
        parts = [np.load(raw["outputs"][name]) for res, raw in results if res.ok and raw.get("outputs")]
        out[name] = np.concatenate(parts) if parts else None
    return out


def _aggregate(
    results: list[tuple[InstanceResult, dict[str, Any]]],
    method: str,
    batch_size: int,
    source: str,
    outputs: dict[str, Any] | None,
) -> MultiInstanceResult:
    ok = [(r, raw) for r, raw in results if r.ok and raw.get("batches")]
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
        if res.ok and window_s > 0:
            # items of batches that finished inside the common window
            inside = sum(n for b0, b1, n in raw["batches"] if ws < b1 <= we)
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
