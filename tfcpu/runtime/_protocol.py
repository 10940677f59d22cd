"""The typed parent -> child protocol of a multi-instance run: frozen, versioned, JSON round-tripping.

The parent writes one `WorkerSpec` per instance (``spec-N.json``) and starts
``python -P -m tfcpu.runtime.worker spec-N.json``; the worker writes one `WorkerResult`
(``result-N.json``) or, when it fails, the cause's one line to ``error-N.txt``. Both sides read
and write them only through ``to_dict`` / ``from_dict``, which refuse another protocol version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfcpu.errors import RunnerError
from tfcpu.graph.model import TensorSpec
from tfcpu.runtime.backends._base import BenchmarkOptions

__all__ = ["PROTOCOL_VERSION", "DataShard", "WorkerPaths", "WorkerResult", "WorkerSpec"]

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
class WorkerPaths:
    """The files one instance reads and writes (all inside the run's temporary directory).

    Attributes:
        workdir: the run's directory (outputs are saved there).
        graph: the serialised GraphDef.
        go: the common start signal, written by the parent (a ``time.monotonic`` instant).
        ready: written by the worker when it is warm.
        result: the worker's `WorkerResult` JSON.
        error: the worker's failure cause, one line, when it fails.
    """

    workdir: str
    graph: str
    go: str
    ready: str
    result: str
    error: str

    def to_dict(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in ("workdir", "graph", "go", "ready", "result", "error")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkerPaths:
        return cls(**{k: str(data[k]) for k in ("workdir", "graph", "go", "ready", "result", "error")})

    @classmethod
    def in_dir(cls, work: Path, index: int, graph: str = "model.pb") -> WorkerPaths:
        return cls(
            workdir=str(work),
            graph=str(work / graph),
            go=str(work / "go"),
            ready=str(work / f"ready-{index}"),
            result=str(work / f"result-{index}.json"),
            error=str(work / f"error-{index}.txt"),
        )


@dataclass(frozen=True)
class WorkerSpec:
    """Everything one child instance needs, written by the parent and read by the worker.

    Attributes:
        index: the instance's index in the plan.
        source: the model's source, for messages.
        inputs: the model's inputs (the GraphDef itself is at ``paths.graph``).
        outputs: the model's outputs.
        backend: the registered backend name.
        backend_options: the backend's options, as ``(key, value)`` pairs (JSON values).
        options: how to time (batch size, warm-up, steps or duration, seed, shapes).
        data: this instance's data.
        threads: ``(intra, inter)`` op threads; ``0`` lets the runtime choose.
        cpus: the CPUs the instance is pinned to (for its result).
        collect_outputs: save the outputs of a sharded run.
        startup_timeout: seconds to wait for the parent's start signal.
        paths: the files the worker reads and writes.
        version: the protocol version (checked on read).
    """

    index: int
    source: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    options: BenchmarkOptions
    data: DataShard
    paths: WorkerPaths
    backend: str = "tensorflow"
    backend_options: tuple[tuple[str, Any], ...] = ()
    threads: tuple[int, int] = (0, 0)
    cpus: tuple[int, ...] = ()
    collect_outputs: bool = False
    startup_timeout: float = 660.0
    version: int = PROTOCOL_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "index": self.index,
            "source": self.source,
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
            "backend": self.backend,
            "backend_options": dict(self.backend_options),
            "options": self.options.to_dict(),
            "data": self.data.to_dict(),
            "threads": list(self.threads),
            "cpus": list(self.cpus),
            "collect_outputs": self.collect_outputs,
            "startup_timeout": self.startup_timeout,
            "paths": self.paths.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkerSpec:
        _check_version(data, "the worker spec")
        intra, inter = (int(t) for t in data["threads"])
        return cls(
            index=int(data["index"]),
            source=str(data["source"]),
            inputs=tuple(TensorSpec.from_dict(s) for s in data["inputs"]),
            outputs=tuple(TensorSpec.from_dict(s) for s in data["outputs"]),
            backend=str(data["backend"]),
            backend_options=tuple(sorted(dict(data.get("backend_options") or {}).items())),
            options=BenchmarkOptions.from_dict(data["options"]),
            data=DataShard.from_dict(data["data"]),
            threads=(intra, inter),
            cpus=tuple(int(c) for c in data.get("cpus", ())),
            collect_outputs=bool(data.get("collect_outputs", False)),
            startup_timeout=float(data["startup_timeout"]),
            paths=WorkerPaths.from_dict(data["paths"]),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        return cls.from_dict(json.loads(text))


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
