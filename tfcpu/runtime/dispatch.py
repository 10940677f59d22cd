"""What ran: oneDNN's verbose log of one batch, as a table of kernels, ISAs and milliseconds.

`probe_dispatch()` runs one warm-up and one measured batch of a model in a child process
(``python -P -m tfcpu.runtime.dispatch``) with ``ONEDNN_VERBOSE=profile_exec`` and
``ONEDNN_VERBOSE_TIMESTAMP=1``, parses oneDNN's ``exec`` lines of the measured batch and returns a
`DispatchReport`: per primitive kind (convolution, inner_product, matmul, reorder, eltwise,
pooling, binary, ...) the implementation oneDNN chose (``brg_conv_fwd:avx512_core_amx``,
``jit:avx512_core_vnni``, ``gemm:jit``, ...), its ISA, data types, count and milliseconds, plus the
batch's wall time and the share of it spent outside oneDNN (TensorFlow's executor, Casts, ops with
no oneDNN kernel, the verbose printing itself).

The parser (`tfcpu.runtime._verbose_log`) reads the ``template:`` line oneDNN 3.x prints first,
so logs with and without timestamps, and the older ``dnnl_verbose,exec,...`` format, all parse.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfcpu._render import TextTable, html_table, rich_table
from tfcpu._stop import run_child, temp_dir
from tfcpu.errors import ConfigError, RunnerError
from tfcpu.runtime._verbose_log import MARK, KernelExec, isa_of_implementation, parse_verbose

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.graph.model import Model

__all__ = [
    "DispatchReport",
    "KernelExec",
    "KernelRow",
    "add_cli_argument",
    "add_dispatch_to",
    "cli_dispatch",
    "isa_of_implementation",
    "parse_verbose",
    "probe_dispatch",
    "report_from_log",
    "runner_dispatch",
]

log = logging.getLogger(__name__)

#: ``ONEDNN_VERBOSE`` value the probe sets: execution lines with timings (oneDNN >= 3.0; ``1`` also works).
VERBOSE_VALUE = "profile_exec"


@dataclass(frozen=True)
class KernelRow:
    """One (kind, implementation, data types) group of the measured batch."""

    kind: str
    implementation: str
    isa: str
    dtypes: tuple[str, ...]
    count: int
    ms: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "implementation": self.implementation,
            "isa": self.isa,
            "dtypes": list(self.dtypes),
            "count": self.count,
            "ms": self.ms,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KernelRow:
        return cls(
            str(data["kind"]),
            str(data["implementation"]),
            str(data.get("isa", "")),
            tuple(data.get("dtypes", ())),
            int(data["count"]),
            float(data["ms"]),
        )


def _rows(execs: Sequence[KernelExec]) -> tuple[KernelRow, ...]:
    groups: dict[tuple[str, str, tuple[str, ...]], list[float]] = {}
    for e in execs:
        groups.setdefault((e.kind, e.implementation, e.dtypes), []).append(e.ms)
    rows = [KernelRow(k, impl, isa_of_implementation(impl), dt, len(v), sum(v)) for (k, impl, dt), v in groups.items()]
    return tuple(sorted(rows, key=lambda r: (-r.ms, r.kind, r.implementation)))


@dataclass(frozen=True)
class DispatchReport(TextTable):
    """Which oneDNN kernels one batch ran, and how much of the batch they account for.

    Attributes:
        source: the model's source.
        backend: the runtime that ran it (``tensorflow``).
        batch_size: items in the measured batch.
        wall_ms: the measured batch's wall time, milliseconds (verbose printing included).
        rows: kernels grouped by (kind, implementation, data types), most time first.
        onednn_version: from the log's header.
        cpu_isa: the ISA oneDNN detected, from the log's header.
        env: the variables the probe set in the child (``ONEDNN_VERBOSE``, oneDNN on/off).
        notes: what the reader should know (no exec lines, primitives overlapping in time...).
    """

    source: str
    backend: str
    batch_size: int
    wall_ms: float
    rows: tuple[KernelRow, ...]
    onednn_version: str = ""
    cpu_isa: str = ""
    env: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    notes: tuple[str, ...] = ()

    @property
    def onednn_ms(self) -> float:
        """Milliseconds inside oneDNN primitives (sum over exec lines)."""
        return sum(r.ms for r in self.rows)

    @property
    def outside_share(self) -> float:
        """Share of the batch's wall time spent outside oneDNN (0 when primitives overlap the whole batch)."""
        if self.wall_ms <= 0:
            return 0.0
        return max(0.0, 1.0 - self.onednn_ms / self.wall_ms)

    def kinds(self) -> dict[str, dict[str, Any]]:
        """Per primitive kind: count, milliseconds, its main ISA and the data types seen."""
        out: dict[str, dict[str, Any]] = {}
        for r in self.rows:
            entry = out.setdefault(r.kind, {"count": 0, "ms": 0.0, "isa": self.isa_of(r.kind), "dtypes": []})
            entry["count"] += r.count
            entry["ms"] += r.ms
            entry["dtypes"] += [d for d in r.dtypes if d not in entry["dtypes"]]
        return out

    def isa_of(self, kind: str) -> str | None:
        """The ISA (or, when the name has none, the implementation) that took most of ``kind``'s time;
        None when no such primitive ran. Matmul-like kinds match ``inner_product`` and ``matmul``."""
        wanted = ("inner_product", "matmul") if kind in ("inner_product", "matmul") else (kind,)
        rows = [r for r in self.rows if r.kind in wanted]
        if not rows:
            return None
        per: dict[str, float] = {}
        for r in rows:
            per[r.isa or r.implementation] = per.get(r.isa or r.implementation, 0.0) + r.ms
        return max(per, key=lambda k: per[k])

    def brief(self) -> str:
        """One cell for a table (the demo's column): ``conv avx512_core_amx s8/u8, 14% outside oneDNN``."""
        kinds = self.kinds()
        if not kinds:
            return "no oneDNN kernels"
        main = "convolution" if "convolution" in kinds else max(kinds, key=lambda k: kinds[k]["ms"])
        entry = kinds[main]
        label = {"convolution": "conv", "inner_product": "matmul", "gemm_api": "sgemm API"}.get(main, main)
        isa = "" if entry["isa"] == main else f" {entry['isa']}"  # gemm_api lines name no implementation
        return f"{label}{isa} {'/'.join(entry['dtypes'])}, {self.outside_share:.0%} outside oneDNN"

    @property
    def uses_amx(self) -> bool:
        """True if any primitive ran an AMX implementation."""
        return any("amx" in r.implementation for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "backend": self.backend,
            "batch_size": self.batch_size,
            "wall_ms": self.wall_ms,
            "onednn_ms": self.onednn_ms,
            "outside_share": self.outside_share,
            "uses_amx": self.uses_amx,
            "brief": self.brief(),
            "onednn_version": self.onednn_version,
            "cpu_isa": self.cpu_isa,
            "kinds": self.kinds(),
            "rows": [r.to_dict() for r in self.rows],
            "env": dict(self.env),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DispatchReport:
        """Rebuild from `to_dict()` output (derived keys are ignored)."""
        return cls(
            source=str(data["source"]),
            backend=str(data["backend"]),
            batch_size=int(data["batch_size"]),
            wall_ms=float(data["wall_ms"]),
            rows=tuple(KernelRow.from_dict(r) for r in data["rows"]),
            onednn_version=str(data.get("onednn_version", "")),
            cpu_isa=str(data.get("cpu_isa", "")),
            env={str(k): str(v) for k, v in data.get("env", {}).items()},
            notes=tuple(data.get("notes", ())),
        )

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> DispatchReport:
        return cls.from_dict(json.loads(text))

    def table_rows(self) -> list[tuple[str, ...]]:
        rows: list[tuple[str, ...]] = [
            (r.kind, r.implementation, r.isa or "-", "/".join(r.dtypes) or "-", str(r.count), f"{r.ms:.2f}")
            for r in self.rows
        ]
        rows.append(("oneDNN total", "", "", "", str(sum(r.count for r in self.rows)), f"{self.onednn_ms:.2f}"))
        rows.append(("batch wall time", "", "", "", "", f"{self.wall_ms:.2f}"))
        rows.append(("outside oneDNN", "", "", "", "", f"{self.outside_share:.0%}"))
        return rows

    def _title(self) -> str:
        amx = "AMX used" if self.uses_amx else "no AMX"
        return f"oneDNN kernels of one batch of {self.batch_size} ({self.source}, oneDNN {self.onednn_version}, {amx})"

    _COLUMNS = ("kind", "implementation", "ISA", "dtypes", "count", "ms")

    def __rich__(self) -> Any:
        from rich.console import Group

        notes = [f"note: {n}" for n in self.notes]
        return Group(rich_table(self._title(), self._COLUMNS, self.table_rows()), *notes)

    def _repr_html_(self) -> str:
        notes = "".join(f"<p>note: {n}</p>" for n in self.notes)
        return html_table(self._title(), self._COLUMNS, self.table_rows()) + notes


def report_from_log(
    text: str,
    *,
    source: str,
    wall_ms: float,
    batch_size: int,
    backend: str = "tensorflow",
    window_ms: tuple[float, float] | None = None,
    env: Mapping[str, str] | None = None,
) -> DispatchReport:
    """Build a `DispatchReport` from a verbose log and the batch's wall time.

    Args:
        text: oneDNN's verbose output (see `parse_verbose()`).
        source: the model's source, for the title.
        wall_ms: the measured batch's wall time in milliseconds.
        batch_size: items in the measured batch.
        backend: the runtime that ran the batch.
        window_ms: the measured batch's (start, end) in ms since the epoch, to drop other lines.
        env: the variables set for the run, kept in the report.
    """
    parsed = parse_verbose(text, window_ms=window_ms)
    notes: list[str] = []
    if not parsed.execs:
        notes.append(
            "no oneDNN exec lines: oneDNN was off or the model ran no oneDNN primitive "
            "(TensorFlow's own Eigen kernels are not logged)"
        )
    from tfcpu.session.precision import ONEDNN

    report = DispatchReport(
        source, backend, batch_size, wall_ms, _rows(parsed.execs), parsed.version, parsed.cpu_isa, dict(env or {})
    )
    if parsed.execs and {e.kind for e in parsed.execs} == {"gemm_api"}:
        notes.append(
            "only oneDNN's sgemm API ran (gemm_api): TensorFlow's own Eigen kernels did the work with oneDNN's "
            f"graph rewrite off; no oneDNN convolution primitive (set {ONEDNN}=1 to use them)"
        )
    if report.onednn_ms > wall_ms > 0:
        notes.append("oneDNN time exceeds the wall time: primitives ran in parallel (inter-op threads)")
    return DispatchReport(**{**report.__dict__, "notes": tuple(notes)})


def add_dispatch_to(result: dict[str, Any], report: DispatchReport) -> dict[str, Any]:
    """Put ``report`` into a bench result dict (``result["dispatch"]``) and return the dict.

    Args:
        result: a benchmark result's ``to_dict()`` output (changed in place).
        report: the probe's report.
    """
    result["dispatch"] = report.to_dict()
    result["dispatch"]["convolution_isa"] = report.isa_of("convolution")
    return result


def add_cli_argument(parser: Any) -> None:
    """Add ``--dispatch`` to ``tfcpu bench``'s parser.

    Args:
        parser: the ``bench`` subcommand's ``argparse.ArgumentParser``.
    """
    parser.add_argument(
        "--dispatch",
        action="store_true",
        help="also run one batch with oneDNN's verbose log and report the kernels, their ISA and time",
    )


def cli_dispatch(
    args: Any, model: Model, data: dict[str, Any], *, shapes: Mapping[str, Sequence[int]] | None = None
) -> DispatchReport | None:
    """What ``tfcpu bench --dispatch`` adds after the benchmark: the probe at the same batch size, put into
    the JSON result (``data["dispatch"]``). Returns the report (for the table), or None without ``--dispatch``.

    Args:
        args: the parsed ``bench`` arguments (``dispatch``, ``batch_size``, ``onednn``).
        model: the model that was benchmarked.
        data: the result's ``to_dict()`` (changed in place).
        shapes: the ``--shape`` overrides.
    """
    if not getattr(args, "dispatch", False):
        return None
    report = probe_dispatch(model, batch_size=int(args.batch_size), shapes=shapes, onednn=getattr(args, "onednn", None))
    add_dispatch_to(data, report)
    return report


def runner_dispatch(runner: Any, batch_size: int = 1, **kwargs: Any) -> DispatchReport:
    """``Runner.dispatch()``: the probe for a Runner's model, with the Runner's oneDNN choice.

    Args:
        runner: a `tfcpu.runtime.runner.Runner` (its ``model`` and ``config.onednn_opts`` are read).
        batch_size: items in the measured batch.
        **kwargs: passed on to `probe_dispatch()` (``env``, ``timeout``, ``shapes``).
    """
    config = getattr(runner, "config", None)
    kwargs.setdefault("onednn", getattr(config, "onednn_opts", None))
    return probe_dispatch(runner.model, batch_size=batch_size, **kwargs)


# -- the probe --------------------------------------------------------------------------------------
def probe_dispatch(
    model: Model,
    *,
    batch_size: int = 1,
    env: Mapping[str, str] | None = None,
    backend: str = "tensorflow",
    timeout: float = 300.0,
    shapes: Mapping[str, Sequence[int]] | None = None,
    onednn: bool | None = None,
) -> DispatchReport:
    """Run one warm-up and one measured batch of ``model`` in a child with oneDNN's verbose log on.

    Args:
        model: a frozen tfcpu Model.
        batch_size: items per batch (the batch dimension of every input).
        env: base environment for the child (default ``os.environ``); oneDNN is switched on when the
            model needs it (``tfcpu.session.precision.decide_for``).
        backend: the runtime; only ``tensorflow`` logs oneDNN primitives.
        timeout: seconds before the child is stopped and RunnerError raised.
        shapes: concrete shapes for inputs with unknown non-batch dimensions.
        onednn: the caller's oneDNN choice (``--onednn``/``--no-onednn``); None: the model's needs, then
            ``TF_ENABLE_ONEDNN_OPTS`` in ``env``, then TensorFlow's default for this CPU.
    """
    from tfcpu.session.precision import child_env, decide_onednn

    if backend != "tensorflow":
        raise ConfigError(
            f"the dispatch probe reads oneDNN's log, which backend {backend!r} does not write",
            hint="use backend='tensorflow'",
        )
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    decision = decide_onednn(needs_onednn=model.needs_onednn, explicit=onednn, environ=env)
    child = child_env(decision, env)
    extra = {"ONEDNN_VERBOSE": VERBOSE_VALUE, "ONEDNN_VERBOSE_TIMESTAMP": "1"}
    child.update(extra)
    with temp_dir("tfcpu-dispatch-") as tmp:
        pb, out = tmp / "model.pb", tmp / "result.json"
        model.save(pb)
        spec = {
            "inputs": list(model.input_names),
            "outputs": list(model.output_names),
            "batch_size": batch_size,
            "shapes": {k: list(v) for k, v in (shapes or {}).items()},
        }
        argv = [sys.executable, "-P", "-m", "tfcpu.runtime.dispatch", str(pb), json.dumps(spec), str(out)]
        try:
            proc = run_child(argv, env=child, timeout=timeout)  # its own process group, ended however it ends
        except subprocess.TimeoutExpired as exc:
            raise RunnerError(
                "the dispatch probe timed out", where=model.source, why=f"no result after {timeout:g} s",
                hint="raise timeout= or use a smaller batch_size",
            ) from exc  # fmt: skip
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or "").strip().splitlines()[-3:]
            raise RunnerError(
                "the dispatch probe's child failed",
                where=model.source,
                why=" | ".join(tail) or f"exit code {proc.returncode}",
                hint="run the model with tfcpu bench first; it reports the same error with more context",
            )
        result = json.loads(out.read_text())
    used = {**extra, **decision.env()}
    return report_from_log(
        proc.stdout,
        source=model.source,
        wall_ms=float(result["wall_ms"]),
        batch_size=batch_size,
        backend=backend,
        window_ms=(float(result["begin_ms"]), float(result["end_ms"])),
        env=used,
    )


