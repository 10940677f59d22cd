"""The one comparator: reference outputs vs candidate outputs, and the one random-input generator.

    >>> feeds = random_inputs(model, 4, seed=0)                 # seeded, from the signature
    >>> cmp = compare_outputs(reference, candidate, atol=1e-4, rtol=1e-4)
    >>> cmp.passed, cmp.degenerate, cmp.output("logits:0").top1
    >>> print(cmp)                                              # a table, like every tfcpu result

Every stage that asks "does this graph still compute what that one computes?" calls
`compare_outputs()`: the graph optimiser's numerical check
(`tfcpu.graph.optimizer.compare_models()`), the quantiser's FP32-vs-INT8 agreement, the
demo and any future backend. The numbers mean the same everywhere:

* errors are measured against the reference's *scale* ``s = max|reference|`` of each output:
  ``abs = |ref - cand|`` element-wise, ``rel = abs / s`` (normwise; an element-wise ratio is
  meaningless next to zeros). Max, mean and median of both are reported over the finite
  elements.
* an output *passes* when ``max abs <= atol + rtol * s`` and NaN/Inf sit at the same places
  with the same values in both; non-numeric outputs pass only when equal.
* ``tightest_atol`` is the smallest atol that would pass at the given rtol, ``tightest_rtol``
  the smallest rtol at the given atol.
* ``cosine`` is the cosine similarity of the flattened finite values; ``top1`` the share of
  rows whose argmax agrees, for logit-like outputs (2-D floating point, more than one class).

**Degenerate checks are flagged, never silent.** A comparison proves nothing when the
reference output does not depend on the input (the same for every sample of the batch, or
one value everywhere), when any value is NaN/Inf, or when a row of logits is all equal (its
argmax is arbitrary). Each such output adds a reason to `Comparison.degenerate`
("this check proves nothing because ..."); callers show it, and may refuse with
`Comparison.raise_if_degenerate()`.

Switching another stage to it (e.g. the quantiser's ``_agreement``): run both models on
the same batches, concatenate each output along axis 0 and call ``compare_outputs(fp32,
int8)``; ``min(o.top1 for o in cmp.outputs if o.top1 is not None)`` is the top-1 agreement
and ``cmp.max_abs`` the max abs difference the QuantizationResult reports today. Use
`concat_outputs()` to stack per-batch dicts.

`random_inputs()` is the one seeded generator of inputs from a Model's signature (the
optimiser's check, the Runner's synthetic data, calibration, multi-instance workers).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfcpu._render import TextTable
from tfcpu.errors import ConfigError, did_you_mean
from tfcpu.graph._inputs import INTEGER_HIGH, random_inputs

__all__ = [
    "INTEGER_HIGH",
    "Comparison",
    "OutputComparison",
    "compare_outputs",
    "concat_outputs",
    "random_inputs",
]

#: A reference output whose spread across the batch is at most this share of its scale is
#: "near-constant": the graph (nearly) ignores its input, so agreement proves nothing.
NEAR_CONSTANT = 1e-6


# -- comparison ------------------------------------------------------------------------------
def _num(value: float | None) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class OutputComparison:
    """One output, reference vs candidate (see the module docstring for the definitions).

    Attributes:
        name: the output's name.
        shape: the reference's shape.
        dtype: the reference's dtype name.
        scale: ``max|reference|`` over finite values, the denominator of the relative errors.
        max_abs: largest element-wise absolute error.
        mean_abs: mean absolute error.
        median_abs: median absolute error.
        max_rel: ``max_abs / scale``.
        mean_rel: ``mean_abs / scale``.
        median_rel: ``median_abs / scale``.
        cosine: cosine similarity of the flattened values (None when a norm is zero).
        top1: share of rows whose argmax agrees (logit-like outputs only, else None).
        tightest_atol: the smallest atol that passes at the comparison's rtol.
        tightest_rtol: the smallest rtol that passes at the comparison's atol.
        passed: within tolerance (and NaN/Inf at the same places).
        degenerate: why this output's agreement proves nothing (empty when it proves something).
        note: a mismatch the numbers cannot show (shape, dtype, NaN placement).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float
    max_abs: float
    mean_abs: float
    median_abs: float
    max_rel: float
    mean_rel: float
    median_rel: float
    cosine: float | None
    top1: float | None
    tightest_atol: float
    tightest_rtol: float
    passed: bool
    degenerate: tuple[str, ...] = ()
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["shape"] = list(self.shape)
        data["degenerate"] = list(self.degenerate)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutputComparison:
        values = dict(data)
        values["shape"] = tuple(values["shape"])
        values["degenerate"] = tuple(values.get("degenerate", ()))
        for key in ("cosine", "top1"):
            values[key] = _num(values.get(key))
        return cls(**values)


