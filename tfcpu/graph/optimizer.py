"""``GraphOptimizer``: an immutable, fluent plan of graph passes, and its ``OptimizationResult``.

    >>> opt = GraphOptimizer.default()           # the white paper's sequence, made to work
    >>> opt = GraphOptimizer().remove_nodes(ops=("Identity",)).fold_constants()
    >>> opt = GraphOptimizer.from_transforms(
    ...     "strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) "
    ...     "fold_constants(ignore_errors=true) fold_old_batch_norms fold_batch_norms")
    >>> print(opt.explain())
    >>> result = opt.run(model)                  # checks optimised vs original numerically

Every method returns a new optimizer; nothing runs before :meth:`GraphOptimizer.run`, and
the input Model is never modified.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

from tfcpu._render import TextTable
from tfcpu.errors import ConfigError, PassError, did_you_mean
from tfcpu.graph.model import Model

logger = logging.getLogger(__name__)

__all__ = ["CheckResult", "GraphOptimizer", "OptimizationResult", "PassStep"]

# graph_transforms arguments that tfcpu accepts but does not need (the Model carries the
# signature), mapped per pass.
_IGNORED_TRANSFORM_ARGS = {"strip_unused_nodes": {"type", "shape", "name"}}


@dataclass(frozen=True)
class PassStep:
    """One planned pass: its registered name and parameters."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)

    def describe(self) -> str:
        if not self.params:
            return self.name
        args = ", ".join(f"{k}={v!r}" for k, v in self.params)
        return f"{self.name}({args})"


def _registry() -> dict[str, Any]:
    from tfcpu.graph.passes import PASSES

    return PASSES


