"""Read a `Topology` from sysfs, procfs and cgroupfs.

Every path is relative to ``root`` so tests run on captured trees. What is read, and why:

* ``sys/devices/system/cpu/online`` — which CPUs exist and are online.
* ``cpuN/topology/{physical_package_id,core_id,thread_siblings_list}`` — sockets and SMT
  siblings. Siblings come from ``thread_siblings_list``, never from numbering habits
  ("the upper half are hyper-threads" is wrong on many machines).
* ``cpuN/cache/index*/{level,shared_cpu_list}`` — L3 domains (AMD EPYC has several per
  socket; an instance split across them is slower).
* ``sys/devices/system/node/nodeN/cpulist`` — NUMA nodes; absent in many VMs.
* ``sys/devices/cpu_core/cpus`` and ``cpu_atom/cpus`` — P and E cores of hybrid CPUs.
* ``proc/cpuinfo`` — vendor, model name, ISA flags, the hypervisor flag; also the
  fallback for sockets/cores when sysfs topology is missing.
* ``proc/self/status`` (``Cpus_allowed_list``) — the CPUs this process may use. On the
  real root, ``os.sched_getaffinity(0)`` is authoritative instead.
* ``proc/self/cgroup`` + ``sys/fs/cgroup/.../cpu.max`` (v2) or ``cpu.cfs_quota_us`` /
  ``cpu.cfs_period_us`` (v1) — CPU quota, which neither affinity nor ``os.cpu_count()``
  shows and which collapses throughput when exceeded.

A missing file is never fatal: the reader falls back and records a note.
`TopologyError` is raised only when no CPU can be found at all.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from tfcpu.errors import TopologyError
from tfcpu.topology.cpulist import parse_cpulist
from tfcpu.topology.isa import ONEDNN_ISA_CAP, cap_isa, normalise_flags
from tfcpu.topology.model import Core, NumaNode, Topology

__all__ = ["detect"]

log = logging.getLogger(__name__)

_CPU_DIR = "sys/devices/system/cpu"
_NODE_DIR = "sys/devices/system/node"


class _Tree:
    """Reads small text files below a root; missing or unreadable files give ``None``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")

    def read(self, rel: str) -> str | None:
        try:
            return self.path(rel).read_text(errors="replace").strip()
        except (OSError, ValueError):
            return None

    def cpulist(self, rel: str) -> tuple[int, ...] | None:
        text = self.read(rel)
        if text is None:
            return None
        try:
            return parse_cpulist(text)
        except ValueError:
            log.warning("ignoring malformed CPU list in %s: %r", rel, text)
            return None

    def integer(self, rel: str) -> int | None:
        text = self.read(rel)
        try:
            return int(text) if text is not None else None
        except ValueError:
            return None

    def listdir(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(rel)))
        except OSError:
            return []


