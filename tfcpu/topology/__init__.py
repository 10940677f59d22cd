"""CPU topology: sockets, NUMA nodes, L3 domains, cores and SMT siblings, ISA, budget."""

from tfcpu.topology.capture import capture, materialise
from tfcpu.topology.cpulist import format_cpulist, parse_cpulist
from tfcpu.topology.detect import detect
from tfcpu.topology.model import Core, NumaNode, Precision, Topology

__all__ = [
    "Core",
    "NumaNode",
    "Precision",
    "Topology",
    "capture",
    "detect",
    "format_cpulist",
    "materialise",
    "parse_cpulist",
]
