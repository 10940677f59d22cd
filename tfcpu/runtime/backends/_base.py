"""The backend contract every runtime implements, the one timed loop, and the backend registry.

Lifecycle (Polygraphy's activate/infer/deactivate, kept strict by ``Runner``)::

    backend = backend_class("tensorflow")(model, config, options)
    backend.activate()                        # import / convert / compile; may be slow
    outputs = backend.infer(ordered_inputs)   # inputs in model.input_names order -> outputs in output_names order
    first_s = backend.warm(ordered_inputs, warmup=5)
    timing = backend.timed(feeds, deadline=None)   # the timed region: one (start, end, items) per request
    backend.describe()                        # what ran: {"backend": ..., "precision": ..., ...}
    backend.deactivate()

``timed`` has a default that drives `timed_loop()` (one synchronous request at a time, the TF
session's way). A backend with an asynchronous API (OpenVINO's infer-request queue) overrides it so
that several requests are in flight; it still returns one `Timing` whose batches carry start
and end on ``time.monotonic`` (one clock for every process on the machine, so multi-instance
windows can be compared).
"""

from __future__ import annotations

import abc
import importlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from tfcpu.errors import ConfigError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.graph.model import Model
    from tfcpu.session.config import SessionConfig

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "Backend",
    "BackendEntry",
    "BenchmarkOptions",
    "Timing",
    "backend_class",
    "backend_entry",
    "check_backend",
    "timed_loop",
]

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BackendEntry:
    """What the rest of tfcpu may know about a backend without importing it.

    Attributes:
        target: ``"module:Class"`` of the `Backend`, imported on first use (a missing optional
            package fails only when the backend is chosen).
        package: the optional package it needs (checked with ``find_spec`` before work starts), if any.
        extra: the ``tfcpu[...]`` extra that installs it.
        precision_option: it takes ``precision=f32|bf16`` as a backend option (an inference precision
            set at compile time, rather than read from the graph's ops).
        pool_defaults: backend options every pinned worker gets unless given (``Pool``, ``run_instances``).
        refusal: ``"module:function"``, ``function(model) -> Exception | None``: whether it cannot run a
            model, found before any other work (``tune`` falls back to another backend then).
    """

    target: str
    package: str | None = None
    extra: str | None = None
    precision_option: bool = False
    pool_defaults: Mapping[str, Any] = field(default_factory=dict)
    refusal: str | None = None

    def require(self, name: str, purpose: str) -> None:
        """MissingDependencyError naming the extra when the package is not installed (found, not imported)."""
        if self.package is None:
            return
        import importlib.util

        from tfcpu.errors import MissingDependencyError

        try:
            missing = importlib.util.find_spec(self.package) is None
        except ValueError:  # sys.modules[package] is None: how a test hides it
            missing = True
        if missing:
            raise MissingDependencyError(self.package, extra=self.extra or name, purpose=purpose)

    def refuses(self, model: Model) -> Exception | None:
        """The reason this backend cannot run ``model`` (None when it can, or when it cannot tell)."""
        if self.refusal is None:
            return None
        module_name, _, attr = self.refusal.partition(":")
        reason: Exception | None = getattr(importlib.import_module(module_name), attr)(model)
        return reason


# The registry: name -> entry. A new backend is one module and one entry.
BACKENDS: dict[str, BackendEntry] = {
    "tensorflow": BackendEntry("tfcpu.runtime.backends.tensorflow:TensorFlowBackend"),
    "openvino": BackendEntry(
        "tfcpu.runtime.backends.openvino:OpenVinoBackend",
        package="openvino",
        extra="openvino",
        precision_option=True,
        pool_defaults={"streams": 1},  # one pinned instance, one stream: the pool is the parallelism
        refusal="tfcpu.runtime.backends._openvino_util:openvino_refusal",
    ),
}
DEFAULT_BACKEND = "tensorflow"


