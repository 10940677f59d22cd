"""``GraphOptimizer``: an immutable, fluent plan of graph passes, and its ``OptimizationResult``.

    >>> opt = GraphOptimizer.default()           # the white paper's sequence, made to work
    >>> opt = GraphOptimizer().remove_nodes(ops=("Identity",)).fold_constants()
    >>> opt = GraphOptimizer.from_transforms(
    ...     "strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) "
    ...     "fold_constants(ignore_errors=true) fold_old_batch_norms fold_batch_norms")
    >>> print(opt.explain())
    >>> result = opt.run(model)                  # checks optimised vs original numerically

Every method returns a new optimizer; nothing runs before `GraphOptimizer.run()`, and
the input Model is never modified. A plan is checked when it is built: unknown passes or
parameters, and a pass whose ``requires`` are not earlier in the plan, are ConfigErrors.

Fluent methods come from the pass registry: each registered pass is a method of the same
name (the built-in ones are written out below for typing and docs; a pass registered
elsewhere gets a generated one, see `GraphOptimizer.__getattr__()`). A test holds the
two in step. Transform-string parsing lives in `tfcpu.graph._transforms`, the checks
in `tfcpu.graph._check`, the instruments in `tfcpu.graph.instruments`.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tfcpu.errors import ConfigError, PassError, did_you_mean
from tfcpu.graph._check import CheckResult, NumericalCheck, check_invariants, compare_models, first_divergent_pass
from tfcpu.graph._result import OptimizationResult
from tfcpu.graph.instruments import PassChecker, PassDumper, PassInstrument, PassTimer
from tfcpu.graph.model import Model

logger = logging.getLogger(__name__)

__all__ = ["CheckResult", "GraphOptimizer", "OptimizationResult", "PassStep", "compare_models"]


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


def _clean_params(name: str, defaults: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults merged with ``params``, validated (unknown names, types of the built-in parameters)."""
    for key in params:
        if key not in defaults:
            raise ConfigError(
                f"pass {name!r} has no parameter {key!r}",
                why=did_you_mean(key, defaults),
                hint="parameters: " + (", ".join(defaults) or "none"),
            )
    clean = {**defaults, **params}
    if "ops" in clean:
        ops = clean["ops"]
        if isinstance(ops, str):
            ops = (ops,)
        if not ops or not all(isinstance(o, str) and o for o in ops):
            raise ConfigError("remove_nodes(ops=...) needs op type names", where=repr(ops))
        clean["ops"] = tuple(ops)
    if "max_bytes" in clean and (not isinstance(clean["max_bytes"], int) or clean["max_bytes"] <= 0):
        raise ConfigError("max_bytes must be a positive integer", where=repr(clean["max_bytes"]))
    for key, default in defaults.items():
        if isinstance(default, bool) and not isinstance(clean[key], bool):
            raise ConfigError(f"{key} must be true or false", where=f"{name}({key}={clean[key]!r})")
    return clean


def _check_requires(steps: Sequence[PassStep]) -> None:
    registry = _registry()
    seen: list[str] = []
    for step in steps:
        info = registry.get(step.name)
        for need in getattr(info, "requires", ()):
            if need not in registry:
                raise ConfigError(f"pass {step.name!r} requires {need!r}, which is not a registered pass")
            if need not in seen:
                raise ConfigError(
                    f"pass {step.name!r} requires {need!r} earlier in the plan",
                    where=" ".join([*seen, step.name]) or step.name,
                    why=f"{step.name} is registered with requires=({need!r},)",
                    hint=f"add .{need}() before .{step.name}(), e.g. GraphOptimizer().{need}().{step.name}(), "
                    f"or start from GraphOptimizer.default()",
                )
        seen.append(step.name)


