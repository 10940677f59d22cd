"""``OpenVinoBackend``: run a tfcpu Model with OpenVINO on the CPU, checked against TensorFlow FP32.

::

    backend = OpenVinoBackend(model, config, {"hint": "throughput", "precision": "f32"})
    backend.activate()        # convert (in memory) + compile + numerical check on seeded inputs
    outputs = backend.infer([batch])                 # model.output_names order, TF's dtypes
    timing = backend.timed(feeds, deadline=...)      # a ring of infer requests keeps several in flight
    backend.describe()        # precision read back from the compiled model, streams, threads, hint

Settings (backend ``options``, all optional):

* ``hint``: ``"throughput"`` (default) or ``"latency"`` → ``PERFORMANCE_HINT``;
* ``streams``: ``NUM_STREAMS`` (default: the hint decides; a multi-instance child gets 1 unless the
  options name another number, so each pinned instance is one stream over its own cores);
* ``threads``: ``INFERENCE_NUM_THREADS`` (default: the SessionConfig's intra-op threads, i.e. the
  instance's cores);
* ``pinning``: ``ENABLE_CPU_PINNING`` (default: OpenVINO's, on);
* ``precision``: ``"f32"`` (default), ``"bf16"`` (refused without AVX512_BF16/AMX_BF16) or ``"auto"``
  → ``INFERENCE_PRECISION_HINT``. OpenVINO's own default is BF16 on CPUs with AMX (and, in 2026.x, with
  AVX512_BF16), which changes the numbers silently; tfcpu asks for f32 unless told otherwise and
  ``describe()`` reports what the compiled model runs (an IR saved with ``precision=bf16`` by
  ``tfcpu quantize --backend openvino --bf16`` defaults to bf16);
* ``check``: True (default) runs the first-use numerical check; ``rtol`` (1e-4) is the FP32 bound on
  the error relative to each output's range, ``min_cosine`` (0.99) the bound for BF16/INT8;
* ``requests``: infer requests in flight in `timed()` (default ``OPTIMAL_NUMBER_OF_INFER_REQUESTS``);
* ``static_shapes``: True (default) compiles once per batch shape seen (OpenVINO runs static shapes
  faster than the model's dynamic batch dimension; the compile happens in ``warm``, outside the timed
  region); False compiles the dynamic model once.

The first-use check runs seeded inputs (batch 2; an unknown sequence length or other non-batch
dimension at 16) through the Model's GraphDef in a TensorFlow session and through the compiled
model: an FP32 compilation must agree within ``rtol`` (else RunnerError with the numbers); a
BF16/INT8 one reports cosine and top-1 agreement and is refused only below ``min_cosine``. An
OpenVINO IR loaded with `tfcpu.load()` has no TF graph to compare against: its check is skipped
(an IR written by tfcpu's NNCF path was checked when it was made).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from tfcpu.errors import ConfigError, RunnerError, did_you_mean, runtime_reason
from tfcpu.runtime.backends._base import Backend, Progress, Timing
from tfcpu.runtime.backends._openvino_util import (
    Agreement,
    CompileSettings,
    agreement,
    compiled_precisions,
    convert_graph,
    import_openvino,
    output_ports,
    precision_label,
)

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.graph.model import Model
    from tfcpu.session.config import SessionConfig

__all__ = ["OpenVinoBackend"]

log = logging.getLogger(__name__)

ov = import_openvino()  # MissingDependencyError naming tfcpu[openvino] when the backend is chosen without it

OPTIONS = (
    "hint", "streams", "threads", "pinning", "precision", "check", "rtol", "min_cosine", "requests", "seed",
    "static_shapes",
)  # fmt: skip
CHECK_BATCH = 2
CHECK_UNKNOWN_DIMS = 16  # the first-use check's size for unknown non-batch dimensions (sequence lengths)


class OpenVinoBackend(Backend):
    """OpenVINO on the CPU (see the module docstring for the options)."""

    name: ClassVar[str] = "openvino"

    def __init__(
        self, model: Model, config: SessionConfig | None = None, options: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(model, config, options)
        unknown = [k for k in self.options if k not in OPTIONS]
        if unknown:
            raise ConfigError(
                f"unknown OpenVINO backend option {unknown[0]!r}",
                where="backend options",
                hint=did_you_mean(unknown[0], OPTIONS) or f"options: {', '.join(OPTIONS)}",
            )
        self.settings = self._settings()
        self._active = False
        self._source: Any = None  # the openvino.Model (None when handed a compiled model)
        self._cache: dict[tuple[tuple[int, ...], ...], Any] = {}
        self._shape_key: tuple[tuple[int, ...], ...] | None = None
        self._compiled: Any = None
        self._request: Any = None
        self._ports: list[Any] = []
        self._check: Agreement | None = None
        self._check_note = "not run"

    # -- settings -------------------------------------------------------------------------
    def _settings(self) -> CompileSettings:
        opts = self.options
        precision = str(opts.get("precision") or _ir_precision(self.model) or "f32").lower()
        precision = {"fp32": "f32", "float32": "f32", "bfloat16": "bf16"}.get(precision, precision)
        if precision in ("int8", "i8", "u8"):
            raise ConfigError(
                "INT8 on OpenVINO comes from the model, not from a setting",
                where="backend option precision",
                hint="quantise it first (Quantizer().int8().backend('openvino') or `tfcpu quantize -o OUT.xml`) "
                "and run that model with precision f32",
            )
        if precision == "bf16":
            from tfcpu.session.precision import check_precision

            check_precision("bf16")
        threads = opts.get("threads")
        if threads is None and self.config is not None:
            threads = self.config.intra_op_threads or None
        pinning = opts.get("pinning")
        return CompileSettings(
            hint=str(opts.get("hint", "throughput")).lower(),
            streams=None if opts.get("streams") in (None, "auto") else int(opts["streams"]),
            threads=None if threads is None else int(threads),
            pinning=None if pinning is None else _flag(pinning),
            precision=precision,
        )

    # -- lifecycle ------------------------------------------------------------------------
    def activate(self) -> None:
        if self._active:
            return
        source = _ov_model_of(self.model)
        if source is None:
            source = convert_graph(self.model)
        if isinstance(source, ov.CompiledModel):  # NNCF's accuracy control hands over compiled models
            self._use(source)
        else:
            self._source = source
        self._active = True
        if _flag(self.options.get("check", True)):
            self._first_use_check()
        else:
            self._check_note = "skipped (check=False)"

    def deactivate(self) -> None:
        self._active = False
        self._source = None
        self._cache.clear()
        self._request = self._compiled = None
        self._ports = []

    def _compile(self, model: Any) -> Any:
        try:
            compiled = ov.Core().compile_model(model, "CPU", self.settings.properties())
        except RuntimeError as exc:
            raise RunnerError(
                "OpenVINO could not compile the model",
                where=self.model.source,
                why=str(exc).strip().splitlines()[-1],
                hint="check the backend options (hint, streams, threads, precision)",
            ) from exc
        log.debug("OpenVINO compiled %s with %s", self.model.source, self.settings.properties())
        return compiled

    def _use(self, compiled: Any) -> None:
        self._compiled = compiled
        self._ports = output_ports(compiled, self.model.output_names)
        self._request = compiled.create_infer_request()

    def _require(self) -> Any:
        """The compiled model in use (the model's own, possibly dynamic, shapes until a batch arrives)."""
        if not self._active:
            raise RunnerError("the OpenVINO backend is not active", hint="call activate() first")
        if self._compiled is None:
            self._use(self._compile(self._source))
        return self._compiled

    def _for_shapes(self, ordered: Sequence[np.ndarray]) -> None:
        """Compile for the batch's static shapes (OpenVINO runs static shapes faster than dynamic ones),
        once per shape; a few shapes are kept."""
        self._require()
        if self._source is None or not _flag(self.options.get("static_shapes", True)):
            return
        key = tuple(tuple(int(d) for d in np.shape(a)) for a in ordered)
        if key == self._shape_key:
            return
        if key not in self._cache:
            reshaped = self._source.clone()
            reshaped.reshape({spec.name: list(shape) for spec, shape in zip(self.model.inputs, key, strict=True)})
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = self._compile(reshaped)
        self._use(self._cache[key])
        self._shape_key = key

    # -- inference ------------------------------------------------------------------------
    def _inputs(self, ordered: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        if len(ordered) != len(self.model.inputs):
            raise RunnerError(f"the model has {len(self.model.inputs)} inputs, got {len(ordered)}")
        return {spec.name: np.ascontiguousarray(a) for spec, a in zip(self.model.inputs, ordered, strict=True)}

    def _outputs(self, results: Any, ports: Sequence[Any]) -> list[np.ndarray]:
        out = []
        for spec, port in zip(self.model.outputs, ports, strict=True):
            value = np.asarray(results[port])
            if spec.dtype and value.dtype != np.dtype(spec.dtype):
                value = value.astype(spec.dtype)
            out.append(value)
        return out

    def infer(self, ordered: Sequence[np.ndarray]) -> list[np.ndarray]:
        self._for_shapes(ordered)
        try:
            results = self._request.infer(self._inputs(ordered))
        except RuntimeError as exc:
            raise RunnerError(
                "OpenVINO failed to run the model", where=self.model.source, why=runtime_reason(exc)
            ) from exc
        return [v.copy() for v in self._outputs(results, self._ports)]

    def timed(
        self,
        feeds: Iterable[Sequence[np.ndarray]],
        *,
        deadline: float | None = None,
        collect: bool = False,
        progress: Progress | None = None,
        total: int = 0,
    ) -> Timing:
        """Keep ``requests`` infer requests in flight (a ring, oldest first) and record one
        (start, end, items) per finished request on ``time.monotonic``; submission stops after
        ``deadline`` and the requests in flight finish.

        No Python callback runs on OpenVINO's threads: an ``AsyncInferQueue`` with a callback was seen
        to abort the process later ("Resource deadlock avoided" from a native thread). A request's end
        is when this thread finds it done; in a ring of equal requests that is when the oldest finishes.
        """
        stream = iter(feeds)
        first = next(stream, None)
        if first is None:
            return Timing((), time.time())
        self._for_shapes(first)
        compiled, ports, key = self._compiled, list(self._ports), self._shape_key
        jobs = int(self.options.get("requests") or compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        ring = _Ring(compiled, max(1, jobs), ports, self._outputs, collect)
        started_at = time.time()
        try:
            for index, ordered in enumerate(itertools.chain([first], stream)):
                if key is not None and tuple(np.shape(a) for a in ordered) != key:
                    ring.drain()
                    raise RunnerError("every timed batch must have the first batch's shapes", why=f"batch {index}")
                items = int(ordered[0].shape[0]) if ordered and np.ndim(ordered[0]) else 1
                ring.submit(index, self._inputs(ordered), items)
                if progress is not None:
                    progress(index + 1, total)
                if deadline is not None and time.monotonic() >= deadline:
                    break
            ring.drain()
        except RuntimeError as exc:
            raise RunnerError("OpenVINO failed during the timed run", why=str(exc).strip().splitlines()[-1]) from exc
        done = ring.done
        order = sorted(done)
        return Timing(
            tuple((done[i][0], done[i][1], done[i][2]) for i in order),
            started_at,
            tuple(done[i][3] for i in order) if collect else (),
        )

    # -- the numerical check ------------------------------------------------------------------
    def _first_use_check(self) -> None:
        if _ov_model_of(self.model) is not None or not len(self.model.graph_def.node):
            self._check_note = "skipped: an OpenVINO IR has no TensorFlow graph to compare with"
            return
        from tfcpu.graph._execute import run_graph
        from tfcpu.graph._inputs import random_inputs

        seed = int(self.options.get("seed", 0))
        # a dynamic dimension other than the batch (a sequence length) is checked at CHECK_UNKNOWN_DIMS
        feeds = random_inputs(self.model, CHECK_BATCH, seed=seed, unknown_dims=CHECK_UNKNOWN_DIMS)
        reference = run_graph(self.model.graph_def, feeds, self.model.output_names)
        candidate = self.infer([feeds[n] for n in self.model.input_names])
        result = agreement([reference], [candidate])
        self._check = result
        label = self.precision
        rtol = float(self.options.get("rtol", 1e-4))
        min_cosine = float(self.options.get("min_cosine", 0.99))
        if label == "fp32" and not result.max_rel <= rtol:
            raise RunnerError(
                "OpenVINO's FP32 conversion does not agree with TensorFlow",
                where=self.model.source,
                why=f"{result.text()} on seeded inputs (bound: rel err {rtol:g})",
                hint="run it with the TensorFlow backend, or report the model; options={'rtol': ...} loosens "
                "the bound, {'check': False} skips the check",
            )
        if label != "fp32" and not result.cosine >= min_cosine:
            raise RunnerError(
                f"OpenVINO's {label.upper()} model disagrees grossly with TensorFlow FP32",
                where=self.model.source,
                why=f"{result.text()} on seeded inputs (bound: cosine {min_cosine:g})",
                hint="use precision='f32', or recalibrate the INT8 model with real data",
            )
        self._check_note = f"{label} vs TensorFlow FP32: {result.text()}"
        log.info("OpenVINO first-use check on %s: %s", self.model.source, self._check_note)

    # -- what ran ---------------------------------------------------------------------------
    @property
    def precision(self) -> str:
        """``int8`` / ``bf16`` / ``fp32``, read from the compiled model's runtime layers."""
        return precision_label(compiled_precisions(self._require()))

    def describe(self) -> dict[str, Any]:
        compiled = self._require()
        layers = compiled_precisions(compiled)

        def prop(name: str) -> Any:
            value = compiled.get_property(name)
            return value if isinstance(value, int | bool | str) else str(value)

        hint_precision = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
        asked = self.settings.precision
        note = {
            "f32": "tfcpu forces f32 (OpenVINO would pick BF16 by itself on CPUs with AMX/AVX512_BF16)",
            "bf16": "bf16 asked for",
            "auto": "OpenVINO's own choice (BF16 where the CPU has AMX/AVX512_BF16)",
        }[asked]
        return {
            "backend": self.name,
            "precision": precision_label(layers),
            "compute_layers": layers,
            "inference_precision_hint": hint_precision.replace("<Type: '", "").replace("'>", ""),
            "precision_asked": asked,
            "precision_note": note,
            "hint": prop("PERFORMANCE_HINT"),
            "streams": prop("NUM_STREAMS"),
            "threads": prop("INFERENCE_NUM_THREADS"),
            # what tfcpu asked for (None: OpenVINO's hint chose); a pinned instance asks 1 stream on its threads
            "streams_asked": self.settings.streams,
            "threads_asked": self.settings.threads,
            "requests": prop("OPTIMAL_NUMBER_OF_INFER_REQUESTS"),
            "pinning": prop("ENABLE_CPU_PINNING"),
            "devices": [str(d) for d in compiled.get_property("EXECUTION_DEVICES")],
            "openvino": str(ov.__version__),
            "check": None if self._check is None else self._check.to_dict(),
            "check_note": self._check_note,
        }


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off")
    return bool(value)


def _ov_model_of(model: Model) -> Any:
    """The OpenVINO model an IR Model carries (``tfcpu.graph.openvino_ir.OpenVinoModel``), else None."""
    return getattr(model, "ov_model", None)


def _ir_precision(model: Model) -> str | None:
    """The precision an IR was saved for (``tfcpu quantize --backend openvino --bf16``), if any."""
    value = getattr(model, "metadata", {}).get("openvino_precision")
    return None if value is None else str(value)


class _Ring:
    """``size`` infer requests used in turn: submitting to a slot first collects its previous request."""

    def __init__(self, compiled: Any, size: int, ports: list[Any], outputs: Any, collect: bool) -> None:
        self.requests = [compiled.create_infer_request() for _ in range(size)]
        self.pending: list[tuple[int, float, int] | None] = [None] * size
        self.done: dict[int, tuple[float, float, int, tuple[np.ndarray, ...]]] = {}
        self._ports, self._outputs, self._collect = ports, outputs, collect
        self._next = 0

    def _finish(self, slot: int) -> None:
        meta = self.pending[slot]
        if meta is None:
            return
        request = self.requests[slot]
        request.wait()
        end = time.monotonic()
        index, start, items = meta
        values = tuple(v.copy() for v in self._outputs(request.results, self._ports)) if self._collect else ()
        self.done[index] = (start, end, items, values)
        self.pending[slot] = None

    def submit(self, index: int, inputs: Any, items: int) -> None:
        slot = self._next
        self._next = (slot + 1) % len(self.requests)
        self._finish(slot)
        self.requests[slot].start_async(inputs)
        self.pending[slot] = (index, time.monotonic(), items)

    def drain(self) -> None:
        size = len(self.requests)
        for k in range(size):  # oldest first
            self._finish((self._next + k) % size)
