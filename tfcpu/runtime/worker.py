"""The former one-shot child of a multi-instance run: ``python -P -m tfcpu.runtime.worker SPEC``.

`tfcpu.runtime.multi.run_instances` now runs on the pool's workers (`tfcpu.runtime._pool_worker`,
its ``bench`` request); this module keeps `cause_line` (used by the pool worker) and the
`WorkerSpec` entry point for specs written by hand.

The parent writes a `WorkerSpec` and starts this module pinned to
the instance's CPUs (numactl/taskset) with the instance's environment, so thread variables are in
place before the runtime starts. ``-P`` keeps the user's current directory off ``sys.path``, so a
``grp.py`` or ``random.py`` lying there is not imported instead of the standard module. The
protocol has no log scraping:

1. load the graph, activate the spec's backend, prepare data, run the first batch and the
   warm-up batches (``Backend.warm``);
2. write ``ready`` and wait for the parent's ``go`` file (all instances start together);
3. run the timed region through ``Backend.timed`` (the one timed loop), which records each
   batch's start and end on CLOCK_MONOTONIC (one clock for every process on the machine, so
   windows can be compared);
4. write the `WorkerResult` JSON atomically and exit 0. Any
   failure writes its cause (one line) to the error file and exits non-zero.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from tfcpu.graph.model import Model
    from tfcpu.runtime._protocol import WorkerResult, WorkerSpec

__all__ = ["main", "run"]

log = logging.getLogger("tfcpu.worker")


def _wait_for(path: Path, timeout: float) -> str:
    from tfcpu.errors import InstanceError

    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise InstanceError(
                f"no start signal from the parent after {timeout:.0f} s",
                where=str(path),
                hint="the other instances took longer to load and warm up: raise InstanceSettings.startup_timeout",
            )
        if os.getppid() == 1:
            raise InstanceError("the parent process is gone", where=str(path), hint="run the instances again")
        time.sleep(0.002)
    return path.read_text()


def _load(spec: WorkerSpec) -> Model:
    from tfcpu._lazy import import_tensorflow
    from tfcpu.graph.model import Model

    if spec.paths.graph.endswith(".xml"):  # OpenVINO IR (no TensorFlow graph)
        from tfcpu.graph.load import load

        return load(spec.paths.graph)
    tf = import_tensorflow()
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(Path(spec.paths.graph).read_bytes())
    return Model(graph_def, spec.inputs, spec.outputs, source=spec.source)


def _batches(spec: WorkerSpec, model: Model) -> list[list[np.ndarray]]:
    import numpy as np

    from tfcpu.runtime.feeds import synthetic_batch

    names = model.input_names
    bs = spec.options.batch_size
    data = spec.data
    if data.sharded:
        arrays = {n: np.load(p, mmap_mode="r") for n, p in data.paths}
        return [
            [np.ascontiguousarray(arrays[n][s : min(s + bs, data.hi)]) for n in names]
            for s in range(data.lo, data.hi, bs)
        ]
    feed = synthetic_batch(model, bs, seed=data.seed + spec.index, shapes=spec.options.shape_map())
    return [[feed[n] for n in names]]


def _feeds(spec: WorkerSpec, batches: list[list[np.ndarray]]) -> Iterable[Sequence[np.ndarray]]:
    """A shard's batches once each; a synthetic batch ``timed_steps`` times (or until the deadline)."""
    from tfcpu.runtime.runner import repeat_feeds

    if spec.data.sharded:
        return iter(batches)
    return repeat_feeds(batches, spec.options.timed_steps)


def _save_outputs(
    spec: WorkerSpec, model: Model, outputs: Sequence[Sequence[np.ndarray]]
) -> tuple[tuple[str, str], ...]:
    import numpy as np

    saved = []
    for k, name in enumerate(model.output_names):
        path = Path(spec.paths.workdir) / f"out-{spec.index}-{k}.npy"
        np.save(path, np.concatenate([o[k] for o in outputs]))
        saved.append((name, str(path)))
    return tuple(saved)


def run(spec: WorkerSpec) -> WorkerResult:
    """Load, warm, wait for the common start, time, and return what was measured."""
    from tfcpu._io import atomic_write_text
    from tfcpu.runtime._protocol import WorkerResult
    from tfcpu.runtime.backends._base import backend_class
    from tfcpu.session.config import SessionConfig
    from tfcpu.session.runtime import runtime_info

    model = _load(spec)
    intra, inter = spec.threads
    config = SessionConfig.for_topology().with_intra_op_threads(intra).with_inter_op_threads(inter)
    backend = backend_class(spec.backend)(model, config, dict(spec.backend_options))
    backend.activate()
    try:
        batches = _batches(spec, model)
        first_ms = backend.warm(batches[0], spec.options.warmup) * 1000.0 if batches else 0.0
        atomic_write_text(spec.paths.ready, str(os.getpid()))
        go = float(_wait_for(Path(spec.paths.go), spec.startup_timeout))
        while time.monotonic() < go:
            time.sleep(0.0005)
        duration = spec.options.duration
        deadline = go + duration if duration is not None and not spec.data.sharded else None
        timing = backend.timed(_feeds(spec, batches), deadline=deadline, collect=spec.collect_outputs)
        described = backend.describe()
    finally:
        backend.deactivate()
    outputs = _save_outputs(spec, model, timing.outputs) if spec.collect_outputs and timing.outputs else ()
    return WorkerResult(
        index=spec.index,
        pid=os.getpid(),
        first_run_ms=first_ms,
        batches=timing.batches,
        started_at=timing.started_at,
        outputs=outputs,
        runtime=runtime_info().to_dict(),
        backend=described,
        affinity=tuple(sorted(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else (),
    )


def cause_line(exc: BaseException) -> str:
    """The failure's cause in one line: ``Type: first line of the message`` (its hint after ``|``)."""
    text = str(exc).strip()
    first, _, rest = text.partition("\n")
    hint = next((line.strip() for line in rest.splitlines() if line.strip().startswith("hint:")), "")
    line = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return f"{line} | {hint}" if hint else line


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -P -m tfcpu.runtime.worker SPEC.json\n")
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from tfcpu._io import atomic_write_text
    from tfcpu.runtime._protocol import WorkerSpec

    spec = WorkerSpec.from_json(Path(args[0]).read_text())
    try:
        result = run(spec)
    except Exception as exc:  # noqa: BLE001 - reported to the parent through the error file and exit code
        cause = cause_line(exc)
        atomic_write_text(spec.paths.error, cause + "\n")
        sys.stderr.write(f"tfcpu worker {spec.index}: {cause}\n")
        sys.stderr.flush()
        return 1
    atomic_write_text(spec.paths.result, result.to_json())
    return 0


def _exit_now(code: int) -> None:
    """End the child without interpreter teardown once its result (or error) file is written.

    Native runtimes release their thread pools in destructors at teardown; OpenVINO's CPU plug-in
    was seen to abort there ("Resource deadlock avoided", SIGABRT) after the result was written,
    turning a finished instance into a failed one. Nothing is left to clean up at this point: the
    result is on disk (atomically), the parent owns the work directory.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit_now(main())
