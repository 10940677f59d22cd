"""One long-lived worker of a `tfcpu.runtime.pool.Pool`: ``python -P -m tfcpu.runtime._pool_worker SPEC RX TX``.

The parent starts this module pinned to the instance's CPUs (numactl/taskset, or the
``sched_setaffinity`` trampoline), with the instance's environment, and hands it two pipe ends
(``RX``: requests in, ``TX``: answers out). Only small JSON headers cross the pipes; tensors cross
through shared memory (`multiprocessing.shared_memory`):

1. read the spec; rebuild the instance's whole `SessionConfig` from its record and ``apply()`` it
   before anything imports TensorFlow (threads, oneDNN, KMP/OMP, frozen weights, ITEX);
2. load the model file the parent wrote, through the format registry (`tfcpu.formats`); activate a
   `tfcpu.runtime.Runner` on the spec's backend; run one small batch so the first real one is not
   the slow one;
3. send ``ready`` with what this process sees (pid, affinity, the managed variables, threads, the
   backend's description), then serve ``run`` requests one at a time: the inputs are read in place
   from the parent's segment of the request's slot, the outputs written to this worker's own
   segment of that slot (grown when too small, its name in the answer), or a ``bench`` request
   (`tfcpu.runtime.multi.run_instances`: warm up, ``armed``, wait for the common ``go`` time, the
   timed region, ``result``);
4. end on ``stop`` or when the request pipe closes (the parent is gone: nothing is left running).

A failure to start is sent as ``failed`` (one line, `cause_line`) before exiting non-zero; a batch
that fails is answered with ``error`` and the worker keeps serving.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ALIGN", "attach", "layout", "main"]

log = logging.getLogger("tfcpu.pool.worker")

ALIGN = 64
"""Byte alignment of every tensor inside a segment."""


def layout(arrays: list[np.ndarray]) -> tuple[list[int], int]:
    """Offsets of ``arrays`` packed one after another (each aligned to `ALIGN`), and the total size."""
    offsets = []
    pos = 0
    for arr in arrays:
        offsets.append(pos)
        pos += (arr.nbytes + ALIGN - 1) // ALIGN * ALIGN
    return offsets, max(pos, ALIGN)


def attach(name: str) -> SharedMemory:
    """Open an existing segment without handing it to this process's resource tracker.

    Python 3.11 registers attached segments too, and the tracker would unlink them when this process
    ends; the segment belongs to whoever created it.
    """
    shm = SharedMemory(name=name)
    untrack(shm)
    return shm


def untrack(shm: SharedMemory) -> None:
    """Take ``shm`` off the resource tracker (its owner unlinks it explicitly)."""
    with contextlib.suppress(Exception):  # no tracker to tell is fine
        resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]


def describe_tensors(arrays: list[np.ndarray], offsets: list[int]) -> list[dict[str, Any]]:
    return [
        {"dtype": arr.dtype.str, "shape": list(arr.shape), "offset": off}
        for arr, off in zip(arrays, offsets, strict=True)
    ]


def views(shm: SharedMemory, tensors: list[dict[str, Any]]) -> list[np.ndarray]:
    """Arrays over ``shm`` as ``tensors`` describe them (no copy)."""
    return [
        np.ndarray(tuple(t["shape"]), dtype=np.dtype(t["dtype"]), buffer=shm.buf, offset=int(t["offset"]))
        for t in tensors
    ]


class _Segments:
    """This worker's view of the slots: the parent's input segments (attached) and its own output ones."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.inputs: dict[int, SharedMemory] = {}
        self.outputs: dict[int, SharedMemory] = {}
        self.made = 0

    def input(self, slot: int, name: str) -> SharedMemory:
        shm = self.inputs.get(slot)
        if shm is None or shm.name != name:
            if shm is not None:
                shm.close()
            shm = self.inputs[slot] = attach(name)
        return shm

    def output(self, slot: int, size: int) -> SharedMemory:
        shm = self.outputs.get(slot)
        if shm is None or shm.size < size:
            if shm is not None:
                shm.close()
                shm.unlink()
            self.made += 1
            shm = SharedMemory(name=f"{self.prefix}o{slot}_{self.made}", create=True, size=max(size, 1 << 16))
            untrack(shm)  # unlinked here on growth and at exit, by the parent after a crash
            self.outputs[slot] = shm
        return shm

    def close(self) -> None:
        for shm in self.inputs.values():
            shm.close()
        for shm in self.outputs.values():
            shm.close()
            with contextlib.suppress(FileNotFoundError):
                shm.unlink()


