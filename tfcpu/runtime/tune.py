"""Find the best instance layout by measuring it (the paper's "map your performance").

For each cores-per-instance value (1, 2, 4, ... up to all usable cores), each batch size
and optionally oneDNN on/off, run the model as that many pinned instances at once and
record the common-window throughput and the p99 batch latency. The best row is the highest
throughput, or the highest throughput whose p99 stays under a latency budget.

Across backends and precisions (``backends=`` names from the backend registry, TensorFlow and
OpenVINO; ``precisions=("fp32", "bf16", "int8")``) every layout is measured for every model
`tfcpu.runtime._tune_variants` can make; each row's backend and precision are read from what ran
(the children's ``describe()``), and a quantised row may be named best only when it passes the
accuracy rule (the quantiser's agreement with TensorFlow FP32; `AccuracyRule`, said in
``TuneResult.accuracy_rule``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfcpu._render import TextTable, html_table, rich_table
from tfcpu.errors import ConfigError, TfcpuError
from tfcpu.graph.model import Model
from tfcpu.runtime._tune_variants import PRECISIONS, AccuracyRule, Variant, check_names, prepare_variants
from tfcpu.runtime.backends._base import BenchmarkOptions
from tfcpu.runtime.multi import InstanceSettings, run_instances

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.topology import Topology

__all__ = ["AccuracyRule", "TuneResult", "TuneRow", "core_counts", "tune"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneRow:
    """One measured layout.

    Attributes:
        cores_per_instance: cores of each pinned instance.
        instances: how many instances ran at once.
        batch_size: items per batch.
        onednn: oneDNN in the children (None: the policy's decision).
        throughput: common-window items/s of all instances.
        p99_ms: the worst instance's p99 batch latency.
        partial: an instance failed.
        backend: the backend that ran (read from the children's ``describe()``).
        precision: what ran (``fp32``, ``bf16``, ``int8``, read from the graph / the compiled model).
        top1_agreement: the quantiser's top-1 agreement with TensorFlow FP32 (None: not measured).
        cosine: the output cosine with TensorFlow FP32 (the quantiser's, or OpenVINO's first-use check).
        accurate: passes the accuracy rule; None: nothing to judge (the model as given).
    """

    cores_per_instance: int
    instances: int
    batch_size: int
    onednn: bool | None
    throughput: float
    p99_ms: float
    partial: bool
    backend: str = "tensorflow"
    precision: str = "fp32"
    top1_agreement: float | None = None
    cosine: float | None = None
    accurate: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TuneRow:
        return cls(
            cores_per_instance=int(data["cores_per_instance"]),
            instances=int(data["instances"]),
            batch_size=int(data["batch_size"]),
            onednn=data.get("onednn"),
            throughput=float(data["throughput"]),
            p99_ms=float(data["p99_ms"]),
            partial=bool(data["partial"]),
            backend=str(data.get("backend", "tensorflow")),
            precision=str(data.get("precision", "fp32")),
            top1_agreement=_optional_float(data.get("top1_agreement")),
            cosine=_optional_float(data.get("cosine")),
            accurate=data.get("accurate"),
        )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class TuneResult(TextTable):
    rows: tuple[TuneRow, ...]
    best: TuneRow | None
    latency_budget_ms: float | None
    model: str
    accuracy_rule: str = ""
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "latency_budget_ms": self.latency_budget_ms,
            "accuracy_rule": self.accuracy_rule,
            "notes": list(self.notes),
            "best": self.best.to_dict() if self.best else None,
            "rows": [r.to_dict() for r in self.rows],
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TuneResult:
        best = data.get("best")
        return cls(
            rows=tuple(TuneRow.from_dict(r) for r in data["rows"]),
            best=TuneRow.from_dict(best) if best else None,
            latency_budget_ms=data.get("latency_budget_ms"),
            model=str(data["model"]),
            accuracy_rule=str(data.get("accuracy_rule", "")),
            notes=tuple(str(n) for n in data.get("notes", ())),
        )

    @classmethod
    def from_json(cls, text: str) -> TuneResult:
        return cls.from_dict(json.loads(text))

    def table_rows(self) -> list[tuple[str, ...]]:
        out: list[tuple[str, ...]] = []
        for r in self.rows:
            mark = "best" if r == self.best else ""
            onednn = "default" if r.onednn is None else ("on" if r.onednn else "off")
            out.append(
                (
                    r.backend,
                    r.precision,
                    _agreement_text(r),
                    str(r.cores_per_instance),
                    str(r.instances),
                    str(r.batch_size),
                    onednn,
                    f"{r.throughput:.2f}",
                    f"{r.p99_ms:.1f}",
                    mark,
                )
            )
        return out

    _COLUMNS = (
        "backend", "precision", "agreement", "cores/instance", "instances", "batch", "oneDNN", "items/s", "p99 ms", "",
    )  # fmt: skip

    def __rich__(self) -> Any:
        return rich_table(self._title, self._COLUMNS, self.table_rows())

    def _repr_html_(self) -> str:
        return html_table(self._title, self._COLUMNS, self.table_rows())

    @property
    def _title(self) -> str:
        rule = f" — best must pass: {self.accuracy_rule}" if self.accuracy_rule else ""
        return f"Layout sweep: {self.model}{rule}"

    def plot(self, path: str | Path) -> Path:
        """Save throughput vs cores per instance (the paper's Figure 9) as a PNG."""
        from tfcpu._plot import bar_or_line_png

        series: dict[str, list[tuple[float, float]]] = {}
        several = len({(r.backend, r.precision) for r in self.rows}) > 1
        for r in self.rows:
            onednn = "" if r.onednn is None else (", oneDNN on" if r.onednn else ", oneDNN off")
            what = f"{r.backend} {r.precision}, " if several else ""
            series.setdefault(f"{what}batch {r.batch_size}{onednn}", []).append((r.cores_per_instance, r.throughput))
        return bar_or_line_png(
            path,
            series,
            title=f"Throughput vs cores per instance ({self.model})",
            xlabel="cores per instance",
            ylabel="items/s (all instances)",
        )


def _agreement_text(row: TuneRow) -> str:
    parts = []
    if row.top1_agreement is not None:
        parts.append(f"top-1 {row.top1_agreement:.1%}")
    if row.cosine is not None:
        parts.append(f"cos {row.cosine:.4f}")
    text = ", ".join(parts) or ("as given" if row.accurate is None else "-")
    return f"{text} (fails)" if row.accurate is False else text


def core_counts(total: int) -> list[int]:
    """1, 2, 4, ... up to ``total``, plus ``total`` itself."""
    out = []
    k = 1
    while k < total:
        out.append(k)
        k *= 2
    out.append(total)
    return out


def tune(
    model: Model,
    *,
    topology: Topology | None = None,
    cores_per_instance: Sequence[int] | None = None,
    batch_sizes: Sequence[int] | None = None,
    onednn: Sequence[bool | None] = (None,),
    steps: int | None = None,
    duration: float | None = 10.0,
    warmup: int = 3,
    latency_budget_ms: float | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    options: BenchmarkOptions | None = None,
    settings: InstanceSettings | None = None,
    backends: Sequence[str] | None = None,
    precisions: Sequence[str] = ("fp32",),
    calibration: Any = "synthetic",
    calibration_batches: int = 10,
    accuracy: AccuracyRule | None = None,
) -> TuneResult:
    """Measure every layout (x backend x precision) and pick the best (see module docstring).

    Args:
        model: the model to run.
        topology: the machine (default: detected).
        cores_per_instance: the values to try (default 1, 2, 4, ... all usable cores).
        batch_sizes: the batch sizes to try (default: ``options.batch_size``, or 32).
        onednn: oneDNN settings to try on the TensorFlow backend (None = the policy's decision).
        steps: timed batches per layout (instead of ``duration``), when ``options`` is not given.
        duration: timed seconds per layout, when ``options`` is not given.
        warmup: untimed batches, when ``options`` is not given.
        latency_budget_ms: best = the fastest layout whose p99 stays under this.
        progress: callback ``(done, total, label)``.
        options: how to time each layout (the CLI's BenchmarkOptions); overrides steps/duration/warmup.
        settings: how the children start (backend, environment); ``onednn`` is set per row, the backend
            per variant when ``backends`` is given (its options go to the backend they were given for).
        backends: the backends to try (default: ``settings.backend``).
        precisions: ``"fp32"`` (the model as given), ``"bf16"`` (where the CPU has AVX512_BF16/AMX_BF16),
            ``"int8"`` (`tfcpu.Quantizer` from ``calibration``: INC on TensorFlow, NNCF on OpenVINO).
        calibration: INT8 calibration data (anything ``Quantizer.calibrate`` takes); ``"synthetic"`` by
            default, with the quantiser's warning, and the cosine rule.
        calibration_batches: at most this many calibration batches.
        accuracy: the rule a quantised row must pass to be named best (default ``AccuracyRule()``:
            top-1 >= 0.99 on real data, cosine >= 0.99 on synthetic data).
    """
    from tfcpu._numbers import MAX_SECONDS, check_number
    from tfcpu.topology import Topology

    if latency_budget_ms is not None:
        check_number(latency_budget_ms, "latency_budget_ms", where="tune", above=0, maximum=MAX_SECONDS * 1000)
    base = settings or InstanceSettings()
    names = check_names(list(backends or (base.backend,)), _backend_names(), "backend")
    asked = check_names(list(precisions), PRECISIONS, "precision")
    notes: list[str] = []
    names = _runnable_backends(model, names, notes)
    topo = topology or Topology.detect()
    counts = list(cores_per_instance or core_counts(topo.usable_physical_cores))
    if not counts or any(k < 1 for k in counts):
        raise ConfigError("cores_per_instance values must be >= 1")
    if options is None:
        options = BenchmarkOptions(warmup=warmup, steps=steps, duration=None if steps is not None else duration)
    sizes = list(batch_sizes or (options.batch_size if options is not None else 32,))
    synthetic = isinstance(calibration, str) and calibration == "synthetic"
    rule = accuracy or AccuracyRule(synthetic=synthetic)
    variants = prepare_variants(
        model,
        names,
        asked,
        calibration=calibration,
        calibration_batches=calibration_batches,
        topology=topo,
        notes=notes,
    )
    several = len(names) > 1 or asked != ("fp32",)
    combos = [
        (v, k, b, o)
        for v in variants
        for k in counts
        for b in sizes
        for o in (onednn if v.backend == "tensorflow" else (None,))
    ]
    rows = []
    for n, (variant, k, bs, on) in enumerate(combos):
        label = f"{variant.backend} {variant.precision}, " if several else ""
        label += f"{k} cores/instance, batch {bs}"
        if progress is not None:
            progress(n, len(combos), label)
        row, failure = _measure(
            variant, topo, k, replace(options, batch_size=bs), _settings(base, variant, on), on, rule
        )
        if failure:
            notes.append(f"{label}: {failure}")
        rows.append(row)
        log.info("%s: %.2f items/s", label, row.throughput)
    if progress is not None:
        progress(len(combos), len(combos), "done")
    eligible = [r for r in rows if not r.partial and r.throughput > 0 and r.accurate is not False]
    if latency_budget_ms is not None:
        eligible = [r for r in eligible if r.p99_ms <= latency_budget_ms]
    best = max(eligible, key=lambda r: r.throughput) if eligible else None
    return TuneResult(
        tuple(rows),
        best,
        latency_budget_ms,
        model.source,
        accuracy_rule=rule.text() if several else "",
        notes=tuple(notes),
    )


def _runnable_backends(model: Model, names: tuple[str, ...], notes: list[str]) -> tuple[str, ...]:
    """The backends to try, found before anything is measured: a missing package is an error naming
    its extra; a backend that cannot run the model (OpenVINO failing to convert it) is dropped with its
    whole reason in ``notes``, and the default backend takes over when none is left."""
    from tfcpu.runtime.backends._base import DEFAULT_BACKEND, backend_entry

    refused: dict[str, Exception] = {}
    for name in names:
        entry = backend_entry(name, where="tune(backends=...)")
        entry.require(name, purpose=f"tune --backend {name} runs it")
        reason = entry.refuses(model)
        if reason is not None:
            refused[name] = reason
    kept = tuple(n for n in names if n not in refused) or (DEFAULT_BACKEND,)
    for name, reason in refused.items():
        detail = f"{reason.what} [{reason.where}]: {reason.why}" if isinstance(reason, TfcpuError) else str(reason)
        notes.append(f"{name} skipped, tuned on {', '.join(kept)}: {detail}")
        log.warning("tune: %s cannot run the model (%s); falling back to %s", name, detail, ", ".join(kept))
    return kept


def _backend_names() -> tuple[str, ...]:
    from tfcpu.runtime.backends._base import BACKENDS

    return tuple(BACKENDS)


def _settings(base: InstanceSettings, variant: Variant, onednn: bool | None) -> InstanceSettings:
    """The children's settings for one row: the variant's backend (with the options given for it)."""
    options = base.backend_options if base.backend == variant.backend else ()
    return replace(
        base,
        backend=variant.backend,
        backend_options=options,
        onednn=base.onednn if onednn is None else onednn,
    )


def _measure(
    variant: Variant,
    topo: Topology,
    cores: int,
    options: BenchmarkOptions,
    settings: InstanceSettings,
    onednn: bool | None,
    rule: AccuracyRule,
) -> tuple[TuneRow, str]:
    """The row, and the first failed instance's cause ("" when none failed)."""
    from tfcpu.plan import InstancePlan

    plan = InstancePlan.for_topology(topo, cores_per_instance=cores)
    res = run_instances(variant.model, plan, options, settings=settings)
    ran = next((i.benchmark.backend for i in res.instances if i.benchmark), {})
    p99 = max((i.benchmark.latency_ms.p99 for i in res.instances if i.benchmark), default=float("nan"))
    top1, cosine = variant.top1, variant.cosine
    check = ran.get("check")  # OpenVINO's first-use check against TensorFlow FP32, when it ran
    if top1 is None and cosine is None and isinstance(check, dict):
        top1, cosine = check.get("top1"), check.get("cosine")
    accurate = (
        None if variant.as_given and variant.top1 is None and not isinstance(check, dict) else rule.passes(top1, cosine)
    )
    failed = next((f"instance {i.index} {i.status}: {i.error}" for i in res.instances if not i.ok), "")
    row = TuneRow(
        cores,
        len(plan.instances),
        options.batch_size,
        onednn,
        res.throughput,
        p99,
        res.partial,
        backend=str(ran.get("backend", settings.backend)),
        precision=str(ran.get("precision", "unknown")),
        top1_agreement=_optional_float(top1),
        cosine=_optional_float(cosine),
        accurate=accurate,
    )
    return row, failed
