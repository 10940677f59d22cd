"""How busy the machine was while tfcpu timed something: is the figure to be trusted?

Benchmarks on a shared machine measure the neighbours too. `ContentionProbe` samples, at the start
and the end of a timed region, what Linux says about the CPUs and the other processes:

* **steal**: the share of time the hypervisor gave this VM's CPUs to someone else (``/proc/stat``);
* **other processes**: CPU time used during the window by processes outside tfcpu's own tree (this
  process, its parent and the parent's other children — the sibling instances of a multi-instance
  run are tfcpu's own), in cores, and the busiest of them;
* **load**: the 1-minute load average against the usable CPUs.

`Contention.suspect` is true when steal is above 5 %, or other processes used more than 10 % of
the CPUs' time, or the load exceeds the usable CPUs by one; ``note`` says why in one line, which
``tfcpu bench``, ``tune`` and the demo print beside their figures.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Contention", "ContentionProbe", "read_cpu_times"]

STEAL_LIMIT = 5.0  # percent of the window
OTHER_LIMIT = 0.10  # share of the CPUs' time used by other processes


def read_cpu_times(text: str | None = None) -> dict[str, tuple[int, ...]]:
    """Per-CPU counters of ``/proc/stat`` (``"cpu"`` is the total): user nice system idle iowait irq softirq steal."""
    if text is None:
        try:
            with open("/proc/stat", encoding="ascii") as fh:
                text = fh.read()
        except OSError:
            return {}
    out: dict[str, tuple[int, ...]] = {}
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0].startswith("cpu"):
            values = tuple(int(v) for v in parts[1:9])
            out[parts[0]] = values + (0,) * (8 - len(values))
    return out


def _steal_pct(
    before: Mapping[str, tuple[int, ...]], after: Mapping[str, tuple[int, ...]], cpus: Iterable[int]
) -> float:
    keys = [f"cpu{c}" for c in cpus if f"cpu{c}" in before and f"cpu{c}" in after] or ["cpu"]
    total = steal = 0
    for key in keys:
        delta = [a - b for a, b in zip(after.get(key, ()), before.get(key, ()), strict=False)]
        total += sum(delta)
        steal += delta[7] if len(delta) > 7 else 0
    return 100.0 * steal / total if total > 0 else 0.0


@dataclass(frozen=True)
class Contention:
    """What else ran while a figure was measured (see the module docstring)."""

    seconds: float
    cpus: int
    steal_pct: float
    other_cores: float
    load_avg: float
    busiest: tuple[tuple[int, str, float], ...] = field(default_factory=tuple)  # (pid, name, cores)

    @property
    def suspect(self) -> bool:
        """True when the neighbours were busy enough to move the figure."""
        return (
            self.steal_pct > STEAL_LIMIT
            or self.other_cores > OTHER_LIMIT * max(self.cpus, 1)
            or self.load_avg > self.cpus + 1
        )

    @property
    def note(self) -> str:
        """One line: why the figure is suspect, or that the machine was quiet."""
        reasons = []
        if self.other_cores > OTHER_LIMIT * max(self.cpus, 1):
            who = ", ".join(f"{name} (pid {pid}) {cores:.2f}" for pid, name, cores in self.busiest[:3])
            reasons.append(
                f"other processes used {self.other_cores:.2f} of {self.cpus} CPUs" + (f": {who}" if who else "")
            )
        if self.steal_pct > STEAL_LIMIT:
            reasons.append(f"the hypervisor stole {self.steal_pct:.1f}% of the CPU time")
        if self.load_avg > self.cpus + 1:
            reasons.append(f"load average {self.load_avg:.1f} on {self.cpus} CPUs")
        if not reasons:
            return f"quiet machine (other processes {self.other_cores:.2f} CPUs, steal {self.steal_pct:.1f}%)"
        return "not to be trusted: " + "; ".join(reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "cpus": self.cpus,
            "steal_pct": self.steal_pct,
            "other_cores": self.other_cores,
            "load_avg": self.load_avg,
            "busiest": [list(b) for b in self.busiest],
            "suspect": self.suspect,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Contention:
        return cls(
            float(data["seconds"]),
            int(data["cpus"]),
            float(data["steal_pct"]),
            float(data["other_cores"]),
            float(data["load_avg"]),
            tuple((int(p), str(n), float(c)) for p, n, c in data.get("busiest", ())),
        )


def _own_pids() -> set[int]:
    """This process, its ancestors, and every descendant of its parent (sibling instances)."""
    import psutil

    me = psutil.Process()
    own = {me.pid}
    try:
        own.update(p.pid for p in me.parents())
        parent = me.parent()
        if parent is not None and parent.pid > 1:
            own.update(p.pid for p in parent.children(recursive=True))
        own.update(p.pid for p in me.children(recursive=True))
    except psutil.Error:
        pass
    return own


def _process_times() -> dict[int, tuple[str, float]]:
    import psutil

    out: dict[int, tuple[str, float]] = {}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        times = proc.info.get("cpu_times")
        if times is not None:
            out[proc.pid] = (str(proc.info.get("name") or "?"), float(times.user + times.system))
    return out


class ContentionProbe:
    """Samples the machine at `start` and `stop`; `stop` returns the `Contention` of the window.

    Args:
        cpus: the CPUs the measured work runs on (steal is read for these; default: all usable).
    """

    def __init__(self, cpus: Iterable[int] | None = None) -> None:
        self.cpus = tuple(sorted(cpus)) if cpus is not None else tuple(sorted(os.sched_getaffinity(0)))
        self._start = 0.0
        self._stat: dict[str, tuple[int, ...]] = {}
        self._procs: dict[int, tuple[str, float]] = {}

    def start(self) -> ContentionProbe:
        self._stat = read_cpu_times()
        self._procs = _process_times()
        self._start = time.perf_counter()
        return self

    def stop(self) -> Contention:
        seconds = max(time.perf_counter() - self._start, 1e-9)
        stat = read_cpu_times()
        procs = _process_times()
        own = _own_pids()
        used: list[tuple[int, str, float]] = []
        for pid, (name, total) in procs.items():
            if pid in own:
                continue
            if pid not in self._procs:
                continue  # started during the window: its share cannot be told from its total
            delta = total - self._procs[pid][1]
            if delta > 0:
                used.append((pid, name, delta / seconds))
        used.sort(key=lambda item: -item[2])
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = 0.0
        return Contention(
            seconds=seconds,
            cpus=len(os.sched_getaffinity(0)),
            steal_pct=_steal_pct(self._stat, stat, self.cpus),
            other_cores=sum(c for _, _, c in used),
            load_avg=load,
            busiest=tuple((p, n, round(c, 3)) for p, n, c in used[:5]),
        )
