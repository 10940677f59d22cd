"""Terminal (rich) and Jupyter (HTML) views of a Topology: a table and an lstopo-like tree."""

from __future__ import annotations

import html as _html
from typing import Any

from tfcpu._render import html_table, rich_table
from tfcpu.session.precision import ONEDNN
from tfcpu.topology.cpulist import format_cpulist
from tfcpu.topology.model import Topology

__all__ = ["html", "rich_renderable", "table_rows", "tree_lines"]


def table_rows(topo: Topology) -> list[tuple[str, str]]:
    quota = "none" if topo.cpu_quota is None else f"{topo.cpu_quota:g} CPUs"
    rows = [
        ("CPU", f"{topo.model_name} ({topo.vendor})"),
        ("sockets", str(topo.sockets)),
        ("NUMA nodes", ", ".join(f"{n.id}: {format_cpulist(n.cpus)}" for n in topo.numa_nodes)),
        ("physical cores", str(topo.physical_cores)),
        ("logical CPUs", f"{topo.logical_cpus} (online {format_cpulist(topo.online_cpus)})"),
        ("threads per core", str(topo.threads_per_core)),
        ("L3 domains", f"{len(topo.l3_domains)}: " + " | ".join(format_cpulist(d) for d in topo.l3_domains)),
        ("allowed CPUs", format_cpulist(topo.allowed_cpus)),
        ("CPU quota", quota),
        ("usable CPUs", f"{topo.usable_cpus} ({topo.usable_physical_cores} physical cores)"),
        ("ISA", " ".join(topo.isa) or "unknown"),
        ("inference ISA", topo.isa_summary()),
        ("virtual machine", "yes" if topo.is_vm else "no"),
        ("hybrid P/E cores", "yes" if topo.hybrid else "no"),
        ("oneDNN on by default", "yes" if topo.onednn_default else f"no (set {ONEDNN}=1)"),
    ]
    for name, prec in topo.precisions.items():
        mark = "yes" if prec.accelerated else "no"
        instr = f" via {', '.join(f.upper() for f in prec.flags)}" if prec.flags and prec.accelerated else ""
        kernels = f" (oneDNN {prec.kernels} kernels)" if prec.kernels else ""
        rows.append((f"{name} accelerated", f"{mark}{instr}{kernels}: {prec.advice}"))
    for note in topo.notes:
        rows.append(("note", note))
    return rows


def _walk(topo: Topology, *, dim: tuple[str, str] = ("", " (not allowed)")) -> list[tuple[int, str]]:
    """Machine → package → NUMA node → L3 → core → CPUs, as (depth, label) pairs."""
    out = [(0, f"Machine ({topo.model_name}, {topo.logical_cpus} CPUs)")]
    allowed = set(topo.usable_cpu_set)
    pre, post = dim
    for sock in topo.socket_ids:
        out.append((1, f"Package {sock}"))
        sock_cores = [c for c in topo.cores if c.socket == sock]
        for node_id in sorted({c.numa_node for c in sock_cores}):
            out.append((2, f"NUMANode {node_id}"))
            node_cores = [c for c in sock_cores if c.numa_node == node_id]
            for l3 in sorted({c.l3 for c in node_cores}):
                l3_cores = [c for c in node_cores if c.l3 == l3]
                out.append((3, f"L3 #{l3} ({len(l3_cores)} cores)"))
                for core in l3_cores:
                    cpus = " ".join(f"PU {cpu}" if cpu in allowed else f"{pre}PU {cpu}{post}" for cpu in core.cpus)
                    out.append((4, f"Core {core.core_id} [{core.kind}]: {cpus}"))
    return out


def tree_lines(topo: Topology) -> list[str]:
    """The lstopo-like tree as indented text lines."""
    return ["  " * depth + label for depth, label in _walk(topo)]


def rich_renderable(topo: Topology) -> Any:
    from rich.console import Group
    from rich.markup import escape
    from rich.tree import Tree

    table = rich_table("CPU topology", ("property", "value"), table_rows(topo))
    walk = _walk(topo, dim=("[dim]", " (not allowed)[/dim]"))
    root = Tree(escape(walk[0][1]))
    stack = [root]
    for depth, label in walk[1:]:
        del stack[depth:]
        stack.append(stack[-1].add(label.replace("[P]", "\\[P]").replace("[E]", "\\[E]")))
    return Group(table, root)


def html(topo: Topology) -> str:
    table = html_table("CPU topology", ("property", "value"), table_rows(topo))
    tree = "<pre>" + _html.escape("\n".join(tree_lines(topo))) + "</pre>"
    return f"<div>{table}{tree}</div>"
