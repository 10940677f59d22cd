"""Every stop is clean: SIGTERM and SIGHUP end ``tfcpu bench`` and ``tfcpu launch`` like Ctrl-C, and
``launch`` ends each copy's whole process group (forked children included) at the end of the run, at
its deadline and on a signal.

Each test marks the processes it starts with ``TFCPU_TEST_MARKER=<uuid>`` in their environment
(every descendant inherits it, whatever its argv) and a private ``TMPDIR``, then asserts that no
marked process and no temp dir remain.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.graphs import tiny_convnet

pytestmark = pytest.mark.slow


def _marked(marker: str, *, but: int | None = None) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["environ", "status"]):
        env = proc.info.get("environ") or {}
        if (
            env.get("TFCPU_TEST_MARKER") == marker
            and proc.info.get("status") != psutil.STATUS_ZOMBIE
            and proc.pid != but
        ):
            found.append(proc)
    return found


def _workers(marker: str) -> list[psutil.Process]:
    found = []
    for proc in _marked(marker):
        try:
            if "tfcpu.runtime._pool_worker" in proc.cmdline():  # run_instances runs on the pool's workers
                found.append(proc)
        except psutil.Error:
            pass
    return found


def _wait_for(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _cleanup(proc: subprocess.Popen[bytes], marker: str) -> None:
    """The test's own safety net: whatever tfcpu left is killed here, so a failing test leaves nothing."""
    for p in [*_marked(marker), proc]:
        try:
            if isinstance(p, subprocess.Popen):
                p.kill()
                p.wait(timeout=10)
            else:
                p.kill()
        except (psutil.Error, OSError, subprocess.TimeoutExpired):
            pass


def _start(argv: list[str], marker: str, tmp: Path) -> subprocess.Popen[bytes]:
    tmp.mkdir(exist_ok=True)
    return subprocess.Popen(
        ["tfcpu", *argv],
        env={**os.environ, "TFCPU_TEST_MARKER": marker, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: signal.Signals(s).name)
def test_a_signal_to_bench_with_two_instances_stops_every_worker_and_removes_the_temp_dir(
    tmp_path: Path, sig: int
) -> None:
    """The issue's acceptance: SIGTERM after 10 s exits within 5 s, no tfcpu process nor temp dir left."""
    model = tmp_path / "convnet.pb"
    tiny_convnet().save(model)
    marker, tmp = uuid.uuid4().hex, tmp_path / "tmp"
    argv = ["bench", str(model), "--instances", "2", "--duration", "30", "--batch-size", "4"]
    started = time.monotonic()
    proc = _start(argv, marker, tmp)
    try:
        assert _wait_for(lambda: len(_workers(marker)) == 2 or proc.poll() is not None, 240), proc.stderr
        assert proc.poll() is None, proc.communicate(timeout=30)
        time.sleep(max(0.0, 10.0 - (time.monotonic() - started)))
        assert list(tmp.glob("tfcpu-*")), "the run's temp dir should exist while it runs"
        sent = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
        text = err.decode(errors="replace")
        assert proc.returncode == 128 + sig, text
        assert took < 5.0, f"{took:.1f} s after {signal.Signals(sig).name}"
        assert f"tfcpu bench: interrupted ({signal.Signals(sig).name})" in text and "Traceback" not in text
        assert _marked(marker) == []
        assert list(tmp.iterdir()) == []
    finally:
        _cleanup(proc, marker)


# each copy forks a grandchild, then waits on one of its own
FORKS = "sleep 300 & sleep 300"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: signal.Signals(s).name)
def test_a_signal_to_launch_ends_each_copy_with_what_it_forked(tmp_path: Path, sig: int) -> None:
    marker = uuid.uuid4().hex
    proc = _start(["launch", "--instances", "2", "--", "sh", "-c", FORKS], marker, tmp_path / "tmp")
    try:
        # two copies of: sh, and its two sleeps
        assert _wait_for(lambda: len(_marked(marker, but=proc.pid)) >= 6, 120), _marked(marker, but=proc.pid)
        sent = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + sig, err
        assert time.monotonic() - sent < 5.0
        assert b"interrupted" in err and b"Traceback" not in err
        assert _marked(marker) == []
    finally:
        _cleanup(proc, marker)


def test_launch_ends_what_a_copy_forked_when_the_copy_exits(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    proc = _start(["launch", "--instances", "2", "--", "sh", "-c", "sleep 300 & echo forked"], marker, tmp_path)
    try:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.count(b"forked") == 2
        assert _marked(marker) == []
    finally:
        _cleanup(proc, marker)


def test_launch_ends_every_group_at_its_deadline_even_one_that_ignores_sigterm(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    # copy 0 ignores SIGTERM in the shell and in what it forks: only SIGKILL after the grace period ends it
    script = 'if [ "$TFCPU_INSTANCE_INDEX" = 0 ]; then trap "" TERM; fi; ' + FORKS
    proc = _start(["launch", "--instances", "2", "--timeout", "3", "--", "sh", "-c", script], marker, tmp_path)
    try:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err
        assert err.count(b"deadline exceeded") == 2, err
        assert _marked(marker) == []
    finally:
        _cleanup(proc, marker)


def test_the_library_leaves_no_worker_on_sigterm_under_stop_signals(tmp_path: Path) -> None:
    """run_instances in a user's program that opted in with tfcpu.stop_signals()."""
    marker = uuid.uuid4().hex
    model = tmp_path / "convnet.pb"
    tiny_convnet().save(model)
    code = (
        "import sys, tfcpu\n"
        "from tfcpu.runtime.multi import run_instances\n"
        "plan = tfcpu.InstancePlan.for_topology(tfcpu.Topology.detect(), instances=2)\n"
        "with tfcpu.stop_signals():\n"
        "    try:\n"
        f"        run_instances(tfcpu.load({str(model)!r}), plan, batch_size=4, warmup=1, duration=300.0)\n"
        "    except tfcpu.Stopped as exc:\n"
        "        sys.exit(exc.exit_code)\n"
    )
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, "TFCPU_TEST_MARKER": marker, "TMPDIR": str(tmp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert _wait_for(lambda: len(_workers(marker)) == 2 or proc.poll() is not None, 240)
        assert proc.poll() is None, proc.communicate(timeout=30)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 143, err
        assert _marked(marker) == []
        assert list(tmp.iterdir()) == []
    finally:
        _cleanup(proc, marker)