@dataclass(frozen=True)
class GraphOptimizer:
    """A frozen sequence of passes. Build with the pass methods; run with :meth:`run`."""

    steps: tuple[PassStep, ...] = ()

    # -- building -------------------------------------------------------------------------
    def add(self, name: str, **params: Any) -> GraphOptimizer:
        """Append the registered pass ``name`` (validated now, run later)."""
        from tfcpu.graph.passes import get_pass

        info = get_pass(name)
        for key in params:
            if key not in info.defaults:
                raise ConfigError(
                    f"pass {name!r} has no parameter {key!r}",
                    why=did_you_mean(key, info.defaults),
                    hint="parameters: " + (", ".join(info.defaults) or "none"),
                )
        clean = {**info.defaults, **params}
        if "ops" in clean:
            ops = clean["ops"]
            if isinstance(ops, str):
                ops = (ops,)
            if not ops or not all(isinstance(o, str) and o for o in ops):
                raise ConfigError("remove_nodes(ops=...) needs op type names", where=repr(ops))
            clean["ops"] = tuple(ops)
        if "max_bytes" in clean and (not isinstance(clean["max_bytes"], int) or clean["max_bytes"] <= 0):
            raise ConfigError("max_bytes must be a positive integer", where=repr(clean["max_bytes"]))
        if "ignore_errors" in clean and not isinstance(clean["ignore_errors"], bool):
            raise ConfigError("ignore_errors must be true or false", where=repr(clean["ignore_errors"]))
        return replace(self, steps=(*self.steps, PassStep(name, tuple(sorted(clean.items())))))

    def strip_unused_nodes(self) -> GraphOptimizer:
        return self.add("strip_unused_nodes")

    def remove_nodes(self, ops: tuple[str, ...] = ("Identity", "CheckNumerics")) -> GraphOptimizer:
        return self.add("remove_nodes", ops=ops)

    def fold_constants(self, ignore_errors: bool = True, max_bytes: int = 64 * 1024 * 1024) -> GraphOptimizer:
        return self.add("fold_constants", ignore_errors=ignore_errors, max_bytes=max_bytes)

    def fold_old_batch_norms(self) -> GraphOptimizer:
        return self.add("fold_old_batch_norms")

    def fold_batch_norms(self) -> GraphOptimizer:
        return self.add("fold_batch_norms")

    def merge_duplicate_constants(self) -> GraphOptimizer:
        return self.add("merge_duplicate_constants")

    def fold_pad_into_conv(self) -> GraphOptimizer:
        return self.add("fold_pad_into_conv")

    def remove_const_control_edges(self) -> GraphOptimizer:
        return self.add("remove_const_control_edges")

    def strip_unknown_attrs(self, only_newer_producer: bool = False) -> GraphOptimizer:
        return self.add("strip_unknown_attrs", only_newer_producer=only_newer_producer)

    def strip_default_attrs(self) -> GraphOptimizer:
        return self.add("strip_default_attrs")

    def fold_shape_arithmetic(self) -> GraphOptimizer:
        return self.add("fold_shape_arithmetic")

    def projections_to_matmul(self) -> GraphOptimizer:
        return self.add("projections_to_matmul")

    def fuse_matmul_gelu(self) -> GraphOptimizer:
        return self.add("fuse_matmul_gelu")

    def fuse_layer_norm(self) -> GraphOptimizer:
        return self.add("fuse_layer_norm")

    @classmethod
    def default(cls) -> GraphOptimizer:
        """The paper's transform string, made to work on graphs from TF 2.x and Keras 3.

        ``strip_unused_nodes remove_nodes(Identity, CheckNumerics) fold_constants(ignore_errors)
        fold_old_batch_norms fold_batch_norms`` then ``merge_duplicate_constants``,
        ``remove_const_control_edges`` and a final ``strip_unused_nodes``. Between them the
        transformer passes ``fold_shape_arithmetic``, ``projections_to_matmul``, ``fuse_matmul_gelu``
        and ``fuse_layer_norm`` (see docs/transformers.md) turn attention projections into 2-D
        MatMuls and put MatMul + BiasAdd + GELU and LayerNorm in the forms TF's remapper fuses. The batch-norm passes
        here also fold through a BiasAdd and the Keras 3 decomposed form, which TF's C++ tool
        leaves alone. It starts with ``strip_unknown_attrs(only_newer_producer=True)``, which
        acts only on graphs written by a newer TensorFlow than the installed one (e.g. TF 2.21
        graphs on TF 2.15 + ITEX).
        """
        return (
            cls()
            .strip_unknown_attrs(only_newer_producer=True)
            .strip_unused_nodes()
            .remove_nodes()
            .fold_constants(ignore_errors=True)
            .fold_old_batch_norms()
            .fold_batch_norms()
            .fold_shape_arithmetic()
            .projections_to_matmul()
            .fuse_matmul_gelu()
            .fuse_layer_norm()
            .merge_duplicate_constants()
            .remove_const_control_edges()
            .strip_unused_nodes()
        )

    @classmethod
    def from_transforms(cls, transforms: str) -> GraphOptimizer:
        """Parse a ``graph_transforms`` string, e.g. the white paper's, verbatim.

        ``remove_nodes(op=A, op=B)`` becomes ``remove_nodes(ops=("A", "B"))``; ``true``/``false``
        are booleans; numbers are ints; ``strip_unused_nodes(type=..., shape=...)`` is accepted
        and its arguments ignored (the Model carries its own signature).
        """
        opt = cls()
        text = transforms.strip().strip("'\"")
        pos = 0
        token = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(\(([^)]*)\))?\s*")
        while pos < len(text):
            match = token.match(text, pos)
            if match is None or match.end() == pos:
                raise ConfigError(
                    "cannot parse the transform string", where=text[pos : pos + 40], hint="expected name(arg=v, ...)"
                )
            pos = match.end()
            name, args = match.group(1), match.group(3)
            if name not in _registry():
                raise ConfigError(
                    f"unknown transform {name!r}",
                    why=did_you_mean(name, _registry()),
                    hint="tfcpu implements: " + ", ".join(sorted(_registry())),
                )
            params: dict[str, Any] = {}
            for raw in _split_args(args or ""):
                key, sep, value = raw.partition("=")
                key, value = key.strip(), value.strip().strip("'\"")
                if not sep or not key:
                    raise ConfigError(f"transform argument {raw!r} is not key=value", where=name)
                if key in _IGNORED_TRANSFORM_ARGS.get(name, set()):
                    logger.info("transform %s: argument %s ignored (the Model carries its signature)", name, key)
                    continue
                if name == "remove_nodes" and key == "op":
                    params["ops"] = (*params.get("ops", ()), value)
                    continue
                params[key] = _convert(value)
            opt = opt.add(name, **params)
        if not opt.steps:
            raise ConfigError("the transform string is empty", hint="e.g. 'fold_constants fold_batch_norms'")
        return opt

    # -- describing -----------------------------------------------------------------------
    def explain(self) -> str:
        """One line per pass: name, parameters and what it does."""
        if not self.steps:
            return "empty plan: run() returns the model unchanged (still checked)"
        lines = []
        for i, step in enumerate(self.steps, 1):
            lines.append(f"{i}. {step.describe()} — {_registry()[step.name].summary}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [
                {"name": s.name, "params": {k: list(v) if isinstance(v, tuple) else v for k, v in s.params}}
                for s in self.steps
            ]
        }

    # -- running --------------------------------------------------------------------------
    def run(
        self,
        model: Model,
        *,
        check: bool = True,
        rtol: float = 1e-4,
        atol: float = 1e-5,
        seed: int = 0,
        batch: int = 2,
    ) -> OptimizationResult:
        """Run every pass on a copy of ``model``'s graph and check the result numerically.

        With ``check=True`` the original and optimised graphs run on the same seeded random
        inputs; an output (or the logits before a Softmax output) with
        ``max|a - b| > atol + rtol * max|a|`` raises :class:`PassError` (see :func:`compare_models`).
        """
        from tfcpu.graph.passes import PassContext, run_pass

        if not isinstance(model, Model):
            raise ConfigError(
                "GraphOptimizer.run needs a tfcpu Model",
                where=type(model).__name__,
                hint="load one with tfcpu.load(...)",
            )
        ctx = PassContext(inputs=tuple(t.node for t in model.inputs), outputs=tuple(t.node for t in model.outputs))
        graph_def = model.graph_def
        reports = []
        start = time.perf_counter()
        for i, step in enumerate(self.steps):
            graph_def, report = run_pass(step.name, graph_def, ctx, **step.kwargs())
            _check_invariants(graph_def, model, step, self.steps[:i])
            logger.info(
                "pass %s: %d -> %d nodes, %d changed, %d skipped, %.3f s",
                step.name,
                report.nodes_before,
                report.nodes_after,
                len(report.changed),
                len(report.skipped),
                report.seconds,
            )
            reports.append(report)
        seconds = time.perf_counter() - start
        new = Model(
            graph_def=graph_def,
            inputs=model.inputs,
            outputs=model.outputs,
            source=model.source,
            metadata={**model.metadata, "optimized_with": [s.describe() for s in self.steps]},
        )
        checked = None
        if check:
            checked = compare_models(model, new, rtol=rtol, atol=atol, seed=seed, batch=batch)
            if not checked.passed:
                raise PassError(
                    "the optimised graph does not compute what the original computes",
                    where=checked.worst_output,
                    why=f"max abs error {checked.max_abs_error:.3g}, max rel error {checked.max_rel_error:.3g} "
                    f"(rtol={rtol}, atol={atol}) after: {', '.join(s.describe() for s in self.steps)}",
                    hint="run the passes one at a time to find the culprit, or pass check=False to keep it",
                )
        return OptimizationResult(model=new, reports=tuple(reports), check=checked, seconds=round(seconds, 4))


