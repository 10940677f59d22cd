"""Every stop is clean (tfcpu._stop): stop signals become `Stopped`, process groups are ended whole
(SIGTERM, grace, SIGKILL), temp dirs go, and importing tfcpu installs no handler."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from tests.children import run_snippet
from tfcpu._stop import end_groups, group_members, run_child


def _marked(marker: str) -> list[psutil.Process]:
    """Live processes whose environment holds ``TFCPU_TEST_MARKER=marker`` (every descendant inherits it)."""
    found = []
    for proc in psutil.process_iter(["environ", "status"]):
        env = proc.info.get("environ") or {}
        if env.get("TFCPU_TEST_MARKER") == marker and proc.info.get("status") != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def _kill_marked(marker: str) -> None:
    for proc in _marked(marker):
        with contextlib.suppress(psutil.Error):
            proc.kill()


def _wait_for(predicate: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(0.05)
    return False


def _group(script: str, marker: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["sh", "-c", script],
        env={**os.environ, "TFCPU_TEST_MARKER": marker},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )


# The tests that signal their own process run in a fresh interpreter (tests/stop_scenarios.py): the
# pytest process holds TensorFlow's, OpenVINO's and Ray's threads by then, and a signal sent to it can
# land in native code that is none of this test's business.
def _scenario(name: str, *args: str) -> None:
    argv = [sys.executable, "-c", "import sys; from tests.stop_scenarios import run; run(sys.argv[1:])", name, *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok"), proc.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: signal.Signals(s).name)
def test_a_stop_signal_raises_stopped_with_its_exit_code_and_the_handlers_come_back(sig: int) -> None:
    _scenario("stopped", str(int(sig)))


def test_a_second_signal_during_the_cleanup_does_not_cut_it_short() -> None:
    _scenario("second")


def test_deferred_holds_the_signal_until_the_block_ends() -> None:
    _scenario("deferred")


def test_end_groups_kills_a_group_that_ignores_sigterm_after_the_grace_period() -> None:
    marker = uuid.uuid4().hex
    # the trap makes SIGTERM ignored in the shell and in what it forks
    proc = _group("trap '' TERM; sleep 300 & sleep 300 & wait", marker)
    try:
        assert _wait_for(lambda: len(_marked(marker)) >= 3, 30), _marked(marker)
        t0 = time.monotonic()
        end_groups([proc], grace=0.5)
        took = time.monotonic() - t0
        assert _marked(marker) == [] and group_members(proc.pid) == []
        assert proc.returncode == -signal.SIGKILL
        assert 0.4 < took < 10
    finally:
        _kill_marked(marker)
        proc.kill()


def test_end_groups_ends_what_a_finished_leader_forked() -> None:
    marker = uuid.uuid4().hex
    proc = _group("sleep 300 & sleep 300 & exit 0", marker)
    try:
        proc.wait(timeout=30)
        assert _wait_for(lambda: len(_marked(marker)) == 2, 30)  # the orphans run on
        end_groups([proc])
        assert _marked(marker) == []
    finally:
        _kill_marked(marker)


def test_run_child_ends_the_whole_group_at_its_timeout() -> None:
    marker = uuid.uuid4().hex
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            run_child(["sh", "-c", "sleep 300 & sleep 300"], env={**os.environ, "TFCPU_TEST_MARKER": marker}, timeout=1)
        assert _marked(marker) == []
        done = run_child(
            ["sh", "-c", "echo out; echo err >&2; sleep 300 &"],
            env={**os.environ, "TFCPU_TEST_MARKER": marker},
            timeout=60,
        )
        assert (done.returncode, done.stdout, done.stderr) == (0, "out\n", "err\n")
        assert _marked(marker) == []
    finally:
        _kill_marked(marker)


def test_temp_dir_is_removed_when_a_stop_signal_lands_inside(tmp_path: Path) -> None:
    _scenario("temp_dir", str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_importing_tfcpu_and_the_cli_installs_no_signal_handler() -> None:
    code = (
        "import json, signal; before = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)]\n"
        "import tfcpu, tfcpu._stop, tfcpu.cli.main, tfcpu.runtime.multi, tfcpu.runtime.launch\n"
        "after = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)]\n"
        "print(json.dumps([before == after, str(after)]))"
    )
    same, after = run_snippet(code, env={})
    assert same, after


def test_a_stopped_library_call_raises_keyboard_interrupt_and_leaves_no_child(tmp_path: Path) -> None:
    """tfcpu.stop_signals() in a library user's program: SIGTERM ends launch()'s copies and raises."""
    marker = uuid.uuid4().hex
    code = (
        "import sys, tfcpu\n"
        "from tfcpu.plan import InstancePlan\n"
        "from tfcpu.runtime.launch import launch\n"
        "plan = InstancePlan.for_topology(tfcpu.Topology.detect(), instances=1)\n"
        "with tfcpu.stop_signals():\n"
        "    try:\n"
        "        launch(['sh', '-c', 'sleep 300 & sleep 300'], plan)\n"
        "    except tfcpu.Stopped as exc:\n"
        "        sys.exit(exc.exit_code)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, "TFCPU_TEST_MARKER": marker},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert _wait_for(lambda: len(_marked(marker)) >= 3, 120), shlex.join(p.name() for p in _marked(marker))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 143, err
        assert _marked(marker) == []
    finally:
        _kill_marked(marker)
        proc.kill()
