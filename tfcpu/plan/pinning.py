"""Choose how to pin a child process to its CPUs, by trying it on this machine.

The white paper launches every instance with ``numactl -N <node> -m <node>``. numactl is
often missing (minimal images, this project's CI), or present but refused: in a container
without ``CAP_SYS_NICE``, ``--membind`` fails with ``set_mempolicy: Operation not
permitted``. `probe_pinning()` tries, with a CPU and a node taken from the *allowed*
set (CPU 0 may be outside a container's cpuset):

1. ``numactl --physcpubind=<cpu> --membind=<node> true`` → ``"numactl"`` (CPUs + memory);
2. ``numactl --physcpubind=<cpu> true`` → ``"numactl-cpubind"`` (CPUs only);
3. ``taskset -c <cpu> true`` → ``"taskset"``;
4. otherwise ``"sched_setaffinity"``: the child pins itself with ``os.sched_setaffinity``.

A missing tool is normal, not an error; each attempt is recorded for the user to read.
Results are cached per process (keyed by CPU, node, memory binding and ``PATH``).
``which`` and ``run`` can be replaced to probe a different system (tests use fake tools).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tfcpu.errors import PlanError, did_you_mean

if TYPE_CHECKING:
    from tfcpu.topology import Topology

__all__ = ["METHODS", "PinningProbe", "clear_probe_cache", "launch_prefix", "probe_pinning"]

log = logging.getLogger(__name__)

#: Pinning methods, best first.
METHODS: tuple[str, ...] = ("numactl", "numactl-cpubind", "taskset", "sched_setaffinity")

Which = Callable[[str], "str | None"]
Run = Callable[[Sequence[str]], "tuple[int, str]"]

_CACHE: dict[tuple[Any, ...], PinningProbe] = {}


@dataclass(frozen=True)
class PinningProbe:
    """The pinning method chosen for this machine and how it was chosen.

    Attributes:
        method: one of `METHODS`.
        memory_binding: whether memory is bound to the instance's NUMA node.
        attempts: one line per command tried, with its outcome.
        probed: False when the method was forced or the topology is not this machine's.
    """

    method: str
    memory_binding: bool
    attempts: tuple[str, ...] = ()
    probed: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "memory_binding": self.memory_binding,
            "attempts": list(self.attempts),
            "probed": self.probed,
        }


def check_method(method: str) -> str:
    """Validate a method name (`PlanError` with a suggestion otherwise)."""
    if method not in METHODS:
        raise PlanError(
            "unknown pinning method",
            where=repr(method),
            why="expected one of " + ", ".join(METHODS),
            hint=did_you_mean(method, METHODS),
        )
    return method


def _default_run(argv: Sequence[str]) -> tuple[int, str]:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return proc.returncode, (proc.stderr or proc.stdout or "").strip()


def clear_probe_cache() -> None:
    """Forget cached probe results (after installing numactl, for example)."""
    _CACHE.clear()


def probe_pinning(
    topo: Topology,
    *,
    memory_binding: bool = True,
    which: Which | None = None,
    run: Run | None = None,
) -> PinningProbe:
    """Find the best pinning method that works here, trying a CPU and node from ``topo``'s allowed set.

    Args:
        topo: the topology of *this* machine (its first usable CPU and that CPU's node are used).
        memory_binding: try ``numactl --membind`` first; False starts at CPU-only methods.
        which: finds an executable by name (default `shutil.which()`).
        run: runs an argv and returns ``(exit code, stderr)`` (default: `subprocess`).
    """
    cpus = topo.usable_cpu_set or topo.online_cpus
    cpu = cpus[0]
    node = next((n.id for n in topo.numa_nodes if cpu in n.cpus), 0)
    cacheable = which is None and run is None
    key = (cpu, node, memory_binding, os.environ.get("PATH", ""))
    if cacheable and key in _CACHE:
        return _CACHE[key]
    which_fn: Which = which or shutil.which
    run_fn: Run = run or _default_run
    attempts: list[str] = []

    def attempt(argv: list[str]) -> bool:
        code, err = run_fn(argv)
        shown = " ".join(argv)
        if code == 0:
            attempts.append(f"{shown}: ok")
            return True
        first = err.splitlines()[0] if err else f"exit code {code}"
        attempts.append(f"{shown}: refused ({first})")
        return False

    result: PinningProbe | None = None
    numactl = which_fn("numactl")
    if numactl is None:
        attempts.append("numactl: not installed")
    else:
        if memory_binding and attempt([numactl, f"--physcpubind={cpu}", f"--membind={node}", "true"]):
            result = PinningProbe("numactl", True, tuple(attempts))
        elif attempt([numactl, f"--physcpubind={cpu}", "true"]):
            result = PinningProbe("numactl-cpubind", False, tuple(attempts))
    if result is None:
        taskset = which_fn("taskset")
        if taskset is None:
            attempts.append("taskset: not installed")
        elif attempt([taskset, "-c", str(cpu), "true"]):
            result = PinningProbe("taskset", False, tuple(attempts))
    if result is None:
        attempts.append("os.sched_setaffinity in the child")
        result = PinningProbe("sched_setaffinity", False, tuple(attempts))
    log.debug("pinning probe: %s", "; ".join(result.attempts))
    if cacheable:
        _CACHE[key] = result
    return result


def forced(method: str, memory_binding: bool, reason: str) -> PinningProbe:
    """A probe result for a method chosen without probing (forced, or a captured topology)."""
    check_method(method)
    if method == "numactl" and not memory_binding:
        method = "numactl-cpubind"
    return PinningProbe(method, method == "numactl", (reason,), probed=False)


def launch_prefix(method: str, cpulist: str, node: int, *, whole_node: bool) -> tuple[str, ...]:
    """The argv to put before a command so it runs on ``cpulist`` (and node ``node``'s memory).

    ``whole_node`` uses the paper's short form ``numactl -N <node> -m <node>``.
    """
    if method == "numactl":
        if whole_node:
            return ("numactl", "-N", str(node), "-m", str(node))
        return ("numactl", f"--physcpubind={cpulist}", f"--membind={node}")
    if method == "numactl-cpubind":
        if whole_node:
            return ("numactl", "-N", str(node))
        return ("numactl", f"--physcpubind={cpulist}")
    if method == "taskset":
        return ("taskset", "-c", cpulist)
    check_method(method)
    return ()
