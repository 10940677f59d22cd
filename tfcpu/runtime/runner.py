"""``Runner``: run a frozen Model in a TensorFlow session with tuned threads, and benchmark it.

Lifecycle (strict, like a file object)::

    with tfcpu.Runner(model, config) as runner:     # activate: import graph, open session
        outputs = runner.run({"input:0": batch})    # by name, by position, or one array
        result = runner.benchmark(batch_size=16, steps=50)
    # deactivate: session closed; run() now raises RunnerError

Threads are applied through the session's ConfigProto (intra/inter-op), which takes effect
even after TensorFlow has started. Environment variables (KMP_*, OMP_*, oneDNN) only take
effect before TensorFlow starts: use `Runner.multi_instance()` or ``tfcpu bench``, which
set them in fresh child processes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tfcpu.errors import ConfigError, RunnerError
from tfcpu.graph.model import Model
from tfcpu.runtime.feeds import normalise_feed, synthetic_batch
from tfcpu.runtime.results import BenchmarkResult
from tfcpu.runtime.stats import LatencyStats

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.plan import InstancePlan
    from tfcpu.runtime.results import MultiInstanceResult
    from tfcpu.session.config import SessionConfig

__all__ = ["Runner"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


class Runner:
    """Runs one Model in one TensorFlow session.

    Args:
        model: a frozen `Model` (see `tfcpu.load()`).
        config: thread settings; ``None`` uses ``SessionConfig.for_topology()`` (the white
            paper's defaults for this machine's usable cores).
        name: a label for results.
    """

    def __init__(self, model: Model, config: SessionConfig | None = None, *, name: str = "") -> None:
        if not isinstance(model, Model):
            raise ConfigError(
                f"Runner needs a tfcpu Model, got {type(model).__name__}",
                hint="load it first: model = tfcpu.load(path_or_keras_model)",
            )
        if not model.inputs or not model.outputs:
            raise ConfigError("the model has no inputs or no outputs", where=model.source)
        self.model = model
        self._config = config
        self.name = name
        self._session: Any = None
        self._callable: Any = None
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
        return self._session is not None

    def activate(self) -> Runner:
        """Import the graph and open the session (``__enter__`` does this)."""
        if self._closed:
            raise RunnerError("this Runner was closed", hint="create a new Runner")
        if self._session is not None:
            return self
        from tfcpu._lazy import import_tensorflow
        from tfcpu.graph.passes.strip_attrs import for_installed_tensorflow

        tf = import_tensorflow()
        self._check_onednn()
        graph = tf.Graph()
        try:
            with graph.as_default():
                tf.compat.v1.import_graph_def(for_installed_tensorflow(self.model.graph_def), name="")
            fetches = [graph.get_tensor_by_name(n) for n in self.model.output_names]
            feeds = [graph.get_tensor_by_name(n) for n in self.model.input_names]
        except (ValueError, KeyError, TypeError) as exc:
            raise RunnerError(
                "TensorFlow could not import the graph", where=self.model.source, why=str(exc).splitlines()[0]
            ) from exc
        session = tf.compat.v1.Session(graph=graph, config=self.config.config_proto())
        self._session = session
        self._callable = session.make_callable(fetches, feed_list=feeds)
        log.debug("runner activated for %s", self.model.source)
        return self

    def _check_onednn(self) -> None:
        if not self.model.needs_onednn:
            return
        from tfcpu.session.runtime import runtime_info

        info = runtime_info()
        if info.onednn_enabled or info.itex_installed:  # ITEX's plug-in brings its own quantised kernels
            return
        raise RunnerError(
            "this graph needs oneDNN, which is off in this process",
            where=self.model.source,
            why=(
                "its quantised (INT8) or BF16 kernels exist only in oneDNN; TensorFlow was imported without "
                "TF_ENABLE_ONEDNN_OPTS=1 and reads it only once, at import (stock TensorFlow turns oneDNN on "
                "by itself only on CPUs with VNNI, BF16 or AMX)"
            ),
            hint=(
                "call tfcpu.SessionConfig.for_topology().with_onednn(True).apply() (or set "
                "TF_ENABLE_ONEDNN_OPTS=1) before anything imports TensorFlow, or run it in fresh processes "
                "with Runner(model).multi_instance(plan) / `tfcpu bench`, which turn oneDNN on themselves"
            ),
        )

    def close(self) -> None:
        """Close the session; the Runner cannot be used afterwards."""
        if self._session is not None:
            self._session.close()
        self._session = None
        self._callable = None
        self._closed = True

    def __enter__(self) -> Runner:
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_active(self) -> None:
        if self._session is None:
            state = "was closed" if self._closed else "is not active"
            raise RunnerError(
                f"the Runner {state}", hint="use it inside `with Runner(model) as runner:` or call activate()"
            )

    # -- inference ------------------------------------------------------------------------
    def run(self, feed: Any) -> dict[str, np.ndarray]:
        """Run one batch. ``feed``: dict by input name (with or without ``:0``), a sequence in
        input order, or one array for a single-input model. Returns outputs by tensor name."""
        self._require_active()
        arrays = normalise_feed(self.model, feed)
        values = self._call([arrays[n] for n in self.model.input_names])
        return dict(zip(self.model.output_names, values, strict=True))

    def _call(self, ordered: Sequence[np.ndarray]) -> list[np.ndarray]:
        try:
            return list(self._callable(*ordered))
        except Exception as exc:
            raise RunnerError(
                "TensorFlow failed to run the graph", where=self.model.source, why=str(exc).splitlines()[0]
            ) from exc

    # -- benchmarking ---------------------------------------------------------------------
    def benchmark(
        self,
        *,
        batch_size: int = 32,
        warmup: int = 5,
        steps: int | None = None,
        duration: float | None = None,
        data: str | np.ndarray | Mapping[str, np.ndarray] | Iterable[Any] = "synthetic",
        shapes: Mapping[str, Sequence[int]] | None = None,
        progress: Progress | None = None,
        seed: int = 0,
    ) -> BenchmarkResult:
        """Time the model like the white paper's Appendix B.

        Data is prepared before the timed region. Throughput = items / wall time of the timed
        region; latency is per batch. The first batch is timed separately and excluded, as are
        ``warmup`` batches. Give ``steps`` (batches) or ``duration`` (seconds), not both;
        neither means 50 steps. ``batch_size=1`` is latency mode.
        """
        self._require_active()
        if batch_size < 1:
            raise ConfigError("batch_size must be >= 1", where="benchmark", hint="e.g. batch_size=32")
        if warmup < 0:
            raise ConfigError("warmup must be >= 0", where="benchmark")
        if steps is not None and duration is not None:
            raise ConfigError("give steps or duration, not both", where="benchmark")
        if steps is not None and steps < 1:
            raise ConfigError("steps must be >= 1", where="benchmark")
        if duration is not None and duration <= 0:
            raise ConfigError("duration must be > 0 seconds", where="benchmark")
        if steps is None and duration is None:
            steps = 50

        batches = self._prepare_batches(data, batch_size, shapes, seed)
        names = self.model.input_names
        ordered = [[b[n] for n in names] for b in batches]

        t0 = time.perf_counter()
        self._call(ordered[0])
        first_run = time.perf_counter() - t0
        for i in range(warmup):
            self._call(ordered[(i + 1) % len(ordered)])

        latencies: list[float] = []
        items = 0
        started_wall = time.time()
        start = time.perf_counter()
        deadline = start + duration if duration is not None else None
        total = steps if steps is not None else 0
        i = 0
        while True:
            feed = ordered[i % len(ordered)]
            b0 = time.perf_counter()
            self._call(feed)
            b1 = time.perf_counter()
            latencies.append(b1 - b0)
            items += int(feed[0].shape[0]) if feed[0].ndim else 1
            i += 1
            if progress is not None:
                progress(i, total)
            if steps is not None and i >= steps:
                break
            if deadline is not None and b1 >= deadline:
                break
        elapsed = time.perf_counter() - start
        return BenchmarkResult(
            model=self.model.source,
            batch_size=batch_size,
            warmup=warmup,
            steps=i,
            items=items,
            seconds=elapsed,
            throughput=items / elapsed if elapsed > 0 else float("nan"),
            latency_ms=LatencyStats.from_seconds(latencies),
            first_run_ms=first_run * 1000.0,
            mode="latency" if batch_size == 1 else "throughput",
            config=self._config_summary(),
            topology=self._topology_summary(),
            runtime=self._runtime_summary(),
            started_at=started_wall,
            name=self.name,
        )

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

    # -- many instances -------------------------------------------------------------------
    def multi_instance(self, plan: InstancePlan, **kwargs: Any) -> MultiInstanceResult:
        """Run this model in one pinned child process per instance of ``plan``.

        Keyword arguments are those of `tfcpu.runtime.multi.run_instances()`.
        """
        from tfcpu.runtime.multi import run_instances

        return run_instances(self.model, plan, **kwargs)