def _mark(what: str) -> None:
    """Write a ``tfcpu_dispatch,<what>`` line into the child's stdout, between oneDNN's lines (the protocol
    the parent parses; the library itself does not print)."""
    sys.stdout.flush()
    sys.stdout.write(f"{MARK},{what}\n")
    sys.stdout.flush()


def _child(argv: Sequence[str]) -> int:
    """``python -P -m tfcpu.runtime.dispatch MODEL.pb SPEC_JSON OUT.json``: warm up, mark, run one batch."""
    import tfcpu
    from tfcpu.runtime.feeds import synthetic_batch

    pb, spec_text, out = argv
    spec = json.loads(spec_text)
    model = tfcpu.load(pb, inputs=spec["inputs"], outputs=spec["outputs"])
    feed = synthetic_batch(model, int(spec["batch_size"]), shapes=spec["shapes"] or None)
    from tfcpu._lazy import import_tensorflow
    from tfcpu.graph.passes.strip_attrs import for_installed_tensorflow  # as Runner imports the graph

    tf = import_tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(for_installed_tensorflow(model.graph_def), name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        sess.run(list(model.output_names), feed)  # warm-up: layouts, weight reorders, primitive creation
        _mark("begin")
        begin = time.time() * 1000.0
        t0 = time.perf_counter()
        sess.run(list(model.output_names), feed)
        wall = (time.perf_counter() - t0) * 1000.0
        end = time.time() * 1000.0
        _mark("end")
    Path(out).write_text(json.dumps({"wall_ms": wall, "begin_ms": begin, "end_ms": end, "pid": os.getpid()}))
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a child
    raise SystemExit(_child(sys.argv[1:]))
