"""Many pinned instances: sharding, pinning, faults, deadlines, Ctrl-C, no orphans.

Each run starts real child processes that import TensorFlow, so they are marked slow.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import pytest

from tests.graphs import echo_ids
from tfcpu.plan import InstancePlan
from tfcpu.runtime.multi import run_instances, shard_bounds
from tfcpu.topology import Topology

pytestmark = pytest.mark.slow


WORKER = "tfcpu.runtime._pool_worker"  # run_instances runs on the pool's workers


def _workers() -> list[psutil.Process]:
    me = psutil.Process()
    return [p for p in me.children(recursive=True) if WORKER in " ".join(p.cmdline())]


def _all_workers_on_machine(tag: str) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if WORKER in cmd and tag in cmd:
            out.append(p)
    return out


def _plan(n: int = 2) -> InstancePlan:
    return InstancePlan.for_topology(Topology.detect(), instances=n)


def test_shard_bounds_cover_exactly_once() -> None:
    for n_items in (0, 1, 7, 37, 100):
        for shards in (1, 2, 3, 8):
            bounds = shard_bounds(n_items, shards)
            ids = [i for lo, hi in bounds for i in range(lo, hi)]
            assert ids == list(range(n_items))
            sizes = [hi - lo for lo, hi in bounds]
            assert max(sizes) - min(sizes) <= 1


def test_every_item_once_pinned_and_aggregated() -> None:
    ids = np.arange(37, dtype=np.float32).reshape(-1, 1)
    plan = _plan(2)
    res = run_instances(echo_ids(), plan, batch_size=4, warmup=1, data=ids, collect_outputs=True)
    assert not res.partial
    assert res.items == 37
    assert sorted(i.items_processed for i in res.instances) == [18, 19]
    assert res.outputs is not None
    np.testing.assert_array_equal(res.outputs["echo:0"], ids)  # every id once, in order
    # each child ran on exactly its instance's CPUs (read inside the child)
    for inst, got in zip(plan.instances, res.instances, strict=True):
        assert got.affinity == tuple(inst.cpus)
    assert [i.affinity for i in res.instances] == [(0,), (1,)]
    assert res.sum_throughput == pytest.approx(sum(i.benchmark.throughput for i in res.instances))
    assert res.wall_throughput > 0
    assert _workers() == []


def _after_start(index: int, action: Callable[[psutil.Process], None], delay: float) -> threading.Thread:
    """In a thread: find instance ``index``'s worker, wait for the common start, then act on it."""

    def body() -> None:
        deadline = time.time() + 180
        while time.time() < deadline:
            for p in _workers():
                spec = next((a for a in p.cmdline() if a.endswith(f"spec-{index}.json")), None)
                if spec is None:
                    continue
                go = os.path.join(os.path.dirname(spec), "go")
                while not os.path.exists(go) and time.time() < deadline:
                    time.sleep(0.05)
                time.sleep(delay)
                action(p)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=body)
    thread.start()
    return thread


def test_killed_instance_is_reported_and_others_kept() -> None:
    killed: list[int] = []

    def kill(p: psutil.Process) -> None:
        p.send_signal(signal.SIGKILL)
        killed.append(p.pid)

    t = _after_start(1, kill, delay=0.5)
    res = run_instances(echo_ids(), _plan(2), batch_size=8, warmup=1, duration=4.0)
    t.join()
    assert killed
    assert res.partial
    bad = res.instances[1]
    assert bad.status == "failed" and bad.signal == "SIGKILL"
    good = res.instances[0]
    assert good.ok and good.benchmark is not None and good.benchmark.throughput > 0
    assert res.sum_throughput == pytest.approx(good.benchmark.throughput)
    assert _workers() == []


def test_hung_instance_hits_its_deadline() -> None:
    # SIGSTOP freezes the worker: from the parent's side it is a hang.
    t = _after_start(0, lambda p: p.send_signal(signal.SIGSTOP), delay=0.0)
    start = time.monotonic()
    res = run_instances(echo_ids(), _plan(2), batch_size=8, warmup=1, duration=2.0, timeout=6.0)
    t.join()
    assert time.monotonic() - start < 120
    assert res.instances[0].status == "timeout"
    assert res.instances[1].ok
    assert res.partial
    assert _workers() == []


