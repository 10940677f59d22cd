"""Pure helpers of benchmarks/_common.py (no benchmark is run here)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import _common


def test_summarise_median_min_max_and_empty() -> None:
    assert _common.summarise([3.0, 1.0, 2.0, 10.0]) == (2.5, 1.0, 10.0)
    assert all(math.isnan(v) for v in _common.summarise([]))


def test_rotation_visits_every_position_once_per_cycle() -> None:
    names = ["a", "b", "c"]
    orders = [_common.rotation(names, r) for r in range(3)]
    assert orders[1] == ["b", "c", "a"]
    assert _common.rotation(names, 3) == names
    for pos in range(3):
        assert sorted(o[pos] for o in orders) == names


def test_ratio_handles_missing_values() -> None:
    assert _common.ratio(6.0, 3.0) == 2.0
    assert math.isnan(_common.ratio(1.0, 0.0))
    assert math.isnan(_common.ratio(float("nan"), 2.0))
    assert _common.fmt_ratio(float("nan")) == "—"
    assert _common.fmt_ratio(1.234) == "1.23×"


def test_measure_rounds_records_failures_and_keeps_others() -> None:
    paths = {n: _common.PathResult(n, "") for n in ("ok", "bad")}
    calls: list[str] = []

    def measure(name: str) -> float:
        calls.append(name)
        if name == "bad":
            raise RuntimeError("conversion failed")
        return 10.0 + len(calls)

    _common.measure_rounds(paths, measure, rounds=3, log=lambda s: None)
    assert paths["bad"].status == "failed" and paths["bad"].note == "conversion failed"
    assert calls.count("bad") == 1  # a failed path is not retried
    assert len(paths["ok"].samples) == 3
    rows = _common.table_rows(list(paths.values()), best=paths["ok"].median)
    assert rows[0][3] == "1.00×" and rows[1][1] == "failed"


def test_child_env_drops_thread_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    env = _common.child_env({"X_EXTRA": "1"})
    assert "OMP_NUM_THREADS" not in env and "TF_ENABLE_ONEDNN_OPTS" not in env
    assert env["X_EXTRA"] == "1"
