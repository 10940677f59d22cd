"""Frozen value objects that describe a machine's CPUs.

`Topology` is produced by `tfcpu.topology.detect()` and consumed by every later
stage (threads, instance plans, quantisation advice). It is immutable and round-trips
through `Topology.to_dict()` / `Topology.from_dict()` and JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tfcpu._codec import Serializable
from tfcpu._render import TextTable
from tfcpu.errors import ConfigError
from tfcpu.topology.cpulist import format_cpulist

__all__ = ["ISA_FLAGS", "Core", "NumaNode", "Precision", "Topology"]

#: ISA features tfcpu reports, in the order they are shown. Names follow Linux
#: ``/proc/cpuinfo`` flags, which is also what ``lscpu`` prints.
ISA_FLAGS: tuple[str, ...] = (
    "sse4_2",
    "avx",
    "f16c",
    "fma",
    "avx2",
    "avx_vnni",
    "avx_vnni_int8",
    "avx512f",
    "avx512cd",
    "avx512bw",
    "avx512dq",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "amx_fp16",
)


@dataclass(frozen=True)
class NumaNode(Serializable):
    """A NUMA node and the online logical CPUs attached to it."""

    id: int
    cpus: tuple[int, ...]


@dataclass(frozen=True)
class Core(Serializable):
    """One physical core: its socket, kernel core id, SMT sibling CPUs and kind.

    ``kind`` is ``"P"`` (performance) or ``"E"`` (efficiency, hybrid Intel CPUs only).
    ``numa_node`` and ``l3`` index `Topology.numa_nodes` ids and
    `Topology.l3_domains` positions.
    """

    socket: int
    core_id: int
    cpus: tuple[int, ...]
    kind: str = "P"
    numa_node: int = 0
    l3: int = 0


@dataclass(frozen=True)
class Precision:
    """Whether the hardware accelerates a numeric precision, and what that means.

    Attributes:
        name: ``fp32``, ``int8``, ``bf16`` or ``fp16``.
        accelerated: the CPU has instructions made for it (VNNI, AMX, AVX512_BF16...).
        instruction: the best such flag (``amx_int8``, ``avx512_vnni``...), None without one.
        advice: one line: what that means for speed, with measured numbers where tfcpu has them.
        flags: every flag present that serves this precision, best first.
        kernels: the oneDNN ISA whose kernels run it here (``avx512_core_amx``, ``avx512_core_vnni``,
            ``avx2_vnni``, ``avx512_core_bf16``...), as oneDNN's verbose log names it; ``""`` if none.
    """

    name: str
    accelerated: bool
    instruction: str | None
    advice: str
    flags: tuple[str, ...] = ()
    kernels: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "accelerated": self.accelerated,
            "instruction": self.instruction,
            "advice": self.advice,
            "flags": list(self.flags),
            "kernels": self.kernels,
        }


@dataclass(frozen=True)
class Topology(Serializable, TextTable):
    """What tfcpu knows about the CPUs of this machine (or of a captured tree).

    Attributes:
        vendor: ``GenuineIntel``, ``AuthenticAMD``, ...
        model_name: the CPU's marketing name from ``/proc/cpuinfo``.
        numa_nodes: nodes that hold at least one online CPU; one synthetic node ``0``
            when the machine exposes none (VMs, WSL, kernels without NUMA).
        cores: physical cores, grouped by ``thread_siblings_list``; ordered by
            (socket, first CPU).
        l3_domains: sets of CPUs that share one L3 cache.
        online_cpus: CPUs the kernel has online.
        allowed_cpus: online CPUs this process may run on (affinity / cpuset).
        cpu_quota: cgroup CPU bandwidth limit in CPUs (``1.5`` = 150 ms per 100 ms),
            ``None`` when unlimited.
        isa: normalised ISA flags present on every CPU, in `ISA_FLAGS` order.
        is_vm: the CPU reports a hypervisor.
        hybrid: the kernel lists separate P-core and E-core PMUs.
        notes: things the reader had to guess or fall back on, for the user to see.
        root: the file-system root the data was read from.
    """

    vendor: str
    model_name: str
    numa_nodes: tuple[NumaNode, ...]
    cores: tuple[Core, ...]
    l3_domains: tuple[tuple[int, ...], ...]
    online_cpus: tuple[int, ...]
    allowed_cpus: tuple[int, ...]
    cpu_quota: float | None = None
    isa: tuple[str, ...] = ()
    is_vm: bool = False
    hybrid: bool = False
    notes: tuple[str, ...] = ()
    root: str = "/"

    #: Derived values the JSON shows for readers; `from_dict` ignores them.
    _extra_fields = (
        "sockets",
        "physical_cores",
        "logical_cpus",
        "threads_per_core",
        "usable_cpus",
        "usable_physical_cores",
        "precisions",
        "onednn_default",
    )

    # -- construction -------------------------------------------------------------------
    @classmethod
    def detect(cls, root: str = "/") -> Topology:
        """Read the topology of the machine (or of a captured tree under ``root``)."""
        from tfcpu.topology.detect import detect

        return detect(root)

    # -- derived counts -----------------------------------------------------------------
    @property
    def sockets(self) -> int:
        """Number of CPU packages with at least one online CPU."""
        return len({c.socket for c in self.cores}) or 1

    @property
    def socket_ids(self) -> tuple[int, ...]:
        return tuple(sorted({c.socket for c in self.cores}))

    @property
    def physical_cores(self) -> int:
        """Physical cores with at least one online CPU (the machine, not the budget)."""
        return len(self.cores)

    @property
    def logical_cpus(self) -> int:
        """Online logical CPUs."""
        return len(self.online_cpus)

    @property
    def threads_per_core(self) -> int:
        """Most SMT siblings any core has online (1 when SMT is off)."""
        return max((len(c.cpus) for c in self.cores), default=1)

    @property
    def usable_cpu_set(self) -> tuple[int, ...]:
        """Allowed ∩ online CPUs, in order."""
        online = set(self.online_cpus)
        return tuple(c for c in self.allowed_cpus if c in online)

    @property
    def usable_cpus(self) -> int:
        """How many CPUs this process can keep busy: allowed ∩ online, capped by the
        cgroup quota rounded down, and never less than 1."""
        count = len(self.usable_cpu_set)
        if self.cpu_quota is not None:
            count = min(count, math.floor(self.cpu_quota + 1e-9))
        return max(1, count)

    @property
    def usable_cores(self) -> tuple[Core, ...]:
        """Cores with at least one allowed CPU; each keeps only its allowed siblings."""
        allowed = set(self.usable_cpu_set)
        out = []
        for core in self.cores:
            cpus = tuple(c for c in core.cpus if c in allowed)
            if cpus:
                out.append(Core(core.socket, core.core_id, cpus, core.kind, core.numa_node, core.l3))
        return tuple(out)

    @property
    def usable_physical_cores(self) -> int:
        """Physical cores this process can keep busy: usable cores, capped by the quota."""
        cores = len(self.usable_cores)
        if self.cpu_quota is not None:
            cores = min(cores, max(1, math.floor(self.cpu_quota + 1e-9)))
        return max(1, cores)

    @property
    def smt(self) -> bool:
        return self.threads_per_core > 1

    def core_of(self, cpu: int) -> Core:
        """The core that owns logical CPU ``cpu``.

        Args:
            cpu: a logical CPU id of this topology.

        Raises:
            ConfigError: no core of this topology holds ``cpu``.
        """
        for core in self.cores:
            if cpu in core.cpus:
                return core
        raise ConfigError(
            f"no logical CPU {cpu} on this topology",
            where=self.model_name or "topology",
            hint=f"use one of its CPUs: {format_cpulist(c for core in self.cores for c in core.cpus)}",
        )

    def has(self, *flags: str) -> bool:
        """True if every named ISA flag is present."""
        return all(f in self.isa for f in flags)

    # -- precisions ---------------------------------------------------------------------
    @property
    def precisions(self) -> dict[str, Precision]:
        """Which precisions the hardware accelerates, with one line of advice each."""
        from tfcpu.topology.isa import precisions

        return {p.name: p for p in precisions(self.isa)}

    @property
    def onednn_default(self) -> bool:
        """Whether stock TensorFlow turns oneDNN on by itself on this CPU (x86 Linux:
        only with AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX)."""
        return any(f in self.isa for f in ("avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile"))

    # -- rendering ----------------------------------------------------------------------
    def isa_summary(self) -> str:
        """The vector width and every INT8/BF16/FP16 instruction set, e.g. ``AVX512F AVX512_VNNI
        AVX512_BF16 AMX_INT8 AMX_BF16``, or ``AVX2, no VNNI/BF16/AMX``."""
        from tfcpu.topology.isa import inference_flags

        vector = next((f for f in ("avx512f", "avx2", "avx") if f in self.isa), None)
        extra = inference_flags(self.isa)
        words = [f.upper() for f in ((vector,) if vector else ()) + extra]
        if not extra:
            words = [*(words or ["no AVX"])]
            words[-1] += ", no VNNI/BF16/AMX"
        return " ".join(words)

    def summary(self) -> str:
        """One line: ``<model>: 1 socket(s), ..., 2 usable (0-1), AVX512F AVX512_VNNI AMX_INT8 AMX_BF16``."""
        quota = f", quota {self.cpu_quota:g} CPUs" if self.cpu_quota is not None else ""
        return (
            f"{self.model_name}: {self.sockets} socket(s), {len(self.numa_nodes)} NUMA node(s), "
            f"{self.physical_cores} cores, {self.logical_cpus} CPUs, "
            f"{self.usable_cpus} usable ({format_cpulist(self.usable_cpu_set)}){quota}, "
            f"{self.isa_summary()}"
        )

    def __rich__(self) -> Any:
        from tfcpu.topology.render import rich_renderable

        return rich_renderable(self)

    def _repr_html_(self) -> str:
        from tfcpu.topology.render import html

        return html(self)
