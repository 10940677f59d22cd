"""tfcpu.Pool under faults: a worker killed (-9) or hung during map, a worker that cannot start, SIGTERM of
the program and SIGKILL of the parent. Every case ends within a timeout and leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from tests.children import marked_processes
from tests.graphs import reads_file
from tfcpu.errors import InstanceError
from tfcpu.graph.model import Model, TensorSpec
from tfcpu.plan import InstancePlan
from tfcpu.runtime.pool import MARKER, Pool

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ROWS = 256


def slow_echo() -> Model:
    """ids[?,1] → ids + 0 * sum(tanh chain of ten 256x256 MatMuls over the ids tiled) = "echo".

    Echoes its input like ``echo_ids`` but takes tens of milliseconds per batch of 256, so a worker
    holds batches when it is killed.
    """
    import tensorflow as tf

    rng = np.random.default_rng(11)
    g = tf.Graph()
    with g.as_default():
        ids = tf.compat.v1.placeholder(tf.float32, [None, 1], name="ids")
        h = tf.tile(ids, [1, ROWS]) * 1e-3
        for _ in range(10):
            h = tf.tanh(tf.matmul(h, tf.constant((rng.standard_normal((ROWS, ROWS)) * 0.05).astype(np.float32))))
        tf.add(ids, 0.0 * tf.reduce_sum(h, axis=1, keepdims=True), name="echo")
    return Model(
        g.as_graph_def(),
        (TensorSpec("ids:0", "float32", (None, 1), "Placeholder"),),
        (TensorSpec("echo:0", "float32", (None, 1), "AddV2"),),
        source="slow_echo",
    )


def _batches(n: int) -> list[np.ndarray]:
    return [np.arange(i * ROWS, (i + 1) * ROWS, dtype=np.float32).reshape(-1, 1) for i in range(n)]


def _processes(pool_id: str) -> list[psutil.Process]:
    """Every process on the machine whose environment carries this pool's marker."""
    return marked_processes(MARKER, pool_id)


def _when_busy(pool: Pool, index: int, action: signal.Signals) -> threading.Thread:
    """In a thread: once instance ``index`` holds a batch (after a few answered), send it ``action``."""

    def body() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            row = pool.stats().instances[index]
            if row.batches >= 3 and row.in_flight > 0:
                os.kill(row.pid, action)
                return
            time.sleep(0.002)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def _wait_ready(pool: Pool, index: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while pool.stats().instances[index].state != "ready":
        assert time.monotonic() < deadline, "the worker was not started again"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def model() -> Model:
    return slow_echo()


def test_kill_9_during_map_retried_once_finishes(model: Model) -> None:
    batches = _batches(40)
    with Pool(model, InstancePlan.for_topology(instances=2), retries=1) as pool:
        before = pool.pids()
        killer = _when_busy(pool, 0, signal.SIGKILL)
        t0 = time.monotonic()
        outputs = list(pool.map(batches))
        killer.join(timeout=5)
        assert time.monotonic() - t0 < 180
        for batch, out in zip(batches, outputs, strict=True):
            np.testing.assert_array_equal(out["echo:0"], batch)  # every batch answered once, in order
        _wait_ready(pool, 0)
        stats = pool.stats()
        assert stats.instances[0].restarts == 1
        assert pool.pids()[0] not in (0, before[0])
        assert pool.reports[0].generation == 2
        assert pool.reports[0].affinity == tuple(pool.plan.instances[0].cpus)  # pinned again
    assert _processes(pool.id) == []


def test_kill_9_during_map_without_retry_names_the_batch(model: Model) -> None:
    with Pool(model, InstancePlan.for_topology(instances=2)) as pool:
        killer = _when_busy(pool, 1, signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(InstanceError) as info:
            list(pool.map(_batches(200)))
        killer.join(timeout=5)
        assert time.monotonic() - t0 < 180
        message = str(info.value)
        assert "batch " in message and "instance 1" in message and "SIGKILL" in message
        _wait_ready(pool, 1)
        again = pool.submit(_batches(1)[0]).result(timeout=120)  # the pool goes on
        np.testing.assert_array_equal(again["echo:0"], _batches(1)[0])
        assert pool.stats().instances[1].failed >= 1
    assert _processes(pool.id) == []


def test_a_hung_worker_is_killed_after_the_timeout(model: Model) -> None:
    with Pool(model, InstancePlan.for_topology(instances=1), timeout=3.0) as pool:
        stopper = _when_busy(pool, 0, signal.SIGSTOP)
        t0 = time.monotonic()
        with pytest.raises(InstanceError, match="timeout"):
            list(pool.map(_batches(200)))
        stopper.join(timeout=5)
        assert time.monotonic() - t0 < 60
        _wait_ready(pool, 0)
    assert _processes(pool.id) == []


def test_a_worker_that_cannot_start_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    ids_before = {p.pid for p in psutil.Process().children(recursive=True)}
    t0 = time.monotonic()
    with pytest.raises(InstanceError, match="did not start") as info:
        Pool(reads_file(str(tmp_path / "secret")), InstancePlan.for_topology(instances=2))
    assert time.monotonic() - t0 < 180
    assert "ReadFile" in str(info.value)  # the child's safety scan, with its cause
    left = {p.pid for p in psutil.Process().children(recursive=True)} - ids_before
    assert left == set()


SCRIPT = textwrap.dedent(
    """
    import itertools, sys
    import numpy as np
    import tfcpu
    from tests.graphs import echo_ids
    from tfcpu.plan import InstancePlan

    def endless():
        for i in itertools.count():
            yield np.full((8, 1), i, np.float32)

    try:
        with tfcpu.stop_signals():
            with tfcpu.Pool(echo_ids(), InstancePlan.for_topology(instances=2)) as pool:
                print("READY", pool.id, pool._core.work, flush=True)
                if sys.argv[1] == "map":
                    for _ in pool.map(endless()):
                        pass
                else:
                    import time
                    time.sleep(600)
    except tfcpu.Stopped as exc:
        sys.exit(exc.exit_code)
    """
)


def _start_script(mode: str) -> tuple[subprocess.Popen[str], str, Path]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, mode], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = ""
    deadline = time.monotonic() + 180
    while not line.startswith("READY"):
        assert time.monotonic() < deadline and proc.poll() is None, "the pool did not start"
        line = proc.stdout.readline()
    _, pool_id, work = line.split()
    return proc, pool_id, Path(work)


def _gone(pool_id: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _processes(pool_id):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_sigterm_during_map_leaves_no_process_and_no_temp_dir() -> None:
    proc, pool_id, work = _start_script("map")
    try:
        assert len(_processes(pool_id)) >= 2
        time.sleep(1.0)  # mapping
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        assert _gone(pool_id, 10)
        assert not work.exists()
        pid, seq = pool_id.split("-")
        assert [p for p in Path("/dev/shm").iterdir() if p.name.startswith(f"tfp{pid}_{pid}_{seq}_")] == []
    finally:
        proc.kill()


def test_workers_exit_when_the_parent_is_killed() -> None:
    proc, pool_id, work = _start_script("sleep")
    try:
        assert len(_processes(pool_id)) >= 2
        proc.kill()  # SIGKILL: no cleanup runs in the parent
        proc.wait(timeout=30)
        assert _gone(pool_id, 30)  # each worker saw its request pipe close
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
