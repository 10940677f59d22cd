"""Helpers shared by the benchmark scripts: fresh-child timing, medians, machine record, tables.

Each function is small and does one thing; scripts compose them. Nothing here imports
TensorFlow at module level, so a script can set environment variables before TF starts.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Variables that would change how a child runs if they leaked in from the parent's shell.
_THREAD_VARS = ("KMP_", "OMP_", "TF_NUM_", "TF_ENABLE_ONEDNN_OPTS")


@dataclass
class PathResult:
    """The measurements of one benchmarked path over all rounds."""

    name: str
    description: str
    samples: list[float] = field(default_factory=list)
    status: str = "ok"  # ok | failed
    note: str = ""

    def fail(self, reason: str) -> None:
        self.status, self.note = "failed", reason

    @property
    def median(self) -> float:
        return summarise(self.samples)[0]

    def to_dict(self) -> dict[str, Any]:
        med, lo, hi = summarise(self.samples)
        return {**asdict(self), "median": med, "min": lo, "max": hi}


def model_parser(doc: str | None) -> argparse.ArgumentParser:
    """The arguments every one-model benchmark takes: --model, --rounds, --duration, --batch-size, --json."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ResNet50")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds timed per measurement")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", metavar="OUT")
    return parser


def summarise(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max) of ``values``; NaNs when there are none."""
    if not values:
        nan = float("nan")
        return nan, nan, nan
    return statistics.median(values), min(values), max(values)


def rotation(names: Sequence[str], round_index: int) -> list[str]:
    """The order of ``names`` in round ``round_index``: rotated so drift hits every path equally."""
    if not names:
        return []
    k = round_index % len(names)
    return list(names[k:]) + list(names[:k])


def ratio(a: float, b: float) -> float:
    """a / b, NaN when either is missing or b is zero."""
    if not (a == a and b == b) or b == 0:  # NaN check without math import
        return float("nan")
    return a / b


def fmt_ratio(value: float) -> str:
    return "—" if value != value else f"{value:.2f}×"


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The parent's environment without thread/oneDNN settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_THREAD_VARS)}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra or {})
    return env


def run_json_child(argv: Sequence[str], out: Path, env: Mapping[str, str], timeout: float) -> dict[str, Any]:
    """Run ``argv`` in a fresh process; return the JSON it wrote to ``out``.

    Raises RuntimeError with the last lines of stderr when the child fails.
    """
    out.unlink(missing_ok=True)
    try:
        proc = subprocess.run(list(argv), env=dict(env), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"child timed out after {timeout:.0f} s") from exc
    if proc.returncode != 0 or not out.exists():
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise RuntimeError(tail or f"child exit code {proc.returncode}")
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def python_child(module_or_script: str, *args: Any) -> list[str]:
    """argv for ``python <script> args...`` (or ``-m module`` when it has no ``.py``)."""
    head = [module_or_script] if module_or_script.endswith(".py") else ["-m", module_or_script]
    return [sys.executable, *head, *(str(a) for a in args)]


def measure_rounds(
    paths: Mapping[str, PathResult],
    measure: Callable[[str], float],
    rounds: int,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
) -> None:
    """Call ``measure(name)`` for every path each round (rotated order); record samples or failures.

    A path that failed is not measured again in later rounds.
    """
    names = list(paths)
    for r in range(rounds):
        for name in rotation(names, r):
            res = paths[name]
            if res.status != "ok":
                continue
            try:
                value = measure(name)
            except Exception as exc:  # noqa: BLE001 - a failed path is data, the others still run
                res.fail(str(exc) or type(exc).__name__)
                log(f"round {r + 1} {name}: failed ({res.note})")
                continue
            res.samples.append(value)
            log(f"round {r + 1} {name}: {value:.1f} img/s")


def package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine_record(packages: Sequence[str]) -> dict[str, Any]:
    """Where and when: topology summary, package versions, UTC date."""
    from tfcpu.topology import Topology

    return {
        "machine": Topology.detect().summary(),
        "versions": {p: package_version(p) for p in packages},
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def table_rows(
    results: Sequence[PathResult], best: float, best_samples: Sequence[float] | None = None
) -> list[tuple[str, ...]]:
    """Rows: path, median, min–max (± half the relative spread), best/this, status note.

    With ``best_samples`` (the best row's rounds), a ratio whose rows overlap is marked "within noise".
    """
    rows: list[tuple[str, ...]] = []
    for res in results:
        med, _, _ = summarise(res.samples)
        if res.status != "ok" or not res.samples:
            rows.append((res.name, "failed", "", "", res.note[:80]))
            continue
        cell = fmt_ratio(ratio(best, med))
        if best_samples is not None and res.samples is not best_samples:
            cell += noise_mark(best_samples, res.samples)
        rows.append((res.name, f"{med:.1f}", fmt_spread(res.samples), cell, res.note[:80]))
    return rows


def print_table(
    title: str,
    results: Sequence[PathResult],
    best: float,
    best_label: str = "tfcpu best",
    best_samples: Sequence[float] | None = None,
) -> None:
    """Print the peer table with rich (``best_samples``: mark ratios within the noise)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    from tfcpu._render import drop_empty_last_column

    columns, rows = drop_empty_last_column(
        ["path", "median img/s", "min–max (±spread)", f"{best_label} / path", "note"],
        table_rows(results, best, best_samples),
    )
    for col in columns:
        table.add_column(col, justify="left" if col in ("path", "note") else "right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def write_json(path: str | Path, data: Mapping[str, Any]) -> None:
    from tfcpu._io import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, default=str))