def test_ctrl_c_leaves_no_process_behind(tmp_path: Path) -> None:
    tag = f"tfcpu-ctrlc-{os.getpid()}"
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(f"""
        import signal, sys, tempfile
        # Ctrl-C raises KeyboardInterrupt as in a terminal, even when the test runner itself was started
        # in the background (a non-interactive shell starts background jobs with SIGINT ignored)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        tempfile.tempdir = {str(tmp_path)!r}
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from tests.graphs import echo_ids
        from tfcpu.plan import InstancePlan
        from tfcpu.runtime.multi import run_instances
        from tfcpu.topology import Topology
        plan = InstancePlan.for_topology(Topology.detect(), instances=2)
        print("starting", flush=True)
        run_instances(echo_ids(), plan, batch_size=8, warmup=1, duration=300.0)
    """)
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 180
    while time.time() < deadline and len(_all_workers_on_machine(str(tmp_path))) < 2:
        time.sleep(0.2)
    assert len(_all_workers_on_machine(str(tmp_path))) == 2, tag
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert b"KeyboardInterrupt" in err
    time.sleep(0.5)
    assert _all_workers_on_machine(str(tmp_path)) == []


def test_a_module_in_the_cwd_named_like_the_stdlib_is_not_imported_by_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tfcpu.runtime.backends._base import BenchmarkOptions

    marker = tmp_path / "imported"
    for name in ("grp", "random", "pwd"):
        (tmp_path / f"{name}.py").write_text(
            f"open({str(marker)!r}, 'a').write({name!r} + '\\n')\nraise SystemExit('shadow {name} imported')\n"
        )
    # the shadow works: a plain `python -c` started in that directory imports it
    subprocess.run([sys.executable, "-c", "import grp"], cwd=tmp_path, capture_output=True)
    assert marker.read_text() == "grp\n"
    marker.unlink()
    monkeypatch.chdir(tmp_path)
    res = run_instances(echo_ids(), _plan(2), BenchmarkOptions(batch_size=4, warmup=1, steps=5))
    assert not res.partial, [i.error for i in res.instances]
    assert not marker.exists()
    assert all(i.benchmark is not None and i.benchmark.backend["backend"] == "tensorflow" for i in res.instances)


def test_a_failing_worker_leads_with_its_cause_and_strict_raises_instance_error() -> None:
    from tfcpu.errors import InstanceError
    from tfcpu.runtime.backends._base import BenchmarkOptions
    from tfcpu.runtime.multi import InstanceSettings

    # the tensorflow backend refuses options it does not know, inside the child
    settings = InstanceSettings(backend_options=(("streams", 2),))
    res = run_instances(echo_ids(), _plan(1), BenchmarkOptions(batch_size=4, steps=2), settings=settings)
    assert res.partial
    assert res.instances[0].error.startswith("ConfigError: the tensorflow backend takes no options, got streams")
    with pytest.raises(InstanceError, match=r"instance 0 failed.*ConfigError: the tensorflow backend takes no options"):
        run_instances(
            echo_ids(),
            _plan(1),
            BenchmarkOptions(batch_size=4, steps=2),
            settings=InstanceSettings(backend_options=(("streams", 2),), strict=True),
        )
    assert _workers() == []


def test_the_runners_whole_config_reaches_every_child() -> None:
    """Issue 25: the Runner's with_onednn(False), KMP and extra variables are applied in each child."""
    from tfcpu.runtime.runner import Runner
    from tfcpu.session.config import SessionConfig

    seen: dict[int, dict[str, str]] = {}

    def read_env(p: psutil.Process) -> None:
        for w in _workers():
            seen[w.pid] = w.environ()

    config = SessionConfig.for_topology().with_onednn(False).with_kmp(blocktime=7).with_env(TFCPU_TEST_ECHO="kept")
    t = _after_start(0, read_env, delay=0.0)
    res = Runner(echo_ids(), config).multi_instance(_plan(2), batch_size=4, warmup=1, duration=3.0)
    t.join()
    assert not res.partial, [i.error for i in res.instances]
    for got in res.instances:  # read by TensorFlow in the child: oneDNN off because the config said so
        assert got.benchmark is not None
        runtime = got.benchmark.runtime
        assert runtime["onednn_enabled"] is False and runtime["onednn_reason"] == "TF_ENABLE_ONEDNN_OPTS=0"
        assert got.benchmark.config["intra_op_threads"] == 1  # the instance's threads, not the config's
    assert len(seen) == 2, seen
    for env in seen.values():
        assert env["TF_ENABLE_ONEDNN_OPTS"] == "0"
        assert env["KMP_BLOCKTIME"] == "7"
        assert env["TFCPU_TEST_ECHO"] == "kept"
        assert env["OMP_NUM_THREADS"] == "1" and env["TF_NUM_INTRAOP_THREADS"] == "1"
    assert _workers() == []