def backend_entry(name: str, *, where: str = "Runner(backend=...)") -> BackendEntry:
    """The registry entry of backend ``name``, without importing it.

    Raises:
        ConfigError: no backend of that name (with a did-you-mean).
    """
    entry = BACKENDS.get(name)
    if entry is None:
        hint = did_you_mean(name, BACKENDS) or f"choose one of {', '.join(sorted(BACKENDS))}"
        raise ConfigError(f"unknown backend {name!r}", where=where, hint=hint)
    return entry


def check_backend(name: str, *, where: str = "Runner(backend=...)") -> str:
    """``name``'s ``"module:Class"`` target, without importing it (a parent checks before starting children).

    Raises:
        ConfigError: no backend of that name (with a did-you-mean).
    """
    return backend_entry(name, where=where).target


def backend_class(name: str) -> type[Backend]:
    """The backend class registered as ``name`` (imports its module).

    Raises:
        ConfigError: no backend of that name (with a did-you-mean).
        MissingDependencyError: the backend's package is not installed (raised by its module).
    """
    target = check_backend(name)
    module_name, _, attr = target.partition(":")
    cls: type[Backend] = getattr(importlib.import_module(module_name), attr)
    return cls


@dataclass(frozen=True)
class BenchmarkOptions:
    """How to time a model: one value shared by ``Runner.benchmark``, ``run_instances`` and the CLI.

    Give ``steps`` (timed batches) or ``duration`` (timed seconds), not both; neither means 50 steps.
    ``batch_size=1`` is latency mode.
    """

    batch_size: int = 32
    warmup: int = 5
    steps: int | None = None
    duration: float | None = None
    seed: int = 0
    shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def __post_init__(self) -> None:
        from tfcpu._numbers import MAX_COUNT, MAX_SECONDS, check_number

        where = "BenchmarkOptions"
        check_number(self.batch_size, "batch_size", where=where, integer=True, minimum=1, maximum=MAX_COUNT)
        check_number(self.warmup, "warmup", where=where, integer=True, minimum=0, maximum=MAX_COUNT)
        check_number(self.seed, "seed", where=where, integer=True, minimum=0)
        if self.steps is not None and self.duration is not None:
            raise ConfigError("give steps or duration, not both", where="benchmark")
        if self.steps is not None:
            check_number(self.steps, "steps", where=where, integer=True, minimum=1, maximum=MAX_COUNT)
        if self.duration is not None:
            check_number(self.duration, "duration (seconds)", where=where, above=0, maximum=MAX_SECONDS)
        for name, dims in self.shapes:
            for dim in dims:
                check_number(dim, f"dimension of shape {name!r}", where=where, integer=True, minimum=1)

    @property
    def timed_steps(self) -> int | None:
        """Steps to time: ``steps``, or 50 when neither steps nor duration was given."""
        if self.steps is None and self.duration is None:
            return 50
        return self.steps

    @property
    def mode(self) -> str:
        return "latency" if self.batch_size == 1 else "throughput"

    def shape_map(self) -> dict[str, tuple[int, ...]] | None:
        return {k: tuple(v) for k, v in self.shapes} or None

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "warmup": self.warmup,
            "steps": self.steps,
            "duration": self.duration,
            "seed": self.seed,
            "shapes": {k: list(v) for k, v in self.shapes},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BenchmarkOptions:
        shapes = data.get("shapes") or {}
        return cls(
            batch_size=int(data.get("batch_size", 32)),
            warmup=int(data.get("warmup", 5)),
            steps=None if data.get("steps") is None else int(data["steps"]),
            duration=None if data.get("duration") is None else float(data["duration"]),
            seed=int(data.get("seed", 0)),
            shapes=tuple((str(k), tuple(int(d) for d in v)) for k, v in dict(shapes).items()),
        )


