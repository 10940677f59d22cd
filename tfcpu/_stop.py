"""Every stop is clean: SIGINT, SIGTERM and SIGHUP end tfcpu's work the same way, leaving nothing behind.

Timeouts, CI cancels and service managers send SIGTERM; a closed terminal sends SIGHUP. Python's
default for both is to die on the spot, so ``finally`` blocks never run: children keep running and
temp dirs stay. Here:

* `stop_signals()` (a context manager; ``tfcpu``'s ``main`` wraps every command in it, a library
  user may wrap their own code) turns each of the three signals into `Stopped`, a
  ``KeyboardInterrupt`` that carries the signal, so every cleanup path written for Ctrl-C runs. The
  first signal raises; later ones, while cleaning up, are ignored (the cleanup is bounded). Handlers
  are installed only in the main thread and restored on exit; importing this module installs
  nothing.
* `deferred()` holds a signal back while a child is started or a cleanup runs and raises it at the
  end of the block, so a stop never lands between ``Popen`` and the line that records the child,
  nor halfway through removing a temp dir.
* `end_groups()` ends children started with ``start_new_session=True`` (each is the leader of its
  own process group): SIGTERM to every group, up to `GRACE_S` seconds for the groups to empty
  (forked grandchildren included), then SIGKILL to what is left, and the leaders are reaped.
* `temp_dir()` is ``tempfile.TemporaryDirectory`` whose removal a signal cannot cut short.
* `run_child()` is ``subprocess.run`` for a child in its own process group, ended like the others.

Exit status of a stopped command: ``128 + signal number`` (130 SIGINT, 143 SIGTERM, 129 SIGHUP).

What this cannot do: a grandchild that leaves the process group (``setsid``, a daemon's double
fork) is outside the group and is not ended; SIGKILL of tfcpu itself runs no cleanup (a worker still
waiting for the start notices that its parent is gone and exits; one already measuring runs to its
own deadline). Run in a container or a systemd scope when that matters.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = [
    "GRACE_S",
    "STOP_SIGNALS",
    "Stopped",
    "deferred",
    "end_groups",
    "exit_code",
    "group_members",
    "run_child",
    "stop_signals",
    "temp_dir",
]

log = logging.getLogger(__name__)

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_S = 2.5
"""Seconds a process group gets between SIGTERM and SIGKILL."""


class Stopped(KeyboardInterrupt):
    """A stop signal (SIGINT, SIGTERM, SIGHUP) arrived: unwind like Ctrl-C, exit ``128 + signum``."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(f"stopped by {self.signal_name}")

    @property
    def signal_name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def exit_code(exc: BaseException) -> int:
    """The exit status for an interruption: ``128 + signum`` of a `Stopped`, 130 for a plain Ctrl-C."""
    return exc.exit_code if isinstance(exc, Stopped) else 128 + signal.SIGINT


@dataclass
class _State:
    installed: int = 0
    stopping: bool = False
    deferring: int = 0
    pending: int | None = None


_state = _State()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _handler(signum: int, frame: FrameType | None) -> None:
    if _state.stopping:
        log.debug("signal %d while stopping: ignored, the cleanup is under way", signum)
        return
    if _state.deferring:
        if _state.pending is None:
            _state.pending = signum
        return
    _state.stopping = True
    raise Stopped(signum)


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise `Stopped` (once); the old handlers come back after.

    Outside the main thread (where Python cannot install handlers) the block runs unchanged.
    """
    if not _in_main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    if not _state.installed:
        _state.stopping, _state.pending = False, None
    _state.installed += 1
    for sig in STOP_SIGNALS:
        signal.signal(sig, _handler)
    try:
        yield
    finally:
        _state.installed -= 1
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        if not _state.installed:
            _state.stopping, _state.pending = False, None


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold a stop signal arriving in the block; raise it as `Stopped` when the block ends.

    A no-op outside `stop_signals()` for SIGTERM/SIGHUP (their default kills the process anyway) and
    outside the main thread (signals are handled there only).
    """
    if not _in_main_thread():
        yield
        return
    _state.deferring += 1
    try:
        yield
    finally:
        _state.deferring -= 1
        if not _state.deferring and _state.pending is not None and not _state.stopping:
            signum, _state.pending = _state.pending, None
            _state.stopping = True
            raise Stopped(signum)


# -- process groups ---------------------------------------------------------------------------------
def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``, read from ``/proc``."""
    members = []
    try:
        names = os.listdir("/proc")
    except OSError:  # no procfs: ask the kernel whether the group has anyone (zombies included)
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()  # state ppid pgrp ...; comm may hold spaces
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            members.append(int(name))
    return members


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _alive(procs: Sequence[subprocess.Popen[Any]]) -> list[subprocess.Popen[Any]]:
    return [p for p in procs if p.poll() is None or group_members(p.pid)]


def _wait_empty(procs: Sequence[subprocess.Popen[Any]], seconds: float) -> list[subprocess.Popen[Any]]:
    deadline = time.monotonic() + seconds
    alive = _alive(procs)
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = _alive(alive)
    return alive


def end_groups(procs: Sequence[subprocess.Popen[Any]], grace: float = GRACE_S) -> None:
    """End the process group of every child in ``procs`` (each started with ``start_new_session=True``).

    SIGTERM to each group that still has a process, then up to ``grace`` seconds for all of them to
    empty, then SIGKILL to the rest; returns when the groups are empty and the leaders reaped (SIGKILL
    is waited for up to 5 s more). A stop signal arriving meanwhile is held until the end.
    """
    with deferred():
        alive = _alive(procs)
        for p in alive:
            _signal_group(p.pid, signal.SIGTERM)
        alive = _wait_empty(alive, grace)
        for p in alive:
            log.debug("process group %d still running %.1f s after SIGTERM: SIGKILL", p.pid, grace)
            _signal_group(p.pid, signal.SIGKILL)
        left = _wait_empty(alive, 5.0)
        for p in left:
            log.warning("process group %d survived SIGKILL for 5 s (a process stuck in the kernel?)", p.pid)


def run_child(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(argv, capture_output=True, text=True)`` with the child in its own process group,
    which is ended (`end_groups`) however the call ends: done, ``TimeoutExpired`` or a stop signal.

    When the child exits, what it forked and left running gets SIGTERM (it would hold the pipes open).
    """
    proc: subprocess.Popen[str] | None = None
    try:
        with deferred():
            proc = subprocess.Popen(
                list(argv),
                env=None if env is None else dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # short rounds: what the child forked may hold the pipes open after the child exits
            left = 0.2 if deadline is None else min(0.2, max(deadline - time.monotonic(), 0.0))
            try:
                out, err = proc.communicate(timeout=left)
                return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)
            except subprocess.TimeoutExpired:
                if deadline is not None and time.monotonic() >= deadline:
                    raise subprocess.TimeoutExpired(list(argv), timeout or 0.0) from None
                if proc.poll() is not None:  # the child is done: so is what it left running
                    _signal_group(proc.pid, signal.SIGTERM)
    finally:
        if proc is not None:
            end_groups([proc])
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    """A fresh directory under the system temp dir, removed at the end even when a stop signal lands."""
    path: str | None = None
    try:
        with deferred():
            path = tempfile.mkdtemp(prefix=prefix)
        yield Path(path)
    finally:
        if path is not None:
            with deferred():
                shutil.rmtree(path, ignore_errors=True)
