"""The typed records of a multi-instance run between the parent and its pool workers: frozen,
versioned, JSON round-tripping.

The parent hands each pinned worker its `DataShard` with the ``bench`` request; the worker answers
with one `WorkerResult` (timings, outputs written as ``.npy``, what ran). Both sides read and write
them only through ``to_dict`` / ``from_dict``, which refuse another protocol version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tfcpu.errors import RunnerError

__all__ = ["PROTOCOL_VERSION", "DataShard", "WorkerResult"]

PROTOCOL_VERSION = 1


def _check_version(data: Mapping[str, Any], what: str) -> None:
    version = data.get("version")
    if version != PROTOCOL_VERSION:
        raise RunnerError(
            f"{what} has protocol version {version!r}, this tfcpu speaks {PROTOCOL_VERSION}",
            why="the parent and the worker come from different tfcpu installations",
            hint="run the parent and its workers with the same Python environment",
        )


@dataclass(frozen=True)
class DataShard:
    """What one instance times: its own seeded synthetic batch, or items ``lo:hi`` of saved arrays.

    Attributes:
        kind: ``"synthetic"`` or ``"shard"``.
        seed: the synthetic batch's seed (the instance index is added, so instances differ).
        paths: ``(input name, .npy path)`` pairs of the whole dataset (``shard`` only).
        lo: first item of this shard.
        hi: one past the last item of this shard.
    """

    kind: str = "synthetic"
    seed: int = 0
    paths: tuple[tuple[str, str], ...] = ()
    lo: int = 0
    hi: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("synthetic", "shard"):
            raise RunnerError(f"unknown data shard kind {self.kind!r}", hint='use "synthetic" or "shard"')

    @property
    def sharded(self) -> bool:
        return self.kind == "shard"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "seed": self.seed, "paths": dict(self.paths), "lo": self.lo, "hi": self.hi}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataShard:
        return cls(
            kind=str(data["kind"]),
            seed=int(data.get("seed", 0)),
            paths=tuple((str(k), str(v)) for k, v in dict(data.get("paths") or {}).items()),
            lo=int(data.get("lo", 0)),
            hi=int(data.get("hi", 0)),
        )


@dataclass(frozen=True)
class WorkerResult:
    """What one worker measured, written by the worker and read by the parent.

    Attributes:
        index: the instance's index.
        pid: the worker's process id.
        first_run_ms: the first batch, timed separately.
        batches: one ``(start, end, items)`` per timed batch on ``time.monotonic``.
        started_at: wall-clock start of the timed region (``time.time``).
        outputs: ``(output name, .npy path)`` pairs when outputs were collected.
        runtime: the runtime the worker ran (``runtime_info().to_dict()``).
        backend: what ran (``Backend.describe()``).
        affinity: the CPUs the worker actually ran on, read inside it.
        version: the protocol version (checked on read).
    """

    index: int
    pid: int
    first_run_ms: float
    batches: tuple[tuple[float, float, int], ...]
    started_at: float
    outputs: tuple[tuple[str, str], ...] = ()
    runtime: dict[str, Any] = field(default_factory=dict)
    backend: dict[str, Any] = field(default_factory=dict)
    affinity: tuple[int, ...] = ()
    version: int = PROTOCOL_VERSION

    @property
    def items(self) -> int:
        return sum(b[2] for b in self.batches)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "index": self.index,
            "pid": self.pid,
            "first_run_ms": self.first_run_ms,
            "batches": [list(b) for b in self.batches],
            "started_at": self.started_at,
            "outputs": dict(self.outputs),
            "runtime": self.runtime,
            "backend": self.backend,
            "affinity": list(self.affinity),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkerResult:
        _check_version(data, "the worker result")
        return cls(
            index=int(data["index"]),
            pid=int(data["pid"]),
            first_run_ms=float(data["first_run_ms"]),
            batches=tuple((float(a), float(b), int(n)) for a, b, n in data["batches"]),
            started_at=float(data["started_at"]),
            outputs=tuple((str(k), str(v)) for k, v in dict(data.get("outputs") or {}).items()),
            runtime=dict(data.get("runtime") or {}),
            backend=dict(data.get("backend") or {}),
            affinity=tuple(int(c) for c in data.get("affinity", ())),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> WorkerResult:
        return cls.from_dict(json.loads(text))
