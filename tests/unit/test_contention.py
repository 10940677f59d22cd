"""Contention: the figures of a busy machine say so (a real busy neighbour, captured /proc/stat)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tests.graphs import dense_softmax
from tfcpu.runtime.contention import Contention, ContentionProbe, _steal_pct, read_cpu_times

BEFORE = """cpu  100 0 50 800 10 0 0 40 0 0
cpu0 50 0 25 400 5 0 0 20 0 0
cpu1 50 0 25 400 5 0 0 20 0 0
intr 1 2 3
"""
AFTER = """cpu  200 0 100 900 10 0 0 240 0 0
cpu0 100 0 50 450 5 0 0 220 0 0
cpu1 100 0 50 450 5 0 0 20 0 0
"""


def test_steal_is_read_per_cpu_from_proc_stat() -> None:
    before, after = read_cpu_times(BEFORE), read_cpu_times(AFTER)
    assert before["cpu0"] == (50, 0, 25, 400, 5, 0, 0, 20)
    # cpu0: 200 of its 325 ticks were stolen
    assert round(_steal_pct(before, after, [0]), 1) == round(100 * 200 / (50 + 25 + 50 + 200), 1)
    assert _steal_pct(before, after, [1]) == 0.0
    quiet = Contention(10.0, 2, 0.5, 0.05, 0.3)
    assert not quiet.suspect and quiet.note.startswith("quiet")
    stolen = Contention(10.0, 2, 30.0, 0.0, 0.5)
    assert stolen.suspect and "stole 30.0%" in stolen.note
    assert Contention.from_dict(stolen.to_dict()) == stolen


def _busy_neighbour(tmp_path: Path, seconds: float) -> int:
    """A busy loop that is not tfcpu's (its parent exits at once, so it is nobody's child here)."""
    pidfile = tmp_path / "pid"
    code = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass"
    subprocess.run(["sh", "-c", f'{sys.executable} -c "{code}" & echo $! > {pidfile}'], check=True, timeout=10)
    deadline = time.monotonic() + 10
    while not pidfile.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    return int(pidfile.read_text())


def test_a_busy_neighbour_is_counted_and_makes_the_figure_suspect(tmp_path: Path) -> None:
    import psutil

    pid = _busy_neighbour(tmp_path, 15)
    try:
        neighbour = psutil.Process(pid)
        time.sleep(0.5)
        before = sum(neighbour.cpu_times()[:2])
        probe = ContentionProbe().start()
        time.sleep(2.0)
        contention = probe.stop()
        used = (sum(neighbour.cpu_times()[:2]) - before) / contention.seconds
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # the machine is shared: others may add to it, but the neighbour's own share is always in it
    assert used > 0.1 and contention.other_cores >= 0.9 * used, (used, contention)
    assert contention.suspect and "not to be trusted" in contention.note


def test_runner_benchmarks_carry_the_machine_state() -> None:
    from tfcpu.runtime.runner import Runner

    with Runner(dense_softmax()) as runner:
        result = runner.benchmark(batch_size=4, steps=20, warmup=1)
    assert {"steal_pct", "other_cores", "load_avg", "suspect", "note"} <= set(result.contention)
    assert any(row[0] == "machine" for row in result.rows())
    assert type(result).from_json(result.to_json()).contention == result.contention
    assert np.isfinite(result.contention["other_cores"])