def _send(conn: Connection, header: dict[str, Any]) -> None:
    conn.send_bytes(json.dumps(header).encode())


def _report(config: Any, runner: Any, warm_ms: float) -> dict[str, Any]:
    from tfcpu.session.precision import ONEDNN

    names = set(config.env()) | {ONEDNN, "LD_PRELOAD", "TFCPU_POOL_ID", "TFCPU_INSTANCE_INDEX"}
    return {
        "pid": os.getpid(),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [],
        "env": {k: os.environ[k] for k in sorted(names) if k in os.environ},
        "threads": [config.intra_op_threads, config.inter_op_threads],
        "config": config.to_dict(),
        "backend": runner.describe(),
        "warm_ms": warm_ms,
    }


def _start(spec: dict[str, Any]) -> tuple[Any, Any, float]:
    from tfcpu import formats
    from tfcpu.runtime.feeds import synthetic_batch
    from tfcpu.runtime.runner import Runner
    from tfcpu.session.config import SessionConfig

    config = SessionConfig.from_dict(spec["config"])
    config.apply()  # before the model or the backend imports TensorFlow
    fmt = formats.get(spec["format"])
    model = fmt.load(Path(spec["model"]), tuple(spec["inputs"]), tuple(spec["outputs"]))
    runner = Runner(model, config, backend=spec["backend"], options=dict(spec["backend_options"]))
    runner.activate()
    warm_ms = 0.0
    if spec.get("warm", True):
        batch = synthetic_batch(model, 1)
        t0 = time.perf_counter()
        runner.backend.infer([batch[n] for n in model.input_names])
        warm_ms = (time.perf_counter() - t0) * 1000.0
    return config, runner, warm_ms


def _run_one(backend: Any, segments: _Segments, msg: dict[str, Any]) -> dict[str, Any]:
    """Run one request: inputs read in place from the slot's input segment, outputs copied to its output one.

    The views over the segments live only in this frame, so a segment can be closed when it grows.
    """
    slot = int(msg["slot"])
    inputs = views(segments.input(slot, msg["shm"]), msg["inputs"])
    t0 = time.perf_counter()
    outputs = [np.asarray(o) for o in backend.infer(inputs)]
    compute = time.perf_counter() - t0
    offsets, size = layout(outputs)
    described = describe_tensors(outputs, offsets)
    out = segments.output(slot, size)
    for arr, dst in zip(outputs, views(out, described), strict=True):
        np.copyto(dst, arr, casting="no")
    return {"op": "done", "id": msg["id"], "shm": out.name, "outputs": described, "compute_s": compute}


def _bench_batches(model: Any, msg: dict[str, Any], options: Any) -> list[list[np.ndarray]]:
    """The instance's batches: its shard of the saved arrays (loaded here), or its own seeded synthetic batch."""
    from tfcpu.runtime.feeds import synthetic_batch

    names = model.input_names
    bs = options.batch_size
    data = msg["data"]
    if data["kind"] == "shard":
        arrays = {n: np.load(p, mmap_mode="r") for n, p in dict(data["paths"]).items()}
        lo, hi = int(data["lo"]), int(data["hi"])
        return [[np.ascontiguousarray(arrays[n][s : min(s + bs, hi)]) for n in names] for s in range(lo, hi, bs)]
    feed = synthetic_batch(model, bs, seed=int(data["seed"]) + int(msg["index"]), shapes=options.shape_map())
    return [[feed[n] for n in names]]