def _split_args(text: str) -> list[str]:
    """Split ``a=1, b="1,2"`` at commas outside quotes."""
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == ",":
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [a for a in (p.strip() for p in parts) if a]


def _convert(value: str) -> Any:
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    return value


def _check_invariants(graph_def: Any, model: Model, step: PassStep, before: tuple[PassStep, ...]) -> None:
    """A pass must keep every named input/output and leave no dangling input."""
    from tfcpu.graph._graphdef import parse_input

    names = {n.name for n in graph_def.node}
    history = ", ".join(s.name for s in before) or "none"
    for spec in (*model.inputs, *model.outputs):
        if spec.node not in names:
            raise PassError(
                f"pass {step.name!r} removed the named tensor {spec.name}",
                why=f"passes before it: {history}",
                hint="report this as a tfcpu bug",
            )
    for node in graph_def.node:
        for text in node.input:
            if parse_input(text).node not in names:
                raise PassError(
                    f"pass {step.name!r} left a dangling input {text!r}",
                    where=node.name,
                    why=f"passes before it: {history}",
                    hint="report this as a tfcpu bug",
                )


@dataclass(frozen=True)
class CheckResult:
    """Original vs optimised on the same seeded random inputs."""

    passed: bool
    max_abs_error: float
    max_rel_error: float
    worst_output: str
    rtol: float
    atol: float
    seed: int
    per_output: dict[str, tuple[float, float]] = field(default_factory=dict, compare=False)

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
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        return cls(
            passed=data["passed"],
            max_abs_error=data["max_abs_error"],
            max_rel_error=data["max_rel_error"],
            worst_output=data["worst_output"],
            rtol=data["rtol"],
            atol=data["atol"],
            seed=data["seed"],
            per_output={k: (v[0], v[1]) for k, v in data.get("per_output", {}).items()},
        )


_SATURATING = ("Softmax", "Sigmoid", "LogSoftmax", "Tanh")


def _probe_tensors(original: Model, optimised: Model) -> list[str]:
    """Outputs plus the inputs of saturating output ops (logits) present in both graphs.

    A softmax over the logits of a randomly initialised deep network is often one-hot, so
    comparing only the probabilities would hide errors; the logits show them.
    """
    from tfcpu.graph._graphdef import data_inputs

    fetches = list(original.output_names)
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
                fetches.append(logits)
    return fetches


