"""The optimiser's checks: graph invariants after each pass, and original vs optimised numerically.

The numerical check is `tfcpu.graph.compare.compare_outputs()` on seeded random inputs
(`tfcpu.graph.compare.random_inputs()`: valid ids, masks and positions read from the graph), or on
the user's own sample inputs (``check_inputs=``, `sample_inputs`), both graphs run with Grappler off so each
computes exactly what it says. `CheckResult` keeps the optimiser's historical fields
(max abs/rel error, worst output) and carries the full `Comparison`.
`NumericalCheck` runs the original once and compares any number of candidates with it;
`first_divergent_pass()` re-runs a plan pass by pass to name the first pass whose output
no longer agrees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tfcpu.errors import PassError
from tfcpu.graph.compare import Comparison, compare_outputs, random_inputs
from tfcpu.graph.model import Model

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.graph.passes import PassContext

__all__ = [
    "CheckResult",
    "NumericalCheck",
    "check_invariants",
    "compare_models",
    "first_divergent_pass",
    "probe_tensors",
    "with_graph",
]

_SATURATING = ("Softmax", "Sigmoid", "LogSoftmax", "Tanh")


@dataclass(frozen=True)
class CheckResult:
    """Original vs optimised on the same seeded random inputs.

    Attributes:
        passed: every compared tensor within ``atol + rtol * max|original|``.
        max_abs_error: the largest absolute error over the compared tensors.
        max_rel_error: the largest normwise relative error (``abs / max|original|``).
        worst_output: the tensor with the largest relative error.
        rtol: the relative tolerance.
        atol: the absolute tolerance.
        seed: the seed of the random inputs.
        per_output: tensor -> (abs, rel) error.
        comparison: the comparator's full report (statistics, cosine, top-1, degenerate reasons).
        diverged_at: on a failed check, the first pass whose output diverged (None if not searched).
        degenerate: why this check proves nothing ("this check proves nothing because ...");
            an output counts as proven when it, or the logits compared for it, vary with the input.
    """

    passed: bool
    max_abs_error: float
    max_rel_error: float
    worst_output: str
    rtol: float
    atol: float
    seed: int
    per_output: dict[str, tuple[float, float]] = field(default_factory=dict, compare=False)
    comparison: Comparison | None = field(default=None, compare=False)
    diverged_at: str | None = None
    degenerate: tuple[str, ...] = ()

    @classmethod
    def from_comparison(
        cls, comparison: Comparison, *, seed: int, stands_for: Mapping[str, str] | None = None
    ) -> CheckResult:
        """Build from the comparator's report.

        Args:
            comparison: the comparator's report.
            seed: the seed of the inputs.
            stands_for: probe tensor -> the output it was compared for (logits -> softmax output).
        """
        return cls(
            passed=comparison.passed,
            max_abs_error=comparison.max_abs,
            max_rel_error=comparison.max_rel,
            worst_output=comparison.worst,
            rtol=comparison.rtol,
            atol=comparison.atol,
            seed=seed,
            per_output={o.name: (o.max_abs, o.max_rel) for o in comparison.outputs},
            comparison=comparison,
            degenerate=_unproven(comparison, stands_for or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "max_abs_error": self.max_abs_error,
            "max_rel_error": self.max_rel_error,
            "worst_output": self.worst_output,
            "rtol": self.rtol,
            "atol": self.atol,
            "seed": self.seed,
            "per_output": {k: list(v) for k, v in self.per_output.items()},
            "degenerate": list(self.degenerate),
            "diverged_at": self.diverged_at,
            "comparison": None if self.comparison is None else self.comparison.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        comparison = data.get("comparison")
        return cls(
            passed=data["passed"],
            max_abs_error=data["max_abs_error"],
            max_rel_error=data["max_rel_error"],
            worst_output=data["worst_output"],
            rtol=data["rtol"],
            atol=data["atol"],
            seed=data["seed"],
            per_output={k: (v[0], v[1]) for k, v in data.get("per_output", {}).items()},
            comparison=None if comparison is None else Comparison.from_dict(comparison),
            diverged_at=data.get("diverged_at"),
            degenerate=tuple(data.get("degenerate", ())),
        )

    def line(self) -> str:
        """One line for reports."""
        text = (
            f"{'passed' if self.passed else 'FAILED'} — max abs error {self.max_abs_error:.3g}, "
            f"max rel error {self.max_rel_error:.3g} (rtol={self.rtol}, atol={self.atol}, seed={self.seed})"
        )
        if self.diverged_at:
            text += f"; first diverging pass: {self.diverged_at}"
        return text


def _unproven(comparison: Comparison, stands_for: Mapping[str, str]) -> tuple[str, ...]:
    """Degenerate reasons of the outputs nothing proves: an output and its probes all degenerate."""
    groups: dict[str, list[Any]] = {}
    for item in comparison.outputs:
        groups.setdefault(stands_for.get(item.name, item.name), []).append(item)
    return tuple(
        f"this check proves nothing because {reason}"
        for members in groups.values()
        if all(m.degenerate for m in members)
        for m in members
        for reason in m.degenerate
    )


def check_invariants(graph_def: Any, model: Model, name: str, before: Sequence[str]) -> None:
    """A pass must keep every named input/output and leave no dangling input."""
    from tfcpu.graph._graphdef import parse_input

    names = {n.name for n in graph_def.node}
    history = ", ".join(before) or "none"
    for spec in (*model.inputs, *model.outputs):
        if spec.node not in names:
            raise PassError(
                f"pass {name!r} removed the named tensor {spec.name}",
                why=f"passes before it: {history}",
                hint="report this as a tfcpu bug",
            )
    for node in graph_def.node:
        for text in node.input:
            if parse_input(text).node not in names:
                raise PassError(
                    f"pass {name!r} left a dangling input {text!r}",
                    where=node.name,
                    why=f"passes before it: {history}",
                    hint="report this as a tfcpu bug",
                )


def probe_tensors(original: Model, optimised: Model) -> list[str]:
    """Outputs plus the inputs of saturating output ops (logits) present in both graphs.

    A softmax over the logits of a randomly initialised deep network is often one-hot, so
    comparing only the probabilities would hide errors; the logits show them.
    """
    return list(_probes(original, optimised))


def _probes(original: Model, optimised: Model) -> dict[str, str]:
    """Probe tensor -> the output it is compared for (an output stands for itself)."""
    from tfcpu.graph._graphdef import data_inputs

    fetches = {name: name for name in original.output_names}
    by_old = {n.name: n for n in original.graph_def.node}
    names_new = {n.name for n in optimised.graph_def.node}
    for spec in original.outputs:
        node = by_old.get(spec.node)
        while node is not None and node.op in ("Identity", "CheckNumerics"):
            node = by_old.get(data_inputs(node)[0].split(":")[0]) if data_inputs(node) else None
        if node is not None and node.op in _SATURATING and data_inputs(node):
            logits = data_inputs(node)[0]
            logits = logits if ":" in logits else f"{logits}:0"
            if logits.split(":")[0] in names_new and logits not in fetches:
                fetches[logits] = spec.name
    return fetches


class NumericalCheck:
    """The original model run once on seeded random inputs; candidates compared against it.

    Args:
        original: the reference model.
        rtol: relative tolerance.
        atol: absolute tolerance.
        seed: seed of the random inputs.
        batch: the batch size of the random inputs.
        shapes: explicit input shapes (unknown dimensions other than the batch are 1 otherwise).
        check_inputs: the user's own sample inputs instead of random ones (see `sample_inputs`).
    """

    def __init__(
        self,
        original: Model,
        *,
        rtol: float = 1e-4,
        atol: float = 1e-5,
        seed: int = 0,
        batch: int = 2,
        shapes: Mapping[str, Sequence[int]] | None = None,
        check_inputs: Any = None,
    ) -> None:
        self.original = original
        self.rtol, self.atol, self.seed = rtol, atol, seed
        self.given = check_inputs is not None
        if check_inputs is not None:
            self.feeds = sample_inputs(original, check_inputs)
        else:
            self.feeds = random_inputs(original, batch, seed=seed, shapes=shapes, unknown_dims=1)
        self._reference: dict[str, Any] = {}

    def _outputs(self, graph_def: Any, fetches: list[str]) -> dict[str, Any]:
        from tfcpu.errors import ModelError
        from tfcpu.graph._execute import run_graph

        try:
            values = run_graph(graph_def, self.feeds, fetches, grappler=False)
        except ModelError as exc:
            # blame the generated inputs only when some of them are guesses; otherwise the graph itself fails
            if self.given or graph_def is not self.original.graph_def or not _guessed_inputs(self.original):
                raise
            raise invalid_inputs(self.original, exc) from exc
        return dict(zip(fetches, values, strict=True))

    def against(self, candidate: Model, *, label: str = "original vs optimised") -> CheckResult:
        """Compare ``candidate`` with the original; a changed shape or dtype is a PassError."""
        import numpy as np

        probes = _probes(self.original, candidate)
        fetches = list(probes)
        missing = [f for f in fetches if f not in self._reference]
        if missing:
            self._reference.update(self._outputs(self.original.graph_def, missing))
        want = {f: self._reference[f] for f in fetches}
        got = self._outputs(candidate.graph_def, fetches)
        for name in fetches:
            a, b = np.asarray(want[name]), np.asarray(got[name])
            if a.shape != b.shape or a.dtype != b.dtype:
                raise PassError(
                    "the optimised graph changed an output's shape or dtype",
                    where=name,
                    why=f"{a.dtype}{a.shape} -> {b.dtype}{b.shape}",
                )
        comparison = compare_outputs(want, got, atol=self.atol, rtol=self.rtol, label=label)
        return CheckResult.from_comparison(comparison, seed=self.seed, stands_for=probes)


#: How a user gives the check valid inputs, for messages.
CHECK_INPUTS_HINT = (
    "give sample inputs: check_inputs={'name': array, ...} (or a .npz file keyed by input name) on "
    "GraphOptimizer.run / Quantizer.run, or --check-inputs FILE.npz on `tfcpu optimize` / `tfcpu quantize`"
)


def sample_inputs(model: Model, data: Any) -> dict[str, Any]:
    """The user's sample inputs as one checked feed: a dict of arrays by input name, or a path to a
    ``.npz`` file keyed by input name (``.npy`` for one input), read and checked by the calibration
    reader (`tfcpu.quantize.calibration.materialise`: names, dtypes, shapes, no NaN); all samples
    are one batch.
    """
    import os

    import numpy as np

    from tfcpu.errors import ConfigError
    from tfcpu.quantize.calibration import is_file_source, load_files, materialise

    if is_file_source(data):
        loaded = load_files(data)
        if isinstance(loaded, list):
            raise ConfigError(
                "check inputs are one file, not a directory",
                where=os.fspath(data),
                hint="save one .npz keyed by input name: numpy.savez(path, name=array, ...)",
            )
        data = loaded
    if not isinstance(data, Mapping | np.ndarray):
        raise ConfigError(
            f"check inputs must be a dict of arrays by input name or a .npz path, got {type(data).__name__}",
            hint=CHECK_INPUTS_HINT,
        )
    if isinstance(data, Mapping):
        data = {str(k): np.asarray(v) for k, v in data.items()}
        size = max((len(v) for v in data.values() if v.ndim), default=1)
    else:
        size = len(data) if data.ndim else 1
    (batch,) = materialise(model, data, batches=1, batch_size=max(1, size))
    return batch


def _guessed_inputs(model: Model) -> bool:
    """Whether any generated check input is a guess (an integer input whose valid range the graph does not tell)."""
    from tfcpu.graph._input_ranges import input_ranges

    return any(not r.derived for r in input_ranges(model).values())


def invalid_inputs(model: Model, exc: Exception) -> Exception:
    """The original graph failed on generated inputs: say which inputs were guessed and how to give real ones."""
    from tfcpu.errors import ConfigError
    from tfcpu.graph._input_ranges import input_ranges

    ranges = input_ranges(model)
    guessed = [r.line() for r in ranges.values() if not r.derived]
    derived = [r.line() for r in ranges.values() if r.derived]
    why = f"{getattr(exc, 'what', str(exc))} ({getattr(exc, 'why', '')})".replace(" ()", "")
    if guessed:
        why += "; tfcpu could not read a valid range for " + "; ".join(guessed)
    if derived:
        why += "; read from the graph: " + "; ".join(derived)
    return ConfigError(
        "the numerical check cannot build valid inputs for this model: the original graph fails on them",
        where=getattr(exc, "where", None) or model.source,
        why=why,
        hint=CHECK_INPUTS_HINT,
    )


def compare_models(
    original: Model,
    optimised: Model,
    *,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    seed: int = 0,
    batch: int = 2,
    shapes: Mapping[str, Sequence[int]] | None = None,
    check_inputs: Any = None,
) -> CheckResult:
    """Run both models on the same seeded random inputs and compare every output.

    Errors are normwise per tensor: ``abs = max|a - b|`` and ``rel = abs / max|a|`` (an
    element-wise ratio is meaningless next to zeros). A tensor passes when
    ``abs <= atol + rtol * max|a|``. The logits before a Softmax/Sigmoid output are compared too.
    Both graphs run with Grappler off, so each computes exactly what it says.

    Args:
        original: the reference model.
        optimised: the model under test (same signature).
        rtol: relative tolerance.
        atol: absolute tolerance.
        seed: seed of the random inputs.
        batch: batch size of the random inputs.
        shapes: explicit input shapes, by input name.
        check_inputs: the user's sample inputs instead of random ones (dict by input name or ``.npz`` path).
    """
    check = NumericalCheck(
        original, rtol=rtol, atol=atol, seed=seed, batch=batch, shapes=shapes, check_inputs=check_inputs
    )
    return check.against(optimised)


def with_graph(model: Model, graph_def: Any) -> Model:
    """``model`` with another GraphDef (same signature and source)."""
    return Model(graph_def=graph_def, inputs=model.inputs, outputs=model.outputs, source=model.source)


def first_divergent_pass(
    check: NumericalCheck, steps: Sequence[tuple[str, dict[str, Any]]], ctx: PassContext
) -> tuple[int, CheckResult] | None:
    """Re-run ``steps`` from the original graph, checking after each; the first failing one.

    Returns ``(index, check result)`` of the first pass whose output no longer agrees with the
    original, or None when every intermediate graph agrees.
    """
    from tfcpu.graph.passes import run_pass

    original = check.original
    graph_def = original.graph_def
    for i, (name, params) in enumerate(steps):
        graph_def, report = run_pass(name, graph_def, ctx, **params)
        if not report.modified:
            continue
        result = check.against(with_graph(original, graph_def), label=f"original vs after {name}")
        if not result.passed:
            return i, result
    return None