def inc_alone(fp32: Any, batches: list[dict[str, Any]]) -> Any:
    """INC 3.x with its defaults (``StaticQuantConfig()``) on the graph as given, no tfcpu
    optimisation: what a user who calls INC directly gets. INC writes ``nc_workspace/`` and log
    files into the working directory, so it runs inside a temporary one."""
    import contextlib
    import tempfile

    import numpy as np
    from neural_compressor.tensorflow import StaticQuantConfig, quantize_model

    from tfcpu.graph.model import Model

    name = fp32.input_names[0]

    class Loader:
        batch_size = len(batches[0][name])

        def __iter__(self):  # type: ignore[no-untyped-def]
            for b in batches:
                # one input: the array; several (an encoder's ids and mask): a dict by node name, which INC
                # pairs with its input tensors by name
                inputs = b[name] if len(b) == 1 else {k.split(":")[0]: v for k, v in b.items()}
                yield inputs, np.zeros(len(b[name]))

    with tempfile.TemporaryDirectory(prefix="bench-inc-") as tmp, contextlib.chdir(tmp):
        q = quantize_model(fp32.graph_def, StaticQuantConfig(), Loader(), calib_iteration=len(batches))
        graph_def = q.graph_def
    if graph_def.versions.producer == 0:  # INC drops the producer version
        graph_def.versions.CopyFrom(fp32.graph_def.versions)
    return Model(graph_def, fp32.inputs, fp32.outputs, source=f"{fp32.source} [INC alone]")


# -- spread and noise (issue 19): how much a row moves between rounds, and which differences it can explain --
NOISE_NOTE = "within noise"


def relative_spread(values: Sequence[float]) -> float:
    """(max − min) / median over the rounds; NaN with fewer than two samples (the spread is unknown)."""
    if len(values) < 2:
        return float("nan")
    med = statistics.median(values)
    return (max(values) - min(values)) / med if med > 0 else float("nan")


def fmt_spread(values: Sequence[float]) -> str:
    """``"31.2–33.0 (±3%)"``: the min–max over the rounds and half the relative spread; one round says so."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    rel = relative_spread(values)
    return f"{lo:.1f}–{hi:.1f} (1 round)" if rel != rel else f"{lo:.1f}–{hi:.1f} (±{rel / 2:.0%})"


def within_noise(a: Sequence[float], b: Sequence[float]) -> bool | None:
    """Whether the difference between two rows is within their noise: their min–max ranges overlap, so
    another run could order them the other way. ``None`` when either has fewer than two samples."""
    if len(a) < 2 or len(b) < 2:
        return None
    return min(a) <= max(b) and min(b) <= max(a)


def noise_mark(a: Sequence[float], b: Sequence[float]) -> str:
    """``""``, ``" (within noise)"`` or ``" (1 round: noise unknown)"`` for the ratio of ``a`` to ``b``."""
    noisy = within_noise(a, b)
    if noisy is None:
        return " (1 round: noise unknown)" if a and b else ""
    return f" ({NOISE_NOTE})" if noisy else ""


def fmt_compared(a: Sequence[float], b: Sequence[float]) -> str:
    """The ratio of the medians of ``a`` and ``b`` with its noise mark, e.g. ``"1.04× (within noise)"``."""
    value = ratio(summarise(a)[0], summarise(b)[0]) if a and b else float("nan")
    return fmt_ratio(value) + (noise_mark(a, b) if value == value else "")


def spread_lines(samples: Mapping[str, Sequence[float]], width: int = 14) -> list[str]:
    """One line per row: name, median, min–max and relative spread (for the scripts that print text)."""
    lines = []
    for name, values in samples.items():
        if not values:
            lines.append(f"{name:<{width}}{'failed':>14}")
            continue
        lines.append(f"{name:<{width}}{statistics.median(values):>14.1f}   {fmt_spread(values)}")
    return lines