def _parse_cpuinfo(text: str) -> list[dict[str, str]]:
    """Split ``/proc/cpuinfo`` into one dict per processor block."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current[key.strip()] = value.strip()
    if current:
        blocks.append(current)
    return [b for b in blocks if "processor" in b]


def _online(tree: _Tree, cpuinfo: list[dict[str, str]], notes: list[str]) -> tuple[int, ...]:
    online = tree.cpulist(f"{_CPU_DIR}/online")
    if online:
        return online
    present = [int(m.group(1)) for d in tree.listdir(_CPU_DIR) if (m := re.fullmatch(r"cpu(\d+)", d))]
    if present:
        notes.append(f"{_CPU_DIR}/online missing: assumed every cpuN directory is online")
        return tuple(sorted(c for c in present if tree.read(f"{_CPU_DIR}/cpu{c}/online") != "0"))
    ids = []
    for block in cpuinfo:
        try:
            ids.append(int(block["processor"]))
        except ValueError:
            continue
    if ids:
        notes.append("no sysfs CPU information: CPUs taken from /proc/cpuinfo")
    return tuple(sorted(ids))


def _cores(
    tree: _Tree, online: tuple[int, ...], cpuinfo: list[dict[str, str]], notes: list[str]
) -> list[tuple[int, int, tuple[int, ...]]]:
    """Return (socket, core_id, sibling CPUs) for every physical core with an online CPU."""
    online_set = set(online)
    by_cpu_info = {}
    for block in cpuinfo:
        try:
            by_cpu_info[int(block["processor"])] = block
        except (KeyError, ValueError):
            continue
    groups: dict[tuple[int, ...], tuple[int, int]] = {}
    missing_sysfs = False
    for cpu in online:
        base = f"{_CPU_DIR}/cpu{cpu}/topology"
        siblings = tree.cpulist(f"{base}/thread_siblings_list")
        socket = tree.integer(f"{base}/physical_package_id")
        core_id = tree.integer(f"{base}/core_id")
        if siblings is None or socket is None:
            missing_sysfs = True
            info = by_cpu_info.get(cpu, {})
            socket = int(info.get("physical id", 0) or 0)
            core_id = int(info.get("core id", cpu) or cpu)
            # Without sysfs, group CPUs that /proc/cpuinfo says share (socket, core id).
            siblings = tuple(
                c
                for c, b in by_cpu_info.items()
                if c in online_set
                and int(b.get("physical id", 0) or 0) == socket
                and int(b.get("core id", c) or c) == core_id
            ) or (cpu,)
        siblings = tuple(c for c in siblings if c in online_set) or (cpu,)
        if cpu not in siblings:
            siblings = tuple(sorted((*siblings, cpu)))
        groups.setdefault(siblings, (max(socket, 0), core_id if core_id is not None else cpu))
    if missing_sysfs:
        notes.append("sysfs topology incomplete: cores/sockets partly taken from /proc/cpuinfo")
    return [(sock, cid, sib) for sib, (sock, cid) in groups.items()]


def _numa(tree: _Tree, online: tuple[int, ...], notes: list[str]) -> tuple[NumaNode, ...]:
    online_set = set(online)
    nodes = []
    for entry in tree.listdir(_NODE_DIR):
        m = re.fullmatch(r"node(\d+)", entry)
        if not m:
            continue
        cpus = tree.cpulist(f"{_NODE_DIR}/{entry}/cpulist") or ()
        cpus = tuple(c for c in cpus if c in online_set)
        if cpus:
            nodes.append(NumaNode(int(m.group(1)), cpus))
    if not nodes:
        notes.append("no NUMA information: one synthetic node 0 holds every CPU")
        return (NumaNode(0, online),)
    covered = {c for n in nodes for c in n.cpus}
    stray = tuple(c for c in online if c not in covered)
    if stray:
        notes.append(f"CPUs {list(stray)} are in no NUMA node: assigned to node {nodes[0].id}")
        nodes[0] = NumaNode(nodes[0].id, tuple(sorted((*nodes[0].cpus, *stray))))
    return tuple(sorted(nodes, key=lambda n: n.id))


def _l3(tree: _Tree, cpu: int) -> tuple[int, ...] | None:
    base = f"{_CPU_DIR}/cpu{cpu}/cache"
    for entry in tree.listdir(base):
        if not entry.startswith("index"):
            continue
        if tree.read(f"{base}/{entry}/level") == "3":
            return tree.cpulist(f"{base}/{entry}/shared_cpu_list")
    # Captured trees sometimes hold only index3/shared_cpu_list.
    if tree.read(f"{base}/index3/level") is None:
        return tree.cpulist(f"{base}/index3/shared_cpu_list")
    return None


def _quota(tree: _Tree, notes: list[str]) -> float | None:
    """CPU bandwidth limit of this process's cgroup, in CPUs; the tightest along the path."""
    cgroup_paths: list[str] = []
    text = tree.read("proc/self/cgroup") or ""
    v1_cpu_path = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            cgroup_paths.append(path)
        elif "cpu" in controllers.split(","):
            v1_cpu_path = path

    limits: list[float] = []
    # cgroup v2: check the process's own cgroup and each parent visible in this namespace.
    for path in cgroup_paths or ["/"]:
        parts = [p for p in path.split("/") if p and p != ".."]
        for depth in range(len(parts), -1, -1):
            rel = "/".join(["sys/fs/cgroup", *parts[:depth], "cpu.max"])
            value = tree.read(rel)
            if value:
                fields = value.split()
                if fields and fields[0] != "max":
                    try:
                        period = float(fields[1]) if len(fields) > 1 else 100000.0
                        limits.append(float(fields[0]) / period)
                    except (ValueError, ZeroDivisionError):
                        notes.append(f"unreadable {rel}: {value!r}")
    # cgroup v1: cpu or cpu,cpuacct hierarchy, own path then the mount root.
    for mount in ("sys/fs/cgroup/cpu", "sys/fs/cgroup/cpu,cpuacct"):
        candidates = [mount]
        if v1_cpu_path and v1_cpu_path != "/":
            candidates.insert(0, mount + "/" + v1_cpu_path.strip("/"))
        for base in candidates:
            quota_us = tree.integer(f"{base}/cpu.cfs_quota_us")
            period_us = tree.integer(f"{base}/cpu.cfs_period_us")
            if quota_us is not None and quota_us > 0 and period_us:
                limits.append(quota_us / period_us)
                break
    if not limits:
        return None
    return round(min(limits), 4)


def _allowed(tree: _Tree, real_root: bool, online: tuple[int, ...], notes: list[str]) -> tuple[int, ...]:
    if real_root and hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    status = tree.read("proc/self/status") or ""
    m = re.search(r"^Cpus_allowed_list:\s*(\S+)", status, re.MULTILINE)
    if m:
        try:
            return parse_cpulist(m.group(1))
        except ValueError:
            notes.append(f"malformed Cpus_allowed_list {m.group(1)!r}")
    if real_root:
        try:
            import psutil

            return tuple(sorted(psutil.Process().cpu_affinity() or online))
        except Exception:  # noqa: BLE001 - psutil is only a fallback
            pass
    notes.append("allowed CPUs unknown: assumed every online CPU")
    return online


