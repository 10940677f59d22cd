"""Per-node throughput of a Ray Data run, computed from the rows that made it into the output.

The numbers come from the ``tfcpu_*`` metadata columns of the *output* dataset, not from
counters inside actors: a batch that failed and was retried contributes only its successful
run, so the report counts every row exactly once, like the data.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tfcpu._render import TextTable

__all__ = ["ClusterReport", "NodeReport", "aggregate"]


@dataclass(frozen=True)
class NodeReport:
    """One node's share of the run.

    Attributes:
        node_id, host: Ray node id and host name.
        instances: actor processes that produced rows on the node (restarts count again).
        cpus: the CPU list of each of those processes (``"0"``, ``"1"``, ``"unpinned 0-1"``).
        items: rows produced on the node.
        batches: model runs.
        busy_seconds: sum of model-run times over batches (all instances).
        wall_seconds: first model run start to last model run end on the node.
    """

    node_id: str
    host: str
    instances: int
    cpus: tuple[str, ...]
    items: int
    batches: int
    busy_seconds: float
    wall_seconds: float

    @property
    def throughput(self) -> float:
        """Items per second of the node's wall span (all its instances together)."""
        return self.items / self.wall_seconds if self.wall_seconds > 0 else float("nan")

    @property
    def per_instance_throughput(self) -> float:
        """Items per busy second of one instance, averaged (model time only)."""
        return self.items / self.busy_seconds if self.busy_seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cpus"] = list(self.cpus)
        data["throughput"] = self.throughput
        data["per_instance_throughput"] = self.per_instance_throughput
        return data


@dataclass(frozen=True)
class ClusterReport(TextTable):
    """Per-node reports plus the driver's view of the whole run.

    Attributes:
        nodes: one report per node that produced rows.
        items: rows in the output.
        seconds: wall time measured by the driver around the run (actor start-up, model
            loading and data movement included).
        actors: actor pool size requested.
        pinned: whether actors were pinned.
    """

    nodes: tuple[NodeReport, ...]
    items: int
    seconds: float
    actors: int
    pinned: bool

    @property
    def throughput(self) -> float:
        """Items per second of driver wall time (end to end)."""
        return self.items / self.seconds if self.seconds > 0 else float("nan")

    @property
    def model_throughput(self) -> float:
        """Sum of the nodes' throughputs (model runs only, no start-up)."""
        return float(sum(n.throughput for n in self.nodes))

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "seconds": self.seconds,
            "actors": self.actors,
            "pinned": self.pinned,
            "throughput": self.throughput,
            "model_throughput": self.model_throughput,
            "nodes": [n.to_dict() for n in self.nodes],
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def _rows(self) -> list[list[str]]:
        return [
            [
                n.host,
                n.node_id[:8],
                str(n.instances),
                " ".join(n.cpus),
                str(n.items),
                f"{n.throughput:.1f}",
                f"{n.busy_seconds:.2f}",
            ]
            for n in self.nodes
        ]

    _COLUMNS = ("host", "node", "instances", "CPUs", "items", "items/s", "busy s")

    def _title(self) -> str:
        mode = "pinned" if self.pinned else "unpinned"
        return f"Ray run: {self.items} items, {self.actors} {mode} actors, {self.throughput:.1f} items/s end to end"

    def __rich__(self) -> Any:
        from tfcpu._render import rich_table

        return rich_table(self._title(), self._COLUMNS, self._rows())

    def _repr_html_(self) -> str:
        from tfcpu._render import html_table

        return html_table(self._title(), self._COLUMNS, self._rows())


def aggregate(columns: dict[str, np.ndarray], *, seconds: float, actors: int, pinned: bool) -> ClusterReport:
    """Build the report from concatenated metadata columns (see ``METADATA_COLUMNS``)."""
    node = np.asarray(columns["tfcpu_node"]).astype(str)
    items = int(node.shape[0])
    nodes = []
    for nid in sorted(set(node.tolist())):
        mask = node == nid
        pids = np.asarray(columns["tfcpu_pid"])[mask]
        starts = np.asarray(columns["tfcpu_start"], dtype=np.float64)[mask]
        ends = np.asarray(columns["tfcpu_end"], dtype=np.float64)[mask]
        slots = np.asarray(columns["tfcpu_slot"])[mask]
        cpus = np.asarray(columns["tfcpu_cpus"]).astype(str)[mask]
        hosts = np.asarray(columns["tfcpu_host"]).astype(str)[mask]
        batches = {(int(p), float(s)): float(e - s) for p, s, e in zip(pids, starts, ends, strict=True)}
        per_pid: dict[int, str] = {}
        for p, slot, c in zip(pids, slots, cpus, strict=True):
            per_pid[int(p)] = c if int(slot) >= 0 else f"unpinned {c}"
        nodes.append(
            NodeReport(
                node_id=nid,
                host=str(hosts[0]),
                instances=len(per_pid),
                cpus=tuple(per_pid[p] for p in sorted(per_pid)),
                items=int(mask.sum()),
                batches=len(batches),
                busy_seconds=float(sum(batches.values())),
                wall_seconds=float(ends.max() - starts.min()) if len(starts) else 0.0,
            )
        )
    return ClusterReport(nodes=tuple(nodes), items=items, seconds=seconds, actors=actors, pinned=pinned)
