"""``Runner``: run a frozen Model through one backend with tuned threads, and benchmark it.

Lifecycle (strict, like a file object)::

    with tfcpu.Runner(model, config) as runner:     # activate: the backend imports / compiles the model
        outputs = runner.run({"input:0": batch})    # by name, by position, or one array
        result = runner.benchmark(BenchmarkOptions(batch_size=16, steps=50))
    # deactivate: the backend is released; run() now raises RunnerError

The backend (``backend="tensorflow"`` by default, or another key of `BACKENDS`, see
`tfcpu.runtime.backends`) executes the model; Runner keeps the lifecycle, the feed
validation and the benchmark semantics, which are the same for every backend. For TensorFlow,
threads are applied through the session's ConfigProto, which takes effect even after TensorFlow
has started; environment variables (KMP_*, OMP_*, oneDNN) only take effect before it starts:
use `Runner.multi_instance()` or ``tfcpu bench``, which set them in fresh child processes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from tfcpu.errors import ConfigError, RunnerError
from tfcpu.graph.model import Model
from tfcpu.runtime.backends._base import Backend, BenchmarkOptions, Timing, backend_class
from tfcpu.runtime.feeds import normalise_feed, synthetic_batch
from tfcpu.runtime.results import BenchmarkResult
from tfcpu.runtime.stats import LatencyStats, round_throughputs

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.plan import InstancePlan
    from tfcpu.runtime.dispatch import DispatchReport
    from tfcpu.runtime.pool import Pool
    from tfcpu.runtime.results import MultiInstanceResult
    from tfcpu.session.config import SessionConfig

__all__ = ["Runner", "benchmark_options", "benchmark_result"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
Data = str | np.ndarray | Mapping[str, np.ndarray] | Iterable[Any]

_OPTION_NAMES = ("batch_size", "warmup", "steps", "duration", "seed", "shapes")


def benchmark_options(options: BenchmarkOptions | None = None, **kwargs: Any) -> BenchmarkOptions:
    """``options``, or a BenchmarkOptions built from the keyword arguments of ``Runner.benchmark``.

    Raises:
        ConfigError: both were given, or an unknown keyword (with a did-you-mean).
    """
    from tfcpu.errors import did_you_mean

    unknown = [k for k in kwargs if k not in _OPTION_NAMES]
    if unknown:
        hint = did_you_mean(unknown[0], _OPTION_NAMES) or f"use one of {', '.join(_OPTION_NAMES)}"
        raise ConfigError(f"unknown benchmark option {unknown[0]!r}", where="benchmark", hint=hint)
    given = {k: v for k, v in kwargs.items() if v is not None}
    if options is not None:
        if given:
            raise ConfigError(
                "give a BenchmarkOptions or keyword arguments, not both",
                where="benchmark",
                hint="e.g. runner.benchmark(BenchmarkOptions(batch_size=16, steps=50))",
            )
        return options
    shapes = given.pop("shapes", None)
    if shapes:
        given["shapes"] = tuple((str(k), tuple(int(d) for d in v)) for k, v in dict(shapes).items())
    return BenchmarkOptions(**given)


def benchmark_result(
    timing: Timing,
    options: BenchmarkOptions,
    *,
    model: str,
    first_run_s: float,
    config: Mapping[str, Any],
    topology: str,
    runtime: Mapping[str, Any],
    backend: Mapping[str, Any],
    name: str = "",
    region_start: float | None = None,
) -> BenchmarkResult:
    """The BenchmarkResult of one timed region (shared by Runner.benchmark and the multi-instance worker).

    ``region_start`` (``time.monotonic``) is when the timed region began, when that is before the
    first request (Runner.benchmark: the moment its deadline was set); default: the first request's start.
    """
    seconds = timing.seconds
    if region_start is not None and timing.batches:
        seconds = max(b[1] for b in timing.batches) - region_start
    return BenchmarkResult(
        model=model,
        batch_size=options.batch_size,
        warmup=options.warmup,
        steps=len(timing.batches),
        items=timing.items,
        seconds=seconds,
        throughput=timing.items / seconds if seconds > 0 else float("nan"),
        latency_ms=LatencyStats.from_seconds(timing.latencies),
        first_run_ms=first_run_s * 1000.0,
        mode=options.mode,
        config=dict(config),
        topology=topology,
        runtime=dict(runtime),
        started_at=timing.started_at,
        name=name,
        backend=dict(backend),
        rounds=round_throughputs(timing.batches),
    )


def repeat_feeds(ordered: Sequence[Sequence[np.ndarray]], steps: int | None) -> Iterable[Sequence[np.ndarray]]:
    """``steps`` feeds cycling over ``ordered`` (forever when ``steps`` is None: a deadline ends it)."""
    i = 0
    while steps is None or i < steps:
        yield ordered[i % len(ordered)]
        i += 1


class Runner:
    """Runs one Model through one backend.

    Args:
        model: a frozen `Model` (see `tfcpu.load()`).
        config: thread settings; ``None`` uses ``SessionConfig.for_topology()`` (the white
            paper's defaults for this machine's usable cores).
        backend: the registered backend name (a key of `tfcpu.runtime.backends.BACKENDS`); unknown names are
            refused here, with a did-you-mean.
        options: backend-specific settings, passed to the backend unchanged.
        name: a label for results.
    """

    def __init__(
        self,
        model: Model,
        config: SessionConfig | None = None,
        *,
        backend: str | None = None,
        options: Mapping[str, Any] | None = None,
        name: str = "",
    ) -> None:
        if not isinstance(model, Model):
            raise ConfigError(
                f"Runner needs a tfcpu Model, got {type(model).__name__}",
                hint="load it first: model = tfcpu.load(path_or_keras_model)",
            )
        if not model.inputs or not model.outputs:
            raise ConfigError("the model has no inputs or no outputs", where=model.source)
        if not model.runnable:
            raise ConfigError(
                f"a {type(model).__name__} cannot run: it is a record of a model, without its graph",
                where=model.source,
                why="results read back from JSON keep the signature and op histogram, not the weights",
                hint="load the saved model file itself: tfcpu.load(path)",
            )
        self.model = model
        self._config = config
        self.name = name
        self.backend_name = backend or model.preferred_backend  # an OpenVINO IR runs on OpenVINO
        self._backend_class = backend_class(self.backend_name)
        self.backend_options: dict[str, Any] = dict(options or {})
        self._backend: Backend | None = None
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def config(self) -> SessionConfig:
        if self._config is None:
            from tfcpu.session.config import SessionConfig

            self._config = SessionConfig.for_topology()
        return self._config

    @property
    def active(self) -> bool:
        return self._backend is not None

    @property
    def backend(self) -> Backend:
        """The active backend (raises RunnerError when the Runner is not active)."""
        self._require_active()
        assert self._backend is not None
        return self._backend

    def activate(self) -> Runner:
        """Activate the backend: import / convert / compile the model (``__enter__`` does this)."""
        if self._closed:
            raise RunnerError("this Runner was closed", hint="create a new Runner")
        if self._backend is not None:
            return self
        backend = self._backend_class(self.model, self.config, self.backend_options)
        backend.activate()
        self._backend = backend
        log.debug("runner activated for %s (%s)", self.model.source, self.backend_name)
        return self

    def close(self) -> None:
        """Release the backend; the Runner cannot be used afterwards."""
        if self._backend is not None:
            self._backend.deactivate()
        self._backend = None
        self._closed = True

    def __enter__(self) -> Runner:
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_active(self) -> None:
        if self._backend is None:
            state = "was closed" if self._closed else "is not active"
            raise RunnerError(
                f"the Runner {state}", hint="use it inside `with Runner(model) as runner:` or call activate()"
            )

    def describe(self) -> dict[str, Any]:
        """What runs the model (the backend's ``describe()``)."""
        return self.backend.describe()

    # -- inference ------------------------------------------------------------------------
    def run(self, feed: Any) -> dict[str, np.ndarray]:
        """Run one batch. ``feed``: dict by input name (with or without ``:0``), a sequence in
        input order, or one array for a single-input model. Returns outputs by tensor name."""
        self._require_active()
        arrays = normalise_feed(self.model, feed)
        values = self.backend.infer([arrays[n] for n in self.model.input_names])
        return dict(zip(self.model.output_names, values, strict=True))

    # -- benchmarking ---------------------------------------------------------------------
    def benchmark(
        self,
        options: BenchmarkOptions | None = None,
        *,
        data: Data = "synthetic",
        progress: Progress | None = None,
        batch_size: int | None = None,
        warmup: int | None = None,
        steps: int | None = None,
        duration: float | None = None,
        shapes: Mapping[str, Sequence[int]] | None = None,
        seed: int | None = None,
    ) -> BenchmarkResult:
        """Time the model like the white paper's Appendix B.

        Data is prepared before the timed region. Throughput = items / wall time of the timed
        region; latency is per batch. The first batch is timed separately and excluded, as are
        ``warmup`` batches. Give ``steps`` (batches) or ``duration`` (seconds), not both;
        neither means 50 steps. ``batch_size=1`` is latency mode.

        Args:
            options: how to time it; or give the same settings as keyword arguments.
            data: ``"synthetic"`` (one seeded random batch), an array / dict of arrays split into
                batches, or an iterable of feeds.
            progress: callback ``(done, total)`` after each timed batch (total 0 with a duration).
            batch_size: keyword form of ``BenchmarkOptions.batch_size``.
            warmup: keyword form of ``BenchmarkOptions.warmup``.
            steps: keyword form of ``BenchmarkOptions.steps``.
            duration: keyword form of ``BenchmarkOptions.duration``.
            shapes: keyword form of ``BenchmarkOptions.shapes`` (a dict by input name).
            seed: keyword form of ``BenchmarkOptions.seed``.
        """
        self._require_active()
        opts = benchmark_options(
            options, batch_size=batch_size, warmup=warmup, steps=steps, duration=duration, shapes=shapes, seed=seed
        )
        batches = self._prepare_batches(data, opts.batch_size, opts.shape_map(), opts.seed)
        names = self.model.input_names
        ordered = [[b[n] for n in names] for b in batches]
        backend = self.backend
        first = backend.warm(ordered[0], opts.warmup)
        region_start = time.monotonic()
        deadline = region_start + opts.duration if opts.duration is not None else None
        steps_ = opts.timed_steps
        from tfcpu.runtime.contention import ContentionProbe

        probe = ContentionProbe().start()
        timing = backend.timed(repeat_feeds(ordered, steps_), deadline=deadline, progress=progress, total=steps_ or 0)
        contention = probe.stop()
        result = benchmark_result(
            timing,
            opts,
            model=self.model.source,
            first_run_s=first,
            config=self._config_summary(),
            topology=self._topology_summary(),
            runtime=self._runtime_summary(),
            backend=backend.describe(),
            name=self.name,
            region_start=region_start,
        )
        return replace(result, contention=contention.to_dict())

    def _prepare_batches(
        self,
        data: Any,
        batch_size: int,
        shapes: Mapping[str, Sequence[int]] | None,
        seed: int,
    ) -> list[dict[str, np.ndarray]]:
        if isinstance(data, str):
            if data != "synthetic":
                raise ConfigError(f"unknown data source {data!r}", hint='use "synthetic" or pass arrays')
            return [synthetic_batch(self.model, batch_size, seed=seed, shapes=shapes)]
        if isinstance(data, (np.ndarray, Mapping)):
            arrays = normalise_feed(self.model, data)
            n = min(a.shape[0] for a in arrays.values())
            if n == 0:
                raise ConfigError("the dataset is empty", where="benchmark")
            out = []
            for s in range(0, n, batch_size):
                out.append({k: v[s : s + batch_size] for k, v in arrays.items()})
            return out
        out = [normalise_feed(self.model, b) for b in data]
        if not out:
            raise ConfigError("the dataset yielded no batches", where="benchmark")
        return out

    def _config_summary(self) -> dict[str, Any]:
        cfg = self.config
        return {"intra_op_threads": cfg.intra_op_threads, "inter_op_threads": cfg.inter_op_threads}

    @staticmethod
    def _topology_summary() -> str:
        from tfcpu.topology import Topology

        return Topology.detect().summary()

    @staticmethod
    def _runtime_summary() -> dict[str, Any]:
        from tfcpu.session.runtime import runtime_info

        return runtime_info().to_dict()

    # -- what ran -------------------------------------------------------------------------
    def dispatch(self, batch_size: int = 1, **kwargs: Any) -> DispatchReport:
        """Run one batch in a child with oneDNN's verbose log: kernels, their ISA, time (is AMX used?).

        Args:
            batch_size: items in the measured batch.
            **kwargs: ``env``, ``timeout``, ``shapes`` (see `tfcpu.runtime.dispatch.probe_dispatch`).
        """
        from tfcpu.runtime.dispatch import runner_dispatch

        return runner_dispatch(self, batch_size, **kwargs)

    # -- many instances -------------------------------------------------------------------
    def pool(self, plan: InstancePlan | None = None, **kwargs: Any) -> Pool:
        """Long-lived pinned workers running this model, one per instance of ``plan`` (`tfcpu.Pool`).

        The same thing as ``tfcpu.Pool(runner.model, plan, runner.config, backend=..., backend_options=...)``
        with this Runner's config (its oneDNN choice, ITEX, allocator... reach every worker), backend and
        options; keyword arguments are `tfcpu.Pool`'s. This Runner need not be active.
        """
        from tfcpu.runtime.pool import Pool

        kwargs.setdefault("backend", self.backend_name)
        kwargs.setdefault("backend_options", self.backend_options)
        return Pool(self.model, plan, self._config, **kwargs)

    def multi_instance(self, plan: InstancePlan, **kwargs: Any) -> MultiInstanceResult:
        """Run this model in one pinned child process per instance of ``plan`` (the `tfcpu.Pool` workers).

        Keyword arguments are those of `tfcpu.runtime.multi.run_instances()`; this Runner's
        backend and its options are used unless ``settings`` names others, and its whole config
        reaches every child (oneDNN, KMP/OMP, ITEX, allocator, frozen weights, extra variables; the
        threads and CPUs are each instance's), unless ``config`` is given.
        """
        from tfcpu.runtime._settings import with_session_settings
        from tfcpu.runtime.multi import InstanceSettings, run_instances

        if "settings" not in kwargs and self.backend_name != "tensorflow":
            kwargs["settings"] = InstanceSettings(
                backend=self.backend_name, backend_options=tuple(sorted(self.backend_options.items()))
            )
        settings = with_session_settings(kwargs.get("settings"), self.config)
        if settings is not None:
            kwargs["settings"] = settings
        kwargs.setdefault("config", self.config)
        return run_instances(self.model, plan, **kwargs)
