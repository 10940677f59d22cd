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


def test_relative_spread_and_its_cell() -> None:
    assert _common.relative_spread([9.0, 10.0, 11.0]) == pytest.approx(0.2)
    assert math.isnan(_common.relative_spread([10.0]))  # one round: the spread is unknown, not zero
    assert math.isnan(_common.relative_spread([]))
    assert _common.fmt_spread([9.0, 10.0, 11.0]) == "9.0–11.0 (±10%)"
    assert _common.fmt_spread([10.0]) == "10.0–10.0 (1 round)"
    assert _common.fmt_spread([]) == ""


def test_rows_whose_ranges_overlap_are_within_noise() -> None:
    # the two demo runs: optimised 24.1 vs 18.3 img/s, swapped between runs
    optimised, frozen = [24.1, 18.3, 20.0], [19.0, 23.5, 21.0]
    assert _common.within_noise(optimised, frozen) is True
    assert _common.fmt_compared(optimised, frozen) == "0.95× (within noise)"
    fast, slow = [40.0, 41.0, 39.5], [20.0, 21.5, 19.8]
    assert _common.within_noise(fast, slow) is False
    assert _common.fmt_compared(fast, slow) == "2.00×"
    assert _common.within_noise([40.0], [20.0, 21.0]) is None
    assert _common.fmt_compared([40.0], [20.0, 21.0]) == "1.95× (1 round: noise unknown)"
    assert _common.fmt_compared([], [20.0]) == "—"


def test_table_rows_show_the_spread_and_mark_ratios_within_the_noise() -> None:
    best = _common.PathResult("tfcpu best", "", samples=[40.0, 42.0, 41.0])
    close = _common.PathResult("OpenVINO INT8", "", samples=[39.0, 41.5, 40.0])
    far = _common.PathResult("Keras", "", samples=[10.0, 10.5, 9.5])
    rows = _common.table_rows([best, close, far], best=best.median, best_samples=best.samples)
    assert rows[0][2] == "40.0–42.0 (±2%)" and rows[0][3] == "1.00×"  # the best row is not compared to itself
    assert rows[1][3] == "1.02× (within noise)"
    assert rows[2][3] == "4.10×" and rows[2][2] == "9.5–10.5 (±5%)"


def test_spread_lines_one_per_row_and_failed_rows_say_so() -> None:
    lines = _common.spread_lines({"FP32 frozen": [10.0, 12.0], "INC alone": []})
    assert lines[0].startswith("FP32 frozen") and lines[0].endswith("10.0–12.0 (±9%)") and "11.0" in lines[0]
    assert lines[1].split() == ["INC", "alone", "failed"]
