"""Scenarios of tests/unit/test_stop.py that signal their own process, run in a fresh interpreter.

``python -c "from tests.stop_scenarios import run; run(['stopped', '15'])"`` prints ``ok`` and exits 0
when the scenario's assertions hold; an assertion error exits non-zero with its traceback.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tfcpu._stop import Stopped, deferred, exit_code, stop_signals, temp_dir


def _stopped(sig: int) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        with stop_signals():
            os.kill(os.getpid(), sig)
            time.sleep(5)  # the handler runs at the next bytecode: this sleep is interrupted
        raise AssertionError("the signal did not stop the block")
    except Stopped as exc:
        assert exc.signum == sig and isinstance(exc, KeyboardInterrupt)
        assert exit_code(exc) == 128 + sig == exc.exit_code
    assert {s: signal.getsignal(s) for s in before} == before


def _second() -> None:
    cleaned = False
    try:
        with stop_signals():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            finally:
                os.kill(os.getpid(), signal.SIGHUP)
                time.sleep(0.1)
                cleaned = True
    except Stopped as exc:
        assert cleaned and exc.signum == signal.SIGTERM
    else:
        raise AssertionError("no Stopped")


def _deferred() -> None:
    done = []
    try:
        with stop_signals():
            with deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.2)
                done.append("inside")
            done.append("after")  # never reached: the held signal is raised as the block ends
    except Stopped as exc:
        assert done == ["inside"] and exc.signum == signal.SIGTERM
    else:
        raise AssertionError("no Stopped")
    assert exit_code(KeyboardInterrupt()) == 130


def _temp_dir(where: str) -> None:
    tempfile.tempdir = where
    try:
        with stop_signals(), temp_dir("tfcpu-test-") as work:
            (work / "file").write_text("x")
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(5)
    except Stopped:
        pass
    assert list(Path(where).iterdir()) == []


def run(argv: Sequence[str]) -> None:
    name, *args = argv
    if name == "stopped":
        _stopped(int(args[0]))
    elif name == "second":
        _second()
    elif name == "deferred":
        _deferred()
    elif name == "temp_dir":
        _temp_dir(args[0])
    else:
        raise SystemExit(f"unknown scenario {name!r}")
    print("ok", flush=True)