@dataclass(frozen=True)
class GraphOptimizer:
    """A frozen sequence of passes. Build with the pass methods; run with `run()`.

    Attributes:
        steps: the planned passes, in order (validated on construction).
    """

    steps: tuple[PassStep, ...] = ()

    def __post_init__(self) -> None:
        from tfcpu.graph.passes import get_pass

        for step in self.steps:
            get_pass(step.name)
        _check_requires(self.steps)

    # -- building -------------------------------------------------------------------------
    def add(self, name: str, **params: Any) -> GraphOptimizer:
        """Append the registered pass ``name`` (validated now, run later).

        Args:
            name: the registered pass.
            **params: its parameters (the rest take their defaults).
        """
        from tfcpu.graph.passes import get_pass

        clean = _clean_params(name, get_pass(name).defaults, params)
        return replace(self, steps=(*self.steps, PassStep(name, tuple(sorted(clean.items())))))

    def __getattr__(self, name: str) -> Callable[..., GraphOptimizer]:
        """A fluent method for a registered pass that has no hand-written one (same signature)."""
        registry = _registry() if not name.startswith("_") else {}
        if name not in registry:
            raise AttributeError(
                f"'GraphOptimizer' object has no attribute {name!r}"
                + (f" ({hint})" if (hint := did_you_mean(name, registry)) else "")
            )
        info = registry[name]
        plan = self

        def method(**params: Any) -> GraphOptimizer:
            return plan.add(name, **params)

        method.__name__ = name
        method.__doc__ = info.summary
        method.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in info.defaults.items()]
        )
        return method

    def strip_unused_nodes(self) -> GraphOptimizer:
        """Delete nodes the outputs do not depend on (`strip_unused_nodes`)."""
        return self.add("strip_unused_nodes")

    def remove_nodes(self, ops: tuple[str, ...] = ("Identity", "CheckNumerics")) -> GraphOptimizer:
        """Bypass pass-through nodes (`remove_nodes`).

        Args:
            ops: the op types to bypass.
        """
        return self.add("remove_nodes", ops=ops)

    def fold_constants(self, ignore_errors: bool = True, max_bytes: int = 64 * 1024 * 1024) -> GraphOptimizer:
        """Evaluate constant subgraphs into Const nodes (`fold_constants`).

        Args:
            ignore_errors: skip (and report) what TensorFlow cannot evaluate instead of raising.
            max_bytes: leave values larger than this unfolded.
        """
        return self.add("fold_constants", ignore_errors=ignore_errors, max_bytes=max_bytes)

    def fold_old_batch_norms(self) -> GraphOptimizer:
        """Fold FusedBatchNorm* / BatchNormWithGlobalNormalization into the weights before them."""
        return self.add("fold_old_batch_norms")

    def fold_batch_norms(self) -> GraphOptimizer:
        """Fold per-channel Mul/Add chains into the weights before them (requires fold_constants)."""
        return self.add("fold_batch_norms")

    def merge_duplicate_constants(self) -> GraphOptimizer:
        """Point every reader of an equal Const to one copy."""
        return self.add("merge_duplicate_constants")

    def fold_pad_into_conv(self) -> GraphOptimizer:
        """Absorb zero spatial Pads into the following VALID Conv2D (explicit padding)."""
        return self.add("fold_pad_into_conv")

    def remove_const_control_edges(self) -> GraphOptimizer:
        """Drop control edges on Const nodes (they order nothing)."""
        return self.add("remove_const_control_edges")

    def strip_unknown_attrs(self, only_newer_producer: bool = False) -> GraphOptimizer:
        """Delete attributes this TensorFlow's op registry does not define.

        Args:
            only_newer_producer: act only on graphs written by a newer TensorFlow.
        """
        return self.add("strip_unknown_attrs", only_newer_producer=only_newer_producer)

    def strip_default_attrs(self) -> GraphOptimizer:
        """Delete attributes equal to their registered default."""
        return self.add("strip_default_attrs")

    def fold_shape_arithmetic(self) -> GraphOptimizer:
        return self.add("fold_shape_arithmetic")

    def projections_to_matmul(self) -> GraphOptimizer:
        return self.add("projections_to_matmul")

    def fuse_matmul_gelu(self) -> GraphOptimizer:
        return self.add("fuse_matmul_gelu")

    def fuse_layer_norm(self) -> GraphOptimizer:
        return self.add("fuse_layer_norm")

    def inline_functions(self) -> GraphOptimizer:
        """Inline calls to library functions (`inline_functions`; `tfcpu.load` already does)."""
        return self.add("inline_functions")

    def ungroup_convolutions(self) -> GraphOptimizer:
        """Grouped Conv2D as depthwise or Split/Conv2D/ConcatV2 (`ungroup_convolutions`; `tfcpu.load` already does)."""
        return self.add("ungroup_convolutions")

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

        Args:
            transforms: the transform string (see `tfcpu.graph._transforms`).
        """
        from tfcpu.graph._transforms import parse_transforms

        steps: list[PassStep] = []
        for name, params in parse_transforms(transforms, _registry()):
            clean = _clean_params(name, _registry()[name].defaults, params)
            steps.append(PassStep(name, tuple(sorted(clean.items()))))
        return cls(tuple(steps))

    # -- describing -----------------------------------------------------------------------
    def explain(self) -> str:
        """One line per pass: name, parameters and what it does."""
        if not self.steps:
            return "empty plan: run() returns the model unchanged (still checked)"
        lines = []
        for i, step in enumerate(self.steps, 1):
            info = _registry()[step.name]
            needs = f" (requires {', '.join(info.requires)})" if info.requires else ""
            lines.append(f"{i}. {step.describe()} — {info.summary}{needs}")
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
        shapes: Mapping[str, Sequence[int]] | None = None,
        timing: bool = False,
        dump_dir: str | os.PathLike[str] | None = None,
        check_each_pass: bool = False,
        instruments: Sequence[PassInstrument] = (),
        check_inputs: Any = None,
    ) -> OptimizationResult:
        """Run every pass on a copy of ``model``'s graph and check the result numerically.

        With ``check=True`` the original and optimised graphs run on the same seeded random
        inputs; an output (or the logits before a Softmax output) with
        ``max|a - b| > atol + rtol * max|a|`` raises `PassError` naming the first pass
        whose output diverged (tfcpu re-runs the check pass by pass to find it).

        Args:
            model: the Model to optimise (never modified).
            check: compare the optimised graph with the original numerically.
            rtol: relative tolerance of the check.
            atol: absolute tolerance of the check.
            seed: seed of the check's random inputs.
            batch: batch size of the check's random inputs.
            shapes: explicit input shapes for the check (unknown non-batch dimensions are 1 otherwise).
            timing: record each pass's wall time (``result.timings``; also logged).
            dump_dir: write the input graph and each pass's output there (``result.dumped``).
            check_each_pass: check after every pass that changed the graph; stop at the first that diverges.
            instruments: more `PassInstrument` hooks.
            check_inputs: sample inputs for the check instead of random ones: a dict of arrays by
                input name, or a ``.npz`` file keyed by input name (all samples run as one batch).
                Without them integer inputs are read from the graph: ids below the size of the
                embedding table they index, masks 0/1; an input tfcpu cannot read is named in the error.
        """
        if not isinstance(model, Model):
            raise ConfigError(
                "GraphOptimizer.run needs a tfcpu Model",
                where=type(model).__name__,
                hint="load one with tfcpu.load(...)",
            )
        from tfcpu._numbers import check_number

        for name, value in (("rtol", rtol), ("atol", atol)):  # before any pass runs
            check_number(
                value, name, where="GraphOptimizer.run", minimum=0, hint="tolerances must be finite and non-negative"
            )
        numerical = NumericalCheck(
            model, rtol=rtol, atol=atol, seed=seed, batch=batch, shapes=shapes, check_inputs=check_inputs
        ) if (check or check_each_pass) else None  # fmt: skip
        timer = PassTimer() if timing else None
        dumper = PassDumper(dump_dir) if dump_dir is not None else None
        checker = PassChecker(numerical) if check_each_pass and numerical is not None else None
        hooks = [i for i in (timer, dumper, checker) if i is not None] + list(instruments)
        start = time.perf_counter()
        new, reports = self._run_passes(model, hooks)
        seconds = time.perf_counter() - start
        checked = self._final_check(model, new, numerical) if check and numerical is not None else None
        return OptimizationResult(
            model=new,
            reports=tuple(reports),
            check=checked,
            seconds=round(seconds, 4),
            pass_checks=tuple(checker.results) if checker else (),
            timings=tuple(timer.timings) if timer else (),
            dumped=tuple(dumper.files) if dumper else (),
        )

    def _run_passes(self, model: Model, hooks: Sequence[PassInstrument]) -> tuple[Model, list[Any]]:
        from tfcpu.graph._check import with_graph
        from tfcpu.graph.passes import PassContext, run_pass

        ctx = PassContext(inputs=tuple(t.node for t in model.inputs), outputs=tuple(t.node for t in model.outputs))
        for hook in hooks:
            hook.before_run(model)
        current = model
        reports = []
        for i, step in enumerate(self.steps):
            for hook in hooks:
                hook.before_pass(i, step.name, current)
            graph_def, report = run_pass(step.name, current.graph_def, ctx, **step.kwargs())
            check_invariants(graph_def, model, step.name, [s.name for s in self.steps[:i]])
            current = with_graph(model, graph_def)
            logger.info(
                "pass %s: %d -> %d nodes, %d changed, %d skipped, %.3f s%s",
                step.name,
                report.nodes_before,
                report.nodes_after,
                len(report.changed),
                len(report.skipped),
                report.seconds,
                "" if report.modified else " (graph unchanged)",
            )
            reports.append(report)
            for hook in hooks:
                hook.after_pass(i, step.name, current, report)
        new = Model(
            graph_def=current.graph_def,
            inputs=model.inputs,
            outputs=model.outputs,
            source=model.source,
            metadata={**model.metadata, "optimized_with": [s.describe() for s in self.steps]},
        )
        for hook in hooks:
            hook.after_run(new)
        return new, reports

    def _final_check(self, model: Model, new: Model, numerical: NumericalCheck) -> CheckResult:
        from tfcpu.graph.passes import PassContext

        checked = numerical.against(new)
        for reason in checked.degenerate:
            logger.warning("graph optimisation check of %s: %s", model.source, reason)
        if checked.passed:
            return checked
        ctx = PassContext(inputs=tuple(t.node for t in model.inputs), outputs=tuple(t.node for t in model.outputs))
        found = first_divergent_pass(numerical, [(s.name, s.kwargs()) for s in self.steps], ctx)
        plan = ", ".join(s.describe() for s in self.steps)
        if found is None:
            culprit = "no single pass diverges on its own when the plan is re-run (non-deterministic graph?)"
            hint = "pass check=False to keep the graph anyway"
        else:
            index, result = found
            name = self.steps[index].name
            checked = replace(checked, diverged_at=name)
            culprit = (
                f"pass {index + 1} of {len(self.steps)}, {name!r}, is the first whose output diverges "
                f"(max rel error {result.max_rel_error:.3g} right after it)"
            )
            hint = f"drop {name!r} from the plan (and report it as a bug), or pass check=False to keep the graph"
        raise PassError(
            "the optimised graph does not compute what the original computes",
            where=checked.worst_output,
            why=f"max abs error {checked.max_abs_error:.3g}, max rel error {checked.max_rel_error:.3g} "
            f"(rtol={checked.rtol}, atol={checked.atol}) after: {plan}; {culprit}",
            hint=hint,
        )
