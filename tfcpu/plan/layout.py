"""Split a Topology's usable cores into instances, following Section 7's rules.

Pure functions over `Core` tuples; no I/O.

Rules:

* An instance never spans sockets or NUMA nodes, and never mixes P and E cores: cores are
  first grouped by (NUMA node, socket, core kind).
* Within a group an instance stays inside one L3 domain whenever its size fits in one
  (AMD EPYC: 4-core CCDs). Larger instances take consecutive cores, which crosses as few
  L3 boundaries as the numbering allows.
* A core's SMT siblings always go to the same instance (``proclist=[0-3,48-51]``).
* Total threads (one per physical core) never exceed the usable budget, which includes
  the cgroup CPU quota.
* ``instances=N`` uses the largest equal size that fits N instances, spreading them
  round-robin over nodes/sockets, P cores before E cores. Equal sizes keep instances
  finishing together; the cores left over are reported, not hidden. When that size is
  larger than an L3 domain (AMD EPYC CCDs), it is rounded down to whole domains, so no two
  instances share an L3: 5 instances on 8 CCDs of 4 cores get 4 cores each, not 6.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tfcpu.errors import PlanError
from tfcpu.topology.cpulist import format_cpulist
from tfcpu.topology.model import Core, Topology

__all__ = ["Group", "Layout", "groups", "layout"]


@dataclass(frozen=True)
class Group:
    """Cores that may share an instance: same NUMA node, socket and kind."""

    node: int
    socket: int
    kind: str
    cores: tuple[Core, ...]

    @property
    def unit(self) -> tuple[int, int]:
        return (self.node, self.socket)

    def describe(self) -> str:
        kind = f", {self.kind} cores" if self.kind != "P" else ""
        return f"node {self.node} (socket {self.socket}{kind})"


@dataclass(frozen=True)
class Layout:
    """Chosen slots (each a tuple of cores) and the group each came from, plus notes."""

    slots: tuple[tuple[Core, ...], ...]
    slot_groups: tuple[Group, ...]
    cores_per_instance: int
    notes: tuple[str, ...]


def groups(topo: Topology, smt: bool = True) -> tuple[Group, ...]:
    """Usable cores grouped by (node, socket, kind); P before E within a node."""
    by_key: dict[tuple[int, int, str], list[Core]] = {}
    for core in topo.usable_cores:
        cpus = core.cpus if smt else core.cpus[:1]
        slim = Core(core.socket, core.core_id, cpus, core.kind, core.numa_node, core.l3)
        by_key.setdefault((core.numa_node, core.socket, core.kind), []).append(slim)
    ordered = sorted(by_key, key=lambda k: (k[0], k[1], k[2] != "P", k[2]))
    return tuple(
        Group(n, s, kind, tuple(sorted(by_key[(n, s, kind)], key=lambda c: (c.l3, min(c.cpus)))))
        for n, s, kind in ordered
    )


def _split_l3_size(grps: Sequence[Group]) -> int | None:
    """Cores per L3 domain in groups that hold several domains (AMD CCDs); None if no group does."""
    sizes = []
    for group in grps:
        counts: dict[int, int] = {}
        for core in group.cores:
            counts[core.l3] = counts.get(core.l3, 0) + 1
        if len(counts) > 1:
            sizes.append(max(counts.values()))
    return max(sizes) if sizes else None


def pack(group: Group, k: int) -> list[tuple[Core, ...]]:
    """Instances of ``k`` cores inside ``group``; inside one L3 domain when ``k`` fits in one."""
    by_l3: dict[int, list[Core]] = {}
    for core in group.cores:
        by_l3.setdefault(core.l3, []).append(core)
    if any(len(sub) >= k for sub in by_l3.values()):
        return [tuple(sub[i : i + k]) for sub in by_l3.values() for i in range(0, len(sub) - k + 1, k)]
    cores = group.cores
    return [tuple(cores[i : i + k]) for i in range(0, len(cores) - k + 1, k)]


def _select(candidates: Sequence[tuple[Group, list[tuple[Core, ...]]]], n: int) -> list[tuple[Group, tuple[Core, ...]]]:
    """Pick ``n`` slots round-robin over (node, socket) units; within a unit in order (P first)."""
    units: dict[tuple[int, int], list[tuple[Group, tuple[Core, ...]]]] = {}
    for group, slots in candidates:
        units.setdefault(group.unit, []).extend((group, s) for s in slots)
    queues = list(units.values())
    chosen: list[tuple[Group, tuple[Core, ...]]] = []
    depth = 0
    while len(chosen) < n and any(depth < len(q) for q in queues):
        for q in queues:
            if depth < len(q) and len(chosen) < n:
                chosen.append(q[depth])
        depth += 1
    order = {id(item): i for i, item in enumerate(x for q in queues for x in q)}
    chosen.sort(key=lambda item: order[id(item)])
    return chosen


def layout(
    topo: Topology,
    *,
    instances: int | None = None,
    cores_per_instance: int | None = None,
    smt: bool = True,
) -> Layout:
    """Choose instance slots for ``instances=N`` or ``cores_per_instance=K`` (exactly one)."""
    if (instances is None) == (cores_per_instance is None):
        raise PlanError(
            "give exactly one of instances= or cores_per_instance=",
            why="both given" if instances is not None else "neither given",
            hint="e.g. cores_per_instance=4 (the paper's best for ResNet-50) or instances=2",
        )
    grps = groups(topo, smt)
    total = sum(len(g.cores) for g in grps)
    budget = min(total, topo.usable_physical_cores)
    quota = f"the CPU quota of {topo.cpu_quota:g} CPUs" if topo.cpu_quota is not None else None
    largest = max((len(g.cores) for g in grps), default=0)

    if instances is not None:
        if isinstance(instances, bool) or not isinstance(instances, int) or instances < 1:
            raise PlanError("instances must be a positive integer", why=f"got {instances!r}", hint="e.g. instances=2")
        if instances > budget:
            limit = quota or f"{total} usable physical cores"
            raise PlanError(
                f"{instances} instances do not fit",
                why=f"each instance needs at least one physical core and {limit} allows {budget}",
                hint=f"use instances={budget} or fewer",
            )
        k = budget // instances
        while True:
            candidates = [(g, pack(g, k)) for g in grps]
            if sum(len(s) for _, s in candidates) >= instances or k == 1:
                break
            k -= 1
        # Larger than one L3 domain: use whole domains, so no two instances share an L3.
        l3 = _split_l3_size(grps)
        if l3 is not None and k > l3 and k % l3:
            whole = [(g, pack(g, k // l3 * l3)) for g in grps]
            if sum(len(s) for _, s in whole) >= instances:
                k, candidates = k // l3 * l3, whole
        chosen = _select(candidates, instances)
    else:
        k = cores_per_instance  # type: ignore[assignment]
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise PlanError("cores_per_instance must be a positive integer", why=f"got {k!r}", hint="e.g. 4")
        if k > largest:
            raise PlanError(
                f"cores_per_instance={k} is larger than any NUMA node",
                why=f"an instance never spans NUMA nodes or sockets; the largest group has {largest} usable cores",
                hint=f"use cores_per_instance={largest} or fewer",
            )
        if k > budget:
            raise PlanError(
                f"cores_per_instance={k} exceeds the CPU budget",
                why=f"{quota or 'the usable CPUs'} allow {budget} threads in total",
                hint=f"use cores_per_instance={budget} or fewer",
            )
        candidates = [(g, pack(g, k)) for g in grps]
        available = sum(len(s) for _, s in candidates)
        chosen = _select(candidates, min(available, budget // k))

    notes = _notes(topo, grps, chosen, candidates, k, quota)
    return Layout(
        slots=tuple(s for _, s in chosen),
        slot_groups=tuple(g for g, _ in chosen),
        cores_per_instance=k,
        notes=tuple(notes),
    )


def _notes(
    topo: Topology,
    grps: Sequence[Group],
    chosen: Sequence[tuple[Group, tuple[Core, ...]]],
    candidates: Sequence[tuple[Group, list[tuple[Core, ...]]]],
    k: int,
    quota: str | None,
) -> list[str]:
    notes: list[str] = []
    used = {cpu for _, slot in chosen for core in slot for cpu in core.cpus}
    total = sum(len(g.cores) for g in grps)
    available = sum(len(s) for _, s in candidates)
    for group in grps:
        left = [c for c in group.cores if not set(c.cpus) & used]
        if not left:
            continue
        cpus = format_cpulist(cpu for c in left for cpu in c.cpus)
        if quota is not None and topo.usable_physical_cores < total:
            reason = f"{quota} allows {topo.usable_physical_cores} threads in total"
        elif len(chosen) < available:
            reason = f"only {len(chosen)} instance(s) requested"
        elif len(left) >= k:
            reason = (
                f"{len(left)} cores left over inside L3 domains; an instance of {k} fits in one L3 domain, "
                "so none spans two"
            )
        else:
            reason = f"{len(left)} core(s) left, fewer than {k} per instance"
        notes.append(f"CPUs {cpus} in {group.describe()} unused: {reason}")
    smt_left = [cpu for core in topo.usable_cores for cpu in core.cpus[1:] if core.cpus[0] in used and cpu not in used]
    if smt_left:
        notes.append(f"SMT siblings {format_cpulist(smt_left)} left idle (smt=False)")
    return notes