@dataclass(frozen=True)
class Timing:
    """The raw record of a timed region: one ``(start, end, items)`` per request on ``time.monotonic``.

    ``outputs`` holds each request's outputs (in ``model.output_names`` order) when collection was asked.
    """

    batches: tuple[tuple[float, float, int], ...]
    started_at: float
    outputs: tuple[tuple[np.ndarray, ...], ...] = field(default=(), compare=False)

    @property
    def items(self) -> int:
        return sum(b[2] for b in self.batches)

    @property
    def seconds(self) -> float:
        """Wall time from the first request's start to the last request's end."""
        if not self.batches:
            return 0.0
        return max(b[1] for b in self.batches) - min(b[0] for b in self.batches)

    @property
    def latencies(self) -> list[float]:
        return [end - start for start, end, _ in self.batches]

    @property
    def throughput(self) -> float:
        seconds = self.seconds
        return self.items / seconds if seconds > 0 else float("nan")


def _items(ordered: Sequence[np.ndarray]) -> int:
    first = ordered[0] if ordered else None
    return int(first.shape[0]) if first is not None and first.ndim else 1


def timed_loop(
    call: Callable[[Sequence[np.ndarray]], Sequence[np.ndarray]],
    feeds: Iterable[Sequence[np.ndarray]],
    *,
    deadline: float | None = None,
    collect: bool = False,
    progress: Progress | None = None,
    total: int = 0,
) -> Timing:
    """The one synchronous timed loop: call ``call`` on each feed until ``feeds`` ends or ``deadline``.

    ``deadline`` is a ``time.monotonic`` instant; the request that crosses it is the last one. Data
    must be prepared before (``feeds`` should yield ready arrays).
    """
    batches: list[tuple[float, float, int]] = []
    outputs: list[tuple[np.ndarray, ...]] = []
    started_at = time.time()
    for i, ordered in enumerate(feeds, start=1):
        b0 = time.monotonic()
        values = call(ordered)
        b1 = time.monotonic()
        batches.append((b0, b1, _items(ordered)))
        if collect:
            outputs.append(tuple(values))
        if progress is not None:
            progress(i, total)
        if deadline is not None and b1 >= deadline:
            break
    return Timing(tuple(batches), started_at, tuple(outputs))


class Backend(abc.ABC):
    """One runtime that executes a frozen Model.

    Args:
        model: the model to run (a tfcpu Model; backends that read other formats say so).
        config: the thread settings (a SessionConfig); None lets the backend derive them from the topology.
        options: backend-specific settings (e.g. OpenVINO's ``hint``, ``streams``, ``precision``).
    """

    name: ClassVar[str] = ""

    def __init__(
        self, model: Model, config: SessionConfig | None = None, options: Mapping[str, Any] | None = None
    ) -> None:
        self.model = model
        self.config = config
        self.options: dict[str, Any] = dict(options or {})

    @abc.abstractmethod
    def activate(self) -> None:
        """Load, convert or compile the model. Raises RunnerError (or MissingDependencyError)."""

    @abc.abstractmethod
    def infer(self, ordered: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run one batch: inputs in ``model.input_names`` order, outputs in ``model.output_names`` order."""

    @abc.abstractmethod
    def deactivate(self) -> None:
        """Release the runtime's resources; safe to call twice."""

    def describe(self) -> dict[str, Any]:
        """What ran, for results: at least ``{"backend": name}``; also precision, streams, threads..."""
        return {"backend": self.name}

    def warm(self, ordered: Sequence[np.ndarray], warmup: int) -> float:
        """Run the first batch (timed, returned in seconds) and ``warmup`` more, untimed."""
        t0 = time.perf_counter()
        self.infer(ordered)
        first = time.perf_counter() - t0
        for _ in range(warmup):
            self.infer(ordered)
        return first

    def timed(
        self,
        feeds: Iterable[Sequence[np.ndarray]],
        *,
        deadline: float | None = None,
        collect: bool = False,
        progress: Progress | None = None,
        total: int = 0,
    ) -> Timing:
        """The timed region (see `timed_loop()`); asynchronous backends override it."""
        return timed_loop(self.infer, feeds, deadline=deadline, collect=collect, progress=progress, total=total)