def _bench(rx: Connection, tx: Connection, runner: Any, msg: dict[str, Any]) -> bool:
    """One ``bench`` request of `tfcpu.runtime.multi.run_instances`: warm, wait for ``go``, time, answer.

    1. load the instance's data, run the first batch and the warm-up batches (``Backend.warm``), send
       ``armed``;
    2. wait for the parent's ``go`` (the same CLOCK_MONOTONIC time for every instance, sent once all
       are armed; CLOCK_MONOTONIC is one clock for every process on the machine), sleep until it;
    3. the timed region through ``Backend.timed`` (the one timed loop); the outputs, when asked for,
       saved as ``.npy`` files in ``msg["outdir"]``; send ``result`` with a `WorkerResult` record.

    Returns False when the parent sent ``stop`` or went away instead of ``go``.
    """
    from tfcpu.runtime._protocol import WorkerResult
    from tfcpu.runtime.backends._base import BenchmarkOptions
    from tfcpu.runtime.runner import repeat_feeds
    from tfcpu.session.runtime import runtime_info

    options = BenchmarkOptions.from_dict(msg["options"])
    backend, model = runner.backend, runner.model
    index = int(msg["index"])
    sharded = msg["data"]["kind"] == "shard"
    batches = _bench_batches(model, msg, options)
    first_ms = backend.warm(batches[0], options.warmup) * 1000.0 if batches else 0.0
    _send(tx, {"op": "armed", "first_run_ms": first_ms})
    try:
        go = json.loads(rx.recv_bytes())
    except (EOFError, OSError):  # the parent is gone
        return False
    if go.get("op") != "go":
        return False
    at = float(go["at"])
    while time.monotonic() < at:
        time.sleep(0.0005)
    deadline = at + options.duration if options.duration is not None and not sharded else None
    feeds = iter(batches) if sharded else repeat_feeds(batches, options.timed_steps)
    collect = bool(msg.get("collect"))
    timing = backend.timed(feeds, deadline=deadline, collect=collect)
    saved = []
    if collect and timing.outputs:
        for k, name in enumerate(model.output_names):
            path = Path(msg["outdir"]) / f"out-{index}-{k}.npy"
            np.save(path, np.concatenate([o[k] for o in timing.outputs]))
            saved.append((name, str(path)))
    result = WorkerResult(
        index=index,
        pid=os.getpid(),
        first_run_ms=first_ms,
        batches=timing.batches,
        started_at=timing.started_at,
        outputs=tuple(saved),
        runtime=runtime_info().to_dict(),
        backend=backend.describe(),
        affinity=tuple(sorted(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else (),
    )
    _send(tx, {"op": "result", "result": result.to_dict()})
    return True


def _serve(rx: Connection, tx: Connection, runner: Any, segments: _Segments) -> int:
    """Answer requests until ``stop`` or the parent is gone (0); a failed ``bench`` ends the worker (1)."""
    backend = runner.backend
    while True:
        try:
            raw = rx.recv_bytes()
        except (EOFError, OSError):  # the parent is gone
            return 0
        msg = json.loads(raw)
        if msg["op"] == "stop":
            return 0
        if msg["op"] == "bench":
            try:
                if not _bench(rx, tx, runner, msg):
                    return 0
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which marks the instance failed
                cause = cause_line(exc)
                sys.stderr.write(f"tfcpu pool worker {msg.get('index')}: {cause}\n")
                _send(tx, {"op": "failed", "cause": cause})
                return 1
            continue
        try:
            header = _run_one(backend, segments, msg)
        except Exception as exc:  # noqa: BLE001 - one failed batch is answered; the worker keeps serving
            header = {"op": "error", "id": msg["id"], "cause": cause_line(exc)}
        _send(tx, header)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        sys.stderr.write("usage: python -P -m tfcpu.runtime._pool_worker SPEC.json RX_FD TX_FD\n")
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    spec = json.loads(Path(args[0]).read_text())
    rx = Connection(int(args[1]), writable=False)
    tx = Connection(int(args[2]), readable=False)
    segments = _Segments(spec["prefix"])
    try:
        try:
            config, runner, warm_ms = _start(spec)
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises InstanceError
            cause = cause_line(exc)
            sys.stderr.write(f"tfcpu pool worker {spec['index']}: {cause}\n")
            _send(tx, {"op": "failed", "cause": cause})
            return 1
        _send(tx, {"op": "ready", "report": _report(config, runner, warm_ms)})
        return _serve(rx, tx, runner, segments)
    finally:
        segments.close()


def _exit_now(code: int) -> None:
    """End without interpreter teardown (native runtimes were seen to abort in their destructors)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def cause_line(exc: BaseException) -> str:
    """The failure's cause in one line: ``Type: first line of the message`` (its hint after ``|``)."""
    text = str(exc).strip()
    first, _, rest = text.partition("\n")
    hint = next((line.strip() for line in rest.splitlines() if line.strip().startswith("hint:")), "")
    line = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return f"{line} | {hint}" if hint else line


if __name__ == "__main__":
    _exit_now(main())