def _capped(isa: tuple[str, ...], cap: str | None, notes: list[str]) -> tuple[str, ...]:
    kept, hidden = cap_isa(isa, cap)
    if hidden:
        notes.append(
            f"{ONEDNN_ISA_CAP}={cap}: {', '.join(hidden)} hidden (oneDNN in TensorFlow and OpenVINO will not use "
            "them, and tfcpu's precision policy reads the CPU without them; TensorFlow still turns oneDNN on by "
            "default from the real CPU, so set TF_ENABLE_ONEDNN_OPTS to match)"
        )
    return kept


def detect(root: str | os.PathLike[str] = "/") -> Topology:
    """Read the CPU topology below ``root`` (``"/"`` for this machine).

    Raises:
        TopologyError: not a single CPU could be found under ``root``.
    """
    tree = _Tree(root)
    real_root = os.path.realpath(root) == "/"
    notes: list[str] = []

    cpuinfo = _parse_cpuinfo(tree.read("proc/cpuinfo") or "")
    if not cpuinfo:
        notes.append("proc/cpuinfo missing or empty: vendor, model and ISA unknown")
    online = _online(tree, cpuinfo, notes)
    if not online:
        raise TopologyError(
            "no CPU found",
            where=str(tree.path(_CPU_DIR)),
            why="neither sys/devices/system/cpu nor proc/cpuinfo lists any CPU",
            hint="pass the root of a Linux file system (or of a captured tree) as root=",
        )

    first = cpuinfo[0] if cpuinfo else {}
    vendor = first.get("vendor_id", "unknown")
    model_name = first.get("model name", "unknown")
    # Flags present on every CPU (a hybrid CPU may list more on P cores in odd kernels).
    flag_sets = [set(b.get("flags", "").split()) for b in cpuinfo if b.get("flags")]
    common = set.intersection(*flag_sets) if flag_sets else set()
    isa = normalise_flags(common)
    if real_root:  # this machine as oneDNN sees it: ONEDNN_MAX_CPU_ISA hides the flags above its level
        isa = _capped(isa, os.environ.get(ONEDNN_ISA_CAP), notes)
    is_vm = "hypervisor" in common or (tree.read("sys/hypervisor/type") or "") not in ("", "none")

    numa_nodes = _numa(tree, online, notes)
    node_of = {cpu: node.id for node in numa_nodes for cpu in node.cpus}

    p_cpus = set(tree.cpulist("sys/devices/cpu_core/cpus") or ())
    e_cpus = set(tree.cpulist("sys/devices/cpu_atom/cpus") or ())
    hybrid = bool(p_cpus and e_cpus)

    raw_cores = _cores(tree, online, cpuinfo, notes)

    # L3 domains, in order of first CPU; fall back to one per socket.
    l3_sets: dict[tuple[int, ...], None] = {}
    l3_of: dict[int, tuple[int, ...]] = {}
    online_set = set(online)
    for cpu in online:
        shared = _l3(tree, cpu)
        if shared:
            shared = tuple(c for c in shared if c in online_set) or (cpu,)
            l3_of[cpu] = shared
    if len(l3_of) != len(online):
        if l3_of:
            notes.append("L3 information missing for some CPUs: those grouped by socket")
        else:
            notes.append("no L3 cache information: one L3 domain per socket assumed")
        for sock, _, sib in raw_cores:
            same_socket = tuple(sorted(c for s, _, sb in raw_cores if s == sock for c in sb))
            for cpu in sib:
                l3_of.setdefault(cpu, same_socket)
    for cpu in online:
        l3_sets.setdefault(l3_of[cpu], None)
    l3_domains = tuple(sorted(l3_sets, key=lambda d: d[0]))
    l3_index = {cpu: i for i, dom in enumerate(l3_domains) for cpu in dom}

    cores = []
    for sock, cid, sib in raw_cores:
        kind = "E" if hybrid and sib[0] in e_cpus else "P"
        cores.append(Core(sock, cid, sib, kind, node_of.get(sib[0], numa_nodes[0].id), l3_index[sib[0]]))
    cores.sort(key=lambda c: (c.socket, c.cpus[0]))

    allowed = tuple(c for c in _allowed(tree, real_root, online, notes) if c in online_set)
    if not allowed:
        notes.append("no allowed CPU is online: assumed every online CPU")
        allowed = online
    quota = _quota(tree, notes)

    topo = Topology(
        vendor=vendor,
        model_name=model_name,
        numa_nodes=numa_nodes,
        cores=tuple(cores),
        l3_domains=l3_domains,
        online_cpus=online,
        allowed_cpus=allowed,
        cpu_quota=quota,
        isa=isa,
        is_vm=is_vm,
        hybrid=hybrid,
        notes=tuple(notes),
        root=str(root),
    )
    for note in notes:
        log.debug("topology: %s", note)
    return topo
