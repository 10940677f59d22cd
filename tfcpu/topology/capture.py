"""Capture the files `detect()` reads into one JSON document, and lay them out again.

A capture makes a machine reproducible elsewhere: attach it to a bug report, or keep it
as test data (``tests/data/topologies/*.json``). The format is::

    {"format": "tfcpu-topology-capture/1", "description": "...", "files": {"rel/path": "text"}}
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from tfcpu.errors import ConfigError

__all__ = ["FORMAT", "capture", "materialise"]

FORMAT = "tfcpu-topology-capture/1"

_PATTERNS = (
    r"sys/devices/system/cpu/online",
    r"sys/devices/system/cpu/cpu\d+/online",
    r"sys/devices/system/cpu/cpu\d+/topology/(physical_package_id|core_id|thread_siblings_list|die_id)",
    r"sys/devices/system/cpu/cpu\d+/cache/index\d+/(level|shared_cpu_list|type)",
    r"sys/devices/system/node/node\d+/cpulist",
    r"sys/devices/cpu_core/cpus",
    r"sys/devices/cpu_atom/cpus",
    r"sys/fs/cgroup/.*cpu\.max",
    r"sys/fs/cgroup/cpu(,cpuacct)?/.*cpu\.cfs_(quota|period)_us",
    r"proc/cpuinfo",
    r"proc/self/status",
    r"proc/self/cgroup",
)
_WALK = (
    "sys/devices/system/cpu",
    "sys/devices/system/node",
    "sys/devices/cpu_core",
    "sys/devices/cpu_atom",
)


def _wanted(rel: str) -> bool:
    return any(re.fullmatch(p, rel) for p in _PATTERNS)


def capture(root: str | os.PathLike[str] = "/", description: str = "") -> dict[str, Any]:
    """Collect the topology files under ``root`` into a JSON-ready dict."""
    base = Path(root)
    files: dict[str, str] = {}

    def take(rel: str) -> None:
        try:
            text = (base / rel).read_text(errors="replace")
        except OSError:
            return
        if rel == "proc/self/status":  # keep only what detect() reads
            text = "".join(line + "\n" for line in text.splitlines() if line.startswith("Cpus_allowed"))
        files[rel] = text

    for top in _WALK:
        for dirpath, dirnames, filenames in os.walk(base / top):
            rel_dir = os.path.relpath(dirpath, base)
            # cpuN/ has many irrelevant subtrees; prune what we never read.
            dirnames[:] = [d for d in dirnames if re.fullmatch(r"cpu\d+|node\d+|topology|cache|index\d+", d)]
            for name in filenames:
                rel = f"{rel_dir}/{name}"
                if _wanted(rel):
                    take(rel)
    for rel in (
        "proc/cpuinfo",
        "proc/self/status",
        "proc/self/cgroup",
        "sys/fs/cgroup/cpu.max",
        "sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        "sys/fs/cgroup/cpu/cpu.cfs_period_us",
    ):
        take(rel)
    if os.path.realpath(root) == "/" and hasattr(os, "sched_getaffinity"):
        from tfcpu.topology.cpulist import format_cpulist

        files["proc/self/status"] = f"Cpus_allowed_list:\t{format_cpulist(os.sched_getaffinity(0))}\n"
    return {"format": FORMAT, "description": description, "files": dict(sorted(files.items()))}


def materialise(data: dict[str, Any] | str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Write a capture (a dict, or a path to its JSON file) as a file tree under ``dest``."""
    doc: dict[str, Any] = data if isinstance(data, dict) else json.loads(Path(data).read_text())
    if doc.get("format") != FORMAT:
        raise ConfigError(
            "not a tfcpu topology capture",
            why=f"format is {doc.get('format')!r}, expected {FORMAT!r}",
            hint="make one with: tfcpu topology --capture FILE.json",
        )
    out = Path(dest)
    for rel, text in doc["files"].items():
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise ConfigError("unsafe path in topology capture", where=rel)
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return out
