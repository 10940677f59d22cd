"""``OptimizationResult``: what GraphOptimizer.run (`tfcpu.GraphOptimizer.run`) returns."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tfcpu._render import TextTable
from tfcpu.errors import ConfigError, did_you_mean
from tfcpu.graph._check import CheckResult
from tfcpu.graph.model import Model, ModelRecord
from tfcpu.graph.passes._base import PassReport

__all__ = ["OptimizationResult"]


@dataclass(frozen=True)
class OptimizationResult(TextTable):
    """The optimised Model, one PassReport per pass, and the numerical check (None if skipped).

    Attributes:
        model: the optimised Model (the input is never modified).
        reports: one PassReport per pass, in order.
        check: original vs optimised (None with ``check=False``).
        seconds: wall time of the passes.
        pass_checks: ``(pass, CheckResult)`` after each modifying pass (``run(check_each_pass=True)``).
        timings: ``(pass, seconds)`` per pass (``run(timing=True)``).
        dumped: files written by ``run(dump_dir=...)``.
    """

    model: Model
    reports: tuple[Any, ...]
    check: CheckResult | None
    seconds: float = 0.0
    pass_checks: tuple[tuple[str, CheckResult], ...] = ()
    timings: tuple[tuple[str, float], ...] = ()
    dumped: tuple[str, ...] = ()

    @property
    def degenerate(self) -> tuple[str, ...]:
        """Why the numerical check proves nothing (empty when it proves something or did not run)."""
        return () if self.check is None else self.check.degenerate

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
            "degenerate": list(self.degenerate),
            "pass_checks": [{"after": n, "check": c.to_dict()} for n, c in self.pass_checks],
            "timings": [{"pass": n, "seconds": s} for n, s in self.timings],
            "dumped": list(self.dumped),
            "ops_after": self.model.op_counts(),
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OptimizationResult:
        """A loaded report from `to_dict` data. Its ``model`` is a `ModelRecord` (source and op histogram,
        no graph): a loaded report, not a runnable model.

        Args:
            data: what `to_dict` returned (after a JSON round trip).

        Raises:
            ConfigError: ``data`` is not an OptimizationResult record.
        """
        try:
            check = data["check"]
            model = ModelRecord(
                graph_def=None, inputs=(), outputs=(), source=str(data["source"]), counts=dict(data["ops_after"])
            )
            return cls(
                model=model,
                reports=tuple(PassReport.from_dict(r) for r in data["reports"]),
                check=None if check is None else CheckResult.from_dict(check),
                seconds=float(data["seconds"]),
                pass_checks=tuple((str(p["after"]), CheckResult.from_dict(p["check"])) for p in data["pass_checks"]),
                timings=tuple((str(t["pass"]), float(t["seconds"])) for t in data["timings"]),
                dumped=tuple(str(d) for d in data["dumped"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError("not an OptimizationResult record", why=f"{type(exc).__name__}: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> OptimizationResult:
        return cls.from_dict(json.loads(text))

    def _rows(self) -> list[list[Any]]:
        return [
            [r.name, r.nodes_before, r.nodes_after, len(r.changed), len(r.skipped), f"{r.seconds:.3f}",
             "yes" if r.modified else "no"]
            for r in self.reports
        ]  # fmt: skip

    def _check_lines(self) -> list[str]:
        if self.check is None:
            return ["numerical check: skipped"]
        return [f"numerical check: {self.check.line()}", *self.degenerate]

    _COLUMNS = ("pass", "nodes before", "nodes after", "changed", "skipped", "seconds", "modified")

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        from tfcpu._render import rich_table

        return Group(
            rich_table(f"Graph optimisation of {self.model.source}", self._COLUMNS, self._rows()),
            *(Text(line) for line in self._check_lines()),
        )

    def _repr_html_(self) -> str:
        import html

        from tfcpu._render import html_table

        return html_table(f"Graph optimisation of {self.model.source}", self._COLUMNS, self._rows()) + "".join(
            f"<p>{html.escape(line)}</p>" for line in self._check_lines()
        )
