"""``InstancePlan`` and ``Instance``: Section 7's pinned instances as frozen values.

The white paper runs one TensorFlow process per group of cores, each started as::

    numactl -N 0 -m 0 python eval.py -k "granularity=thread,proclist=[0-3,48-51],explicit,..." -c 4

`InstancePlan.for_topology()` derives those groups from the `Topology`
(see `tfcpu.plan.layout` for the rules), chooses a pinning method that works on this
machine (`tfcpu.plan.pinning`), and gives each `Instance` its CPUs, threads,
environment and launch prefix. `InstancePlan.to_script()` writes the paper's
``multisocket.sh``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from tfcpu._codec import CODEC, FieldCodec, Serializable, decode_fields
from tfcpu._render import TextTable, html_table, rich_table
from tfcpu.errors import ConfigError, PlanError
from tfcpu.plan.pinning import PinningProbe, check_method, forced, launch_prefix, probe_pinning
from tfcpu.topology.cpulist import format_cpulist

if TYPE_CHECKING:
    from tfcpu.plan.layout import Layout
    from tfcpu.session.config import SessionConfig
    from tfcpu.topology import Topology

__all__ = ["Instance", "InstancePlan", "kmp_affinity_for"]

log = logging.getLogger(__name__)


def kmp_affinity_for(cpus: Sequence[int]) -> str:
    """Appendix A's per-instance ``KMP_AFFINITY``: ``granularity=thread,proclist=[0-3,48-51],explicit``.

    The paper appends ``verbose,compact,1,0``; Intel's OpenMP runtime keeps the first
    affinity type it reads (``explicit``) and warns about the second, so tfcpu leaves the
    tail out.
    """
    return f"granularity=thread,proclist=[{format_cpulist(cpus)}],explicit"


def _env_items(env: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in dict(env).items())


@dataclass(frozen=True)
class Instance(Serializable):
    """One pinned worker of an `InstancePlan`.

    Attributes:
        index: 0-based position in the plan.
        cpus: logical CPUs (SMT siblings of its cores included when ``smt=True``), sorted.
        physical_cores: cores it owns; also its intra-op threads and ``OMP_NUM_THREADS``.
        core_ids: the kernel's ``core_id`` of each core (sparse, repeats across sockets).
        numa_node, socket: where it runs; never more than one of each.
        kind: ``"P"`` or ``"E"`` (hybrid CPUs); never both.
        intra_op_threads, inter_op_threads: TensorFlow thread pools.
        env_items: the environment to add for the child, as pairs (see `env`).
        launch_prefix: argv to put before the command (empty for ``sched_setaffinity``).
        method: the pinning method.
        memory_binding: memory bound to ``numa_node``.
    """

    index: int
    cpus: tuple[int, ...]
    physical_cores: int
    core_ids: tuple[int, ...]
    numa_node: int
    socket: int
    kind: str
    intra_op_threads: int
    inter_op_threads: int
    env_items: tuple[tuple[str, str], ...] = field(
        metadata={CODEC: FieldCodec(key="env", encode=dict, decode=_env_items)}
    )
    launch_prefix: tuple[str, ...]
    method: str
    memory_binding: bool

    @property
    def env(self) -> dict[str, str]:
        """Variables to set in the child before TensorFlow starts (a fresh dict)."""
        return dict(self.env_items)

    @property
    def cpulist(self) -> str:
        """The CPUs in kernel list form, e.g. ``0-3,48-51``."""
        return format_cpulist(self.cpus)

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """``launch_prefix + argv``: the command line that runs ``argv`` pinned."""
        if isinstance(argv, str):
            raise ConfigError("wrap() takes an argv list", why=f"got the string {argv!r}", hint="use shlex.split")
        return [*self.launch_prefix, *argv]

    def pin_current_process(self) -> None:
        """Pin the calling process to `cpus` (children use it for ``sched_setaffinity``)."""
        try:
            os.sched_setaffinity(0, self.cpus)
        except (AttributeError, OSError) as exc:
            raise PlanError(
                "could not pin the process",
                where=f"instance {self.index}, CPUs {self.cpulist}",
                why=str(exc),
                hint="check that these CPUs are in the process's allowed set (Topology.allowed_cpus)",
            ) from exc

    def session_config(self) -> SessionConfig:
        """The `SessionConfig` of this instance (threads and env as planned)."""
        from tfcpu.session.config import MANAGED, SessionConfig
        from tfcpu.session.precision import ONEDNN

        env = self.env
        onednn = env.get(ONEDNN)
        return SessionConfig(
            intra_op=self.intra_op_threads,
            inter_op=self.inter_op_threads,
            omp=int(env["OMP_NUM_THREADS"]) if "OMP_NUM_THREADS" in env else None,
            kmp_blocktime=env.get("KMP_BLOCKTIME"),
            kmp_settings=env.get("KMP_SETTINGS"),
            kmp_affinity=env.get("KMP_AFFINITY"),
            onednn_opts=None if onednn is None else onednn == "1",
            extra_env=tuple((k, v) for k, v in self.env_items if k not in MANAGED),
            trust_env=False,
            cpus=self.cpus,
            budget=len(self.cpus),
            explicit=frozenset(MANAGED),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, method: str | None = None) -> Self:
        """An Instance from `to_dict` data. Reports older than ``core_ids``, ``socket``, ``kind``, ``method``
        and ``memory_binding`` read them as ``()``, 0, ``"P"``, ``method`` (the plan's) and False."""
        older = {"core_ids": (), "socket": 0, "kind": "P", "method": method or "sched_setaffinity"}
        return decode_fields(cls, {**older, "memory_binding": False, **data})


@dataclass(frozen=True)
class InstancePlan(Serializable, TextTable):
    """Pinned instances for one machine, and how they are pinned.

    Attributes:
        instances: the workers, node by node.
        method: pinning method shared by all instances (see `tfcpu.plan.pinning`).
        memory_binding: memory bound to each instance's node (``numactl`` only).
        unused_cpus: usable CPUs no instance got (leftovers, quota, ``smt=False`` siblings).
        cores_per_instance: physical cores of each instance.
        smt: SMT siblings included.
        notes: why CPUs are unused, how the method was chosen.
    """

    instances: tuple[Instance, ...]
    method: str
    memory_binding: bool
    unused_cpus: tuple[int, ...]
    cores_per_instance: int
    smt: bool = True
    notes: tuple[str, ...] = ()

    # -- construction -------------------------------------------------------------------
    @classmethod
    def for_topology(
        cls,
        topo: Topology | None = None,
        instances: int | None = None,
        cores_per_instance: int | None = None,
        smt: bool = True,
        memory_binding: bool = True,
        method: str | None = None,
        config: SessionConfig | None = None,
    ) -> InstancePlan:
        """Lay out instances on ``topo`` (default: this machine).

        Args:
            instances: how many instances (equal sizes, spread over nodes/sockets).
            cores_per_instance: physical cores per instance (the paper found 4 best for ResNet-50).
            smt: give each instance its cores' SMT siblings too (the paper does).
            memory_binding: bind memory to the instance's node when numactl allows it.
            method: force a pinning method instead of probing this machine.
            config: settings shared by every instance (inter-op threads, KMP_BLOCKTIME,
                oneDNN, extra variables); threads and affinity are set per instance.

        Raises:
            PlanError: no valid layout (0 instances, more instances than cores, an instance
                larger than a node, both or neither of ``instances``/``cores_per_instance``).
        """
        from tfcpu.plan.layout import layout
        from tfcpu.session.config import SessionConfig

        if topo is None:
            from tfcpu.topology import Topology

            topo = Topology.detect()
        if not isinstance(smt, bool) or not isinstance(memory_binding, bool):
            raise PlanError("smt and memory_binding take True or False")
        lay = layout(topo, instances=instances, cores_per_instance=cores_per_instance, smt=smt)
        if method is not None:
            probe = forced(check_method(method), memory_binding, f"method {method!r} forced by the caller")
        elif topo.root not in ("/", ""):
            probe = forced(
                "numactl",
                memory_binding,
                f"not probed: the topology was read from {topo.root}, not from this machine; "
                "numactl (as in the white paper) is assumed",
            )
        else:
            probe = probe_pinning(topo, memory_binding=memory_binding)
        return cls._build(topo, lay, probe, smt, config or SessionConfig(intra_op=1, trust_env=False))

    @classmethod
    def _build(cls, topo: Topology, lay: Layout, probe: PinningProbe, smt: bool, base: SessionConfig) -> InstancePlan:
        node_cpus = {n.id: set(n.cpus) for n in topo.numa_nodes}
        built: list[Instance] = []
        used: set[int] = set()
        for index, (slot, group) in enumerate(zip(lay.slots, lay.slot_groups, strict=True)):
            cpus = tuple(sorted(cpu for core in slot for cpu in core.cpus))
            used.update(cpus)
            cores = len(slot)
            cfg = (
                base.with_trust_env(False)
                .with_intra_op_threads(cores)
                .with_omp_threads(cores)
                .with_kmp(affinity=kmp_affinity_for(cpus))
            )
            whole = set(cpus) == node_cpus.get(group.node, set())
            built.append(
                Instance(
                    index=index,
                    cpus=cpus,
                    physical_cores=cores,
                    core_ids=tuple(c.core_id for c in slot),
                    numa_node=group.node,
                    socket=group.socket,
                    kind=group.kind,
                    intra_op_threads=cores,
                    inter_op_threads=cfg.inter_op,
                    env_items=tuple(cfg.env().items()),
                    launch_prefix=launch_prefix(probe.method, format_cpulist(cpus), group.node, whole_node=whole),
                    method=probe.method,
                    memory_binding=probe.memory_binding,
                )
            )
        unused = tuple(c for c in topo.usable_cpu_set if c not in used)
        notes = [*lay.notes, *(f"pinning: {a}" for a in probe.attempts)]
        return cls(
            instances=tuple(built),
            method=probe.method,
            memory_binding=probe.memory_binding,
            unused_cpus=unused,
            cores_per_instance=lay.cores_per_instance,
            smt=smt,
            notes=tuple(notes),
        )

    # -- access -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.instances)

    def __iter__(self) -> Iterator[Instance]:
        return iter(self.instances)

    def __getitem__(self, index: int) -> Instance:
        return self.instances[index]

    def session_config(self, index: int) -> SessionConfig:
        """The `SessionConfig` of instance ``index``."""
        return self.instances[index].session_config()

    def with_threads(self, intra_op_threads: int | None = None, inter_op_threads: int | None = None) -> InstancePlan:
        """The same layout with other thread counts in every instance (``0`` lets TensorFlow choose).

        ``OMP_NUM_THREADS`` follows the intra-op threads. Useful to compare against TensorFlow's
        defaults; the planned counts (one thread per physical core) are what Section 7 uses.
        """
        import dataclasses

        from tfcpu.session._resolve import check_threads as _check_threads

        if intra_op_threads is not None:
            _check_threads("intra_op_threads", intra_op_threads, allow_zero=True)
        if inter_op_threads is not None:
            _check_threads("inter_op_threads", inter_op_threads, allow_zero=True)
        changed = []
        for inst in self.instances:
            cfg = inst.session_config()
            if intra_op_threads is not None:
                cfg = cfg.with_intra_op_threads(intra_op_threads).with_omp_threads(intra_op_threads or None)
            if inter_op_threads is not None:
                cfg = cfg.with_inter_op_threads(inter_op_threads)
            changed.append(
                dataclasses.replace(
                    inst,
                    intra_op_threads=cfg.intra_op_threads,
                    inter_op_threads=cfg.inter_op_threads,
                    env_items=tuple(cfg.env().items()),
                )
            )
        return dataclasses.replace(self, instances=tuple(changed))

    @property
    def total_threads(self) -> int:
        """Intra-op threads of all instances together (never above the CPU budget)."""
        return sum(i.intra_op_threads for i in self.instances)

    def to_script(self, command: Sequence[str] | str, shard_arg: str | None = None) -> str:
        """A bash script that starts every instance pinned, like the paper's ``multisocket.sh``.

        Args:
            command: the program to run in each instance (argv list or a shell-like string).
            shard_arg: a per-instance argument so each instance reads its own part of the data
                (Section 7, "Apply this method to a real case"). ``"--shard"`` appends
                ``--shard <index>``; a template such as ``"-d subset{n}/"`` is formatted with
                ``{index}`` (0-based), ``{n}`` (1-based) and ``{count}``.
        """
        from tfcpu.plan.script import render_script

        return render_script(self, command, shard_arg)

    # -- serialisation ------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """An InstancePlan from `to_dict` data: the method is checked and its instances inherit it.
        Reports older than ``unused_cpus`` and ``cores_per_instance`` read them as none and the
        first instance's cores."""
        kwargs = dict(data)
        if "method" in data:
            kwargs["method"] = check_method(str(data["method"]))
        if "instances" in data:
            instances = tuple(Instance.from_dict(i, method=kwargs.get("method")) for i in data["instances"])
            kwargs["instances"] = instances
            kwargs.setdefault("cores_per_instance", instances[0].physical_cores if instances else 0)
        kwargs.setdefault("unused_cpus", ())
        return decode_fields(cls, kwargs)

    # -- rendering ----------------------------------------------------------------------
    _COLUMNS = ("#", "node", "CPUs", "cores", "threads intra/inter", "launch prefix")

    def _cells(self) -> list[tuple[str, ...]]:
        return [
            (
                str(i.index),
                str(i.numa_node) + (f" ({i.kind})" if i.kind != "P" else ""),
                i.cpulist,
                str(i.physical_cores),
                f"{i.intra_op_threads}/{i.inter_op_threads}",
                " ".join(i.launch_prefix) or "sched_setaffinity in the child",
            )
            for i in self.instances
        ]

    def _title(self) -> str:
        binding = "memory bound to each node" if self.memory_binding else "no memory binding"
        return f"{len(self.instances)} instance(s) × {self.cores_per_instance} cores; pinning: {self.method}, {binding}"

    def _footer(self) -> list[str]:
        lines = []
        if self.unused_cpus:
            lines.append(f"unused CPUs: {format_cpulist(self.unused_cpus)}")
        lines.extend(self.notes)
        return lines

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        parts: list[Any] = [rich_table(self._title(), self._COLUMNS, self._cells())]
        parts.extend(Text(line, style="dim") for line in self._footer())
        return Group(*parts)

    def _repr_html_(self) -> str:
        import html

        footer = "".join(f"<p>{html.escape(line)}</p>" for line in self._footer())
        return html_table(self._title(), self._COLUMNS, self._cells()) + footer
