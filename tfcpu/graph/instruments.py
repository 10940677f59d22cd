"""Instruments: hooks that watch each pass of GraphOptimizer.run (`tfcpu.GraphOptimizer.run`).

``run()`` turns its options into the built-in instruments — ``timing=True`` →
`PassTimer`, ``dump_dir=...`` → `PassDumper`, ``check_each_pass=True`` →
`PassChecker` — and takes any others through ``instruments=[...]``. An instrument
sees the model before the first pass, ``before_pass``/``after_pass`` around every pass (the
graph after it, as a Model, and its PassReport) and the optimised model at the end. It must
not modify what it is shown.

    >>> result = GraphOptimizer.default().run(model, timing=True, dump_dir="passes/", check_each_pass=True)
    >>> result.timings, result.dumped, result.pass_checks
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfcpu.errors import ConfigError, PassError

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.graph._check import CheckResult, NumericalCheck
    from tfcpu.graph.model import Model
    from tfcpu.graph.passes import PassReport

logger = logging.getLogger(__name__)

__all__ = ["PassChecker", "PassDumper", "PassInstrument", "PassTimer"]


class PassInstrument:
    """Base class: every hook does nothing; override the ones you need."""

    def before_run(self, model: Model) -> None:
        """Called once with the input model, before the first pass."""

    def before_pass(self, index: int, name: str, model: Model) -> None:
        """Called before pass number ``index`` (0-based) runs on ``model``."""

    def after_pass(self, index: int, name: str, model: Model, report: PassReport) -> None:
        """Called after pass ``index`` with its output (as a Model) and its report."""

    def after_run(self, model: Model) -> None:
        """Called once with the optimised model, before the final numerical check."""


class PassTimer(PassInstrument):
    """Wall time of each pass including the infrastructure's invariant and post-condition checks."""

    def __init__(self) -> None:
        self.timings: list[tuple[str, float]] = []
        self._start = 0.0

    def before_pass(self, index: int, name: str, model: Model) -> None:
        self._start = time.perf_counter()

    def after_pass(self, index: int, name: str, model: Model, report: PassReport) -> None:
        seconds = round(time.perf_counter() - self._start, 4)
        self.timings.append((name, seconds))
        logger.info("pass %d %s: %.3f s", index + 1, name, seconds)


class PassDumper(PassInstrument):
    """Write the input graph and each pass's output as binary GraphDefs into ``directory``.

    Files: ``00_input.pb``, ``01_<pass>.pb``, ... and ``passes.json`` (the reports, in order).

    Args:
        directory: where to write; created if missing. Checked writable when the run starts.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.files: list[str] = []
        self._reports: list[dict[str, Any]] = []

    def _write(self, name: str, model: Model) -> None:
        from tfcpu._io import atomic_write_bytes

        path = atomic_write_bytes(self.directory / name, model.graph_def.SerializeToString())
        self.files.append(str(path))

    def before_run(self, model: Model) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError("cannot create the pass dump directory", where=str(self.directory), why=str(exc)) from exc
        if not os.access(self.directory, os.W_OK):
            raise ConfigError("the pass dump directory is not writable", where=str(self.directory))
        self._write("00_input.pb", model)

    def after_pass(self, index: int, name: str, model: Model, report: PassReport) -> None:
        self._write(f"{index + 1:02d}_{name}.pb", model)
        self._reports.append(report.to_dict())

    def after_run(self, model: Model) -> None:
        from tfcpu._io import atomic_write_text

        atomic_write_text(self.directory / "passes.json", json.dumps(self._reports, indent=2) + "\n")
        self.files.append(str(self.directory / "passes.json"))


class PassChecker(PassInstrument):
    """Check each pass's output numerically against the original; stop at the first that diverges.

    Args:
        check: the numerical check holding the original model's outputs.
    """

    def __init__(self, check: NumericalCheck) -> None:
        self.check = check
        self.results: list[tuple[str, CheckResult]] = []

    def after_pass(self, index: int, name: str, model: Model, report: PassReport) -> None:
        if not report.modified:
            return
        result = self.check.against(model, label=f"original vs after {name}")
        self.results.append((name, result))
        if not result.passed:
            raise PassError(
                f"the graph after pass {name!r} does not compute what the original computes",
                where=result.worst_output,
                why=f"pass {index + 1} {name!r} is the first whose output diverges: {result.line()}",
                hint=f"drop {name!r} from the plan (and report it as a bug), or run with check=False to keep it",
            )