def _stats(diff: np.ndarray) -> tuple[float, float, float]:
    if not diff.size:
        return 0.0, 0.0, 0.0
    return float(diff.max()), float(diff.mean()), float(np.median(diff))


def _ratio(value: float, scale: float) -> float:
    if scale > 0:
        return value / scale
    return 0.0 if value == 0 else math.inf


def _cosine(a: np.ndarray, b: np.ndarray) -> float | None:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if not (na > 0 and nb > 0 and math.isfinite(na * nb)):
        return None
    return float(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))


def _logit_like(a: np.ndarray) -> bool:
    return a.ndim == 2 and a.shape[1] > 1 and a.shape[0] > 0 and np.issubdtype(a.dtype, np.floating)


def _degenerate(name: str, ref: np.ndarray, cand: np.ndarray, scale: float, *, logits: bool) -> list[str]:
    """Reasons why agreement on this output proves nothing ("... because <reason>").

    A single value cannot be told constant from varying, so one-element outputs are only
    checked for NaN/Inf.
    """
    reasons = []
    for label, arr in (("reference", ref), ("candidate", cand)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        if bad:
            reasons.append(f"{name}: the {label} holds {bad} NaN/Inf values")
    finite = ref[np.isfinite(ref)] if ref.size else ref
    if finite.size < 2:
        return reasons
    tol = NEAR_CONSTANT * scale
    if float(finite.max() - finite.min()) <= tol:
        reasons.append(f"{name}: the reference is one value everywhere ({float(finite.flat[0]):.6g})")
    elif ref.ndim >= 1 and ref.shape[0] >= 2 and np.isfinite(ref).all():
        spread = float(np.max(np.abs(ref - ref[:1])))
        if spread <= tol:
            reasons.append(
                f"{name}: the reference is the same for all {ref.shape[0]} inputs of the batch "
                f"(spread {spread:.3g} <= {NEAR_CONSTANT:g} x scale {scale:.3g}): the graph ignores its input"
            )
    if logits and np.isfinite(ref).all():
        flat = int(np.count_nonzero(ref.max(axis=1) - ref.min(axis=1) <= tol))
        if flat:
            reasons.append(f"{name}: {flat} of {ref.shape[0]} rows of logits are all equal (their top-1 is arbitrary)")
    return reasons


def _compare_numeric(name: str, a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> OutputComparison:
    af, bf = a.astype(np.float64), b.astype(np.float64)
    fa, fb = np.isfinite(af), np.isfinite(bf)
    same_nonfinite = bool(np.array_equal(fa, fb)) and bool(np.array_equal(af[~fa], bf[~fb], equal_nan=True))
    both = fa & fb
    diff = np.abs(af[both] - bf[both])
    scale = float(np.abs(af[fa]).max()) if fa.any() else 0.0
    max_abs, mean_abs, median_abs = _stats(diff)
    ok = same_nonfinite and max_abs <= atol + rtol * scale
    top1 = None
    if _logit_like(a):
        top1 = float(np.mean(np.argmax(np.nan_to_num(af), axis=1) == np.argmax(np.nan_to_num(bf), axis=1)))
    return OutputComparison(
        name=name,
        shape=tuple(int(d) for d in a.shape),
        dtype=a.dtype.name,
        scale=scale,
        max_abs=max_abs,
        mean_abs=mean_abs,
        median_abs=median_abs,
        max_rel=_ratio(max_abs, scale),
        mean_rel=_ratio(mean_abs, scale),
        median_rel=_ratio(median_abs, scale),
        cosine=_cosine(af[both], bf[both]),
        top1=top1,
        tightest_atol=max(0.0, max_abs - rtol * scale),
        tightest_rtol=_ratio(max(0.0, max_abs - atol), scale),
        passed=ok,
        degenerate=tuple(_degenerate(name, af, bf, scale, logits=_logit_like(a))),
        note="" if same_nonfinite else "NaN/Inf at different places",
    )


def _compare_one(name: str, ref: Any, cand: Any, atol: float, rtol: float) -> OutputComparison:
    a, b = np.asarray(ref), np.asarray(cand)
    numeric = a.dtype.kind in "fiub" and b.dtype.kind in "fiub"
    if a.shape != b.shape or not numeric or not a.size:
        equal = a.shape == b.shape and bool(np.array_equal(a, b))
        err = 0.0 if equal else math.inf
        note = "" if a.shape == b.shape else f"shape {tuple(a.shape)} vs {tuple(b.shape)}"
        return OutputComparison(
            name, tuple(int(d) for d in a.shape), a.dtype.name, 0.0, err, err, err, err, err, err,
            None, None, err, err, equal, (), note,
        )  # fmt: skip
    result = _compare_numeric(name, a, b, atol, rtol)
    if a.dtype != b.dtype:
        result = _replace(result, note=f"dtype {a.dtype.name} vs {b.dtype.name}")
    return result


def _replace(item: OutputComparison, **changes: Any) -> OutputComparison:
    from dataclasses import replace

    return replace(item, **changes)


def compare_outputs(
    reference: Mapping[str, Any],
    candidate: Mapping[str, Any],
    *,
    atol: float = 1e-4,
    rtol: float = 1e-4,
    label: str = "reference vs candidate",
) -> Comparison:
    """Compare every output of ``reference`` with the same-named output of ``candidate``.

    Args:
        reference: output name -> array, from the model that is trusted (FP32, unoptimised).
        candidate: output name -> array, from the model under test; extra names are ignored.
        atol: absolute tolerance.
        rtol: tolerance relative to each output's scale ``max|reference|``.
        label: what is compared, for the table title (e.g. ``"fp32 vs int8"``).

    Returns:
        A `Comparison`: per-output statistics, ``passed`` and ``degenerate`` reasons.

    Raises:
        ConfigError: an output of ``reference`` is missing from ``candidate``, or a tolerance is negative.
    """
    from tfcpu._numbers import check_number

    for name, value in (("atol", atol), ("rtol", rtol)):
        check_number(value, name, where="compare_outputs", minimum=0, hint="tolerances must be finite and non-negative")
    missing = [k for k in reference if k not in candidate]
    if missing:
        raise ConfigError(
            f"the candidate has no output {missing[0]!r}",
            why=did_you_mean(missing[0], list(candidate)) or f"it has {sorted(candidate)}",
            hint="compare outputs of the same signature",
        )
    items = tuple(_compare_one(k, reference[k], candidate[k], atol, rtol) for k in reference)
    return Comparison(outputs=items, atol=float(atol), rtol=float(rtol), label=label)


def concat_outputs(batches: Iterable[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Stack per-batch output dicts along axis 0 (for comparing several batches at once)."""
    parts: dict[str, list[np.ndarray]] = {}
    for batch in batches:
        for key, value in batch.items():
            parts.setdefault(key, []).append(np.asarray(value))
    return {k: np.concatenate(v, axis=0) if v[0].ndim else np.stack(v) for k, v in parts.items()}


def _fmt(value: float | None, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


@dataclass(frozen=True)
class Comparison(TextTable):
    """Reference vs candidate over every output; frozen, JSON round-tripping, printable.

    Attributes:
        outputs: one `OutputComparison` per reference output, in order.
        atol: the absolute tolerance used.
        rtol: the relative tolerance used.
        label: what was compared (for the table title), e.g. ``"original vs optimised"``.
    """

    outputs: tuple[OutputComparison, ...]
    atol: float
    rtol: float
    label: str = field(default="reference vs candidate")

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    @property
    def degenerate(self) -> tuple[str, ...]:
        """Why this check proves nothing; empty when it proves something."""
        return tuple(f"this check proves nothing because {r}" for o in self.outputs for r in o.degenerate)

    @property
    def max_abs(self) -> float:
        return max((o.max_abs for o in self.outputs), default=0.0)

    @property
    def max_rel(self) -> float:
        return max((o.max_rel for o in self.outputs), default=0.0)

    @property
    def worst(self) -> str:
        """The output with the largest relative error (the last of equals), or ``""``."""
        worst, rel = "", -1.0
        for o in self.outputs:
            if o.max_rel >= rel:
                worst, rel = o.name, o.max_rel
        return worst

    @property
    def cosine(self) -> float | None:
        """The lowest cosine similarity over the outputs (None when no output has one)."""
        values = [o.cosine for o in self.outputs if o.cosine is not None]
        return min(values) if values else None

    @property
    def top1(self) -> float | None:
        """The lowest top-1 agreement over logit-like outputs (None when there is none)."""
        values = [o.top1 for o in self.outputs if o.top1 is not None]
        return min(values) if values else None

    def output(self, name: str) -> OutputComparison:
        for o in self.outputs:
            if o.name == name:
                return o
        names = [o.name for o in self.outputs]
        raise ConfigError(f"no output {name!r} in this comparison", why=did_you_mean(name, names), hint=f"{names}")

    def raise_if_degenerate(self, error: type[Exception] = ConfigError, *, where: str | None = None) -> None:
        """Refuse a check that proves nothing: raise ``error`` (a TfcpuError class) listing why."""
        if self.degenerate:
            raise error(  # type: ignore[call-arg]
                "the numerical check proves nothing",
                where=where,
                why="; ".join(self.degenerate),
                hint="check with real inputs, or a model with trained weights",
            )

    def summary(self) -> str:
        """One line: passed/FAILED, worst errors, tolerances and the degenerate count."""
        text = (
            f"{'passed' if self.passed else 'FAILED'} — max abs error {self.max_abs:.3g}, "
            f"max rel error {self.max_rel:.3g} (atol={self.atol:g}, rtol={self.rtol:g})"
        )
        if self.top1 is not None:
            text += f", top-1 agreement {self.top1:.2%}"
        if self.degenerate:
            text += f"; DEGENERATE ({len(self.degenerate)})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "atol": self.atol,
            "rtol": self.rtol,
            "passed": self.passed,
            "degenerate": list(self.degenerate),
            "outputs": [o.to_dict() for o in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        return cls(
            outputs=tuple(OutputComparison.from_dict(o) for o in data["outputs"]),
            atol=float(data["atol"]),
            rtol=float(data["rtol"]),
            label=str(data.get("label", "reference vs candidate")),
        )

    _COLUMNS = ("output", "shape", "max abs", "mean abs", "median abs", "max rel", "cosine", "top-1",
                "tightest atol", "passed", "note")  # fmt: skip

    def _rows(self) -> list[list[str]]:
        return [
            [o.name, "x".join(map(str, o.shape)) or "scalar", _fmt(o.max_abs), _fmt(o.mean_abs), _fmt(o.median_abs),
             _fmt(o.max_rel), _fmt(o.cosine, ".6f"), "-" if o.top1 is None else f"{o.top1:.2%}",
             _fmt(o.tightest_atol), "yes" if o.passed else "NO",
             "; ".join(filter(None, [o.note, "degenerate" if o.degenerate else ""]))]
            for o in self.outputs
        ]  # fmt: skip

    def _lines(self) -> list[str]:
        return [self.summary(), *self.degenerate]

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        from tfcpu._render import drop_empty_last_column, rich_table

        columns, rows = drop_empty_last_column(self._COLUMNS, self._rows())
        return Group(rich_table(f"Comparison: {self.label}", columns, rows), *(Text(t) for t in self._lines()))

    def _repr_html_(self) -> str:
        import html

        from tfcpu._render import drop_empty_last_column, html_table

        columns, rows = drop_empty_last_column(self._COLUMNS, self._rows())
        return html_table(f"Comparison: {self.label}", columns, rows) + "".join(
            f"<p>{html.escape(t)}</p>" for t in self._lines()
        )
