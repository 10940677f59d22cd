"""Run any command once per instance of a plan, pinned, like the paper's ``multisocket.sh``.

Each copy gets the instance's thread variables and::

    TFCPU_INSTANCE_INDEX   0 .. N-1
    TFCPU_NUM_INSTANCES    N
    TFCPU_SHARD            "i/N" (a hint for scripts that split their data)
    TFCPU_CPUS             the instance's CPU list, e.g. "0-3,48-51"

Output lines are prefixed with ``[i]`` and streamed as they come. The result says which
copies failed and why.

Each copy is the leader of its own process group, and the whole group is ended, the processes the
command forked included: when the copy's command exits (SIGTERM to what it left running), at the
deadline, on an error, on Ctrl-C and, under `tfcpu._stop.stop_signals` (every ``tfcpu``
command), on SIGTERM/SIGHUP: SIGTERM, `tfcpu._stop.GRACE_S` seconds, then SIGKILL
(`tfcpu._stop.end_groups`). Nothing is left running; a process that left the group (``setsid``)
is out of reach.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from tfcpu._stop import deferred, end_groups
from tfcpu.errors import ConfigError
from tfcpu.runtime.multi import _signal_name, kill_group, pinned_argv
from tfcpu.topology.cpulist import format_cpulist

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.plan import InstancePlan

__all__ = ["CopyResult", "LaunchResult", "launch"]


@dataclass(frozen=True)
class CopyResult:
    index: int
    cpus: tuple[int, ...]
    exit_code: int | None
    signal: str | None
    timed_out: bool
    tail: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def reason(self) -> str:
        if self.timed_out:
            return "deadline exceeded; killed"
        if self.signal:
            return f"killed by {self.signal}"
        return f"exit code {self.exit_code}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "cpus": list(self.cpus),
            "exit_code": self.exit_code,
            "signal": self.signal,
            "timed_out": self.timed_out,
            "ok": self.ok,
            "tail": list(self.tail),
        }


@dataclass(frozen=True)
class LaunchResult:
    copies: tuple[CopyResult, ...]
    method: str
    seconds: float

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.copies)

    @property
    def failed(self) -> tuple[CopyResult, ...]:
        return tuple(c for c in self.copies if not c.ok)

    @property
    def exit_code(self) -> int:
        """0 if every copy succeeded, else the first failing copy's code (1 for signals)."""
        for c in self.copies:
            if not c.ok:
                return c.exit_code if c.exit_code and c.exit_code > 0 else 1
        return 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "method": self.method,
            "seconds": self.seconds,
            "copies": [c.to_dict() for c in self.copies],
        }


def instance_environment(plan: InstancePlan, index: int) -> dict[str, str]:
    inst = plan.instances[index]
    n = len(plan.instances)
    return {
        **inst.env,
        "TFCPU_INSTANCE_INDEX": str(index),
        "TFCPU_NUM_INSTANCES": str(n),
        "TFCPU_SHARD": f"{index}/{n}",
        "TFCPU_CPUS": format_cpulist(inst.cpus),
    }


def launch(
    command: Sequence[str],
    plan: InstancePlan,
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    output: IO[str] | None = None,
    on_line: Callable[[int, str], None] | None = None,
) -> LaunchResult:
    """Start ``command`` once per instance, pinned, and wait for all of them.

    Args:
        output: a text stream that receives every line prefixed with ``[i] ``; ``None`` keeps
            output only in the result's per-copy tails (library use is quiet by default).
        on_line: callback for each line ``(index, line)``.
    """
    if not command:
        raise ConfigError("no command to launch", hint="tfcpu launch --instances 2 -- python script.py")
    if timeout is not None:
        from tfcpu._numbers import MAX_SECONDS, check_number

        check_number(timeout, "timeout (seconds)", where="launch", above=0, maximum=MAX_SECONDS)
    procs: list[subprocess.Popen[bytes]] = []
    tails: list[list[str]] = [[] for _ in plan.instances]
    lock = threading.Lock()

    def pump(i: int, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            with lock:
                tails[i].append(line)
                del tails[i][:-20]
                if output is not None:
                    output.write(f"[{i}] {line}\n")
                    output.flush()
            if on_line is not None:
                on_line(i, line)

    start = time.monotonic()
    pumps: list[threading.Thread] = []
    timed_out: set[int] = set()
    finished: set[int] = set()
    try:
        for inst in plan.instances:
            with deferred():  # a stop between the start and the append would orphan the copy
                proc = subprocess.Popen(
                    pinned_argv(inst, plan.method, command),
                    env={**os.environ, **(env or {}), **instance_environment(plan, inst.index)},
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                procs.append(proc)
            assert proc.stdout is not None
            t = threading.Thread(target=pump, args=(inst.index, proc.stdout), daemon=True)
            t.start()
            pumps.append(t)
        deadline = start + timeout if timeout else None
        while any(p.poll() is None for p in procs):
            for i, p in enumerate(procs):
                if p.returncode is not None and i not in finished:  # the copy is done: so is what it forked
                    finished.add(i)
                    kill_group(p, signal.SIGTERM)
            if deadline is not None and time.monotonic() > deadline:
                late = [i for i, p in enumerate(procs) if p.poll() is None]
                timed_out.update(late)
                end_groups([procs[i] for i in late])
            time.sleep(0.02)
    finally:
        end_groups(procs)  # every copy's whole group: forked children, late or interrupted copies
        for t in pumps:
            t.join(timeout=5)
    copies = tuple(
        CopyResult(
            inst.index,
            tuple(inst.cpus),
            p.returncode,
            _signal_name(p.returncode),
            i in timed_out,
            tuple(tails[i]),
        )
        for i, (inst, p) in enumerate(zip(plan.instances, procs, strict=True))
    )
    return LaunchResult(copies, plan.method, time.monotonic() - start)