def compare_models(
    original: Model, optimised: Model, *, rtol: float = 1e-4, atol: float = 1e-5, seed: int = 0, batch: int = 2
) -> CheckResult:
    """Run both models on the same seeded random inputs and compare every output.

    Errors are normwise per tensor: ``abs = max|a - b|`` and ``rel = abs / max|a|`` (an
    element-wise ratio is meaningless next to zeros). A tensor passes when
    ``abs <= atol + rtol * max|a|``. The logits before a Softmax/Sigmoid output are compared too.
    Both graphs run with Grappler off, so each computes exactly what it says.
    """
    import numpy as np

    from tfcpu.graph._execute import random_feeds, run_graph

    feeds = random_feeds(original, seed=seed, batch=batch)
    fetches = _probe_tensors(original, optimised)
    want = run_graph(original.graph_def, feeds, fetches, grappler=False)
    got = run_graph(optimised.graph_def, feeds, fetches, grappler=False)
    passed = True
    worst, worst_abs, worst_rel = "", 0.0, 0.0
    per: dict[str, tuple[float, float]] = {}
    for name, a, b in zip(fetches, want, got, strict=True):
        a = np.asarray(a)
        b = np.asarray(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            raise PassError(
                "the optimised graph changed an output's shape or dtype",
                where=name,
                why=f"{a.dtype}{a.shape} -> {b.dtype}{b.shape}",
            )
        if a.size and (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            af, bf = a.astype(np.float64), b.astype(np.float64)
            finite = np.isfinite(af)
            same_nonfinite = bool(np.array_equal(finite, np.isfinite(bf))) and bool(
                np.array_equal(af[~finite], bf[~finite])
            )
            diff = np.abs(af[finite] - bf[finite])
            scale = float(np.abs(af[finite]).max()) if diff.size else 0.0
            abs_err = float(diff.max()) if diff.size else 0.0
            rel_err = abs_err / scale if scale > 0 else (0.0 if abs_err == 0 else float("inf"))
            ok = same_nonfinite and abs_err <= atol + rtol * scale
        else:
            abs_err = rel_err = 0.0 if np.array_equal(a, b) else float("inf")
            ok = abs_err == 0.0
        per[name] = (abs_err, rel_err)
        passed = passed and ok
        if rel_err >= worst_rel or not worst:
            worst = name
        worst_abs = max(worst_abs, abs_err)
        worst_rel = max(worst_rel, rel_err)
    return CheckResult(passed, worst_abs, worst_rel, worst, rtol, atol, seed, per)


@dataclass(frozen=True)
class OptimizationResult(TextTable):
    """The optimised Model, one PassReport per pass, and the numerical check (None if skipped)."""

    model: Model
    reports: tuple[Any, ...]
    check: CheckResult | None
    seconds: float = 0.0

    @property
    def nodes_before(self) -> int:
        return self.reports[0].nodes_before if self.reports else self.model.node_count

    @property
    def nodes_after(self) -> int:
        return self.model.node_count

    def report(self, name: str) -> Any:
        """The report of the last run of pass ``name``."""
        for rep in reversed(self.reports):
            if rep.name == name:
                return rep
        raise ConfigError(f"no pass {name!r} in this result", why=did_you_mean(name, [r.name for r in self.reports]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.model.source,
            "nodes_before": self.nodes_before,
            "nodes_after": self.nodes_after,
            "seconds": self.seconds,
            "reports": [r.to_dict() for r in self.reports],
            "check": None if self.check is None else self.check.to_dict(),
            "ops_after": self.model.op_counts(),
        }

    def _rows(self) -> list[list[Any]]:
        return [
            [r.name, r.nodes_before, r.nodes_after, len(r.changed), len(r.skipped), f"{r.seconds:.3f}"]
            for r in self.reports
        ]

    def _check_line(self) -> str:
        if self.check is None:
            return "numerical check: skipped"
        c = self.check
        return (
            f"numerical check: {'passed' if c.passed else 'FAILED'} — max abs error {c.max_abs_error:.3g}, "
            f"max rel error {c.max_rel_error:.3g} (rtol={c.rtol}, atol={c.atol}, seed={c.seed})"
        )

    _COLUMNS = ("pass", "nodes before", "nodes after", "changed", "skipped", "seconds")

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        from tfcpu._render import rich_table

        return Group(
            rich_table(f"Graph optimisation of {self.model.source}", self._COLUMNS, self._rows()),
            Text(self._check_line()),
        )

    def _repr_html_(self) -> str:
        import html

        from tfcpu._render import html_table

        return html_table(f"Graph optimisation of {self.model.source}", self._COLUMNS, self._rows()) + (
            f"<p>{html.escape(self._check_line())}</p>"
        )
