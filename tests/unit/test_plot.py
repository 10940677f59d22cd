"""Charts: matplotlib comes with the base install (the README's first command draws Figure 1), and a chart
that cannot be drawn says why instead of claiming a file."""

from __future__ import annotations

import os
import stat
import sys
import tomllib
from pathlib import Path

import pytest

from tfcpu._plot import Chart, bar_or_line_png, bars_png, try_chart
from tfcpu.errors import MissingDependencyError, OutputError

ROOT = Path(__file__).resolve().parents[2]


def test_matplotlib_is_a_base_dependency_and_plot_stays_an_alias() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [dep.split(">")[0].split("=")[0].split("[")[0].strip() for dep in project["dependencies"]]
    assert "matplotlib" in names
    assert any(dep.startswith("matplotlib") for dep in project["optional-dependencies"]["plot"])


def test_a_chart_is_written_as_a_png_with_the_users_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        chart = try_chart(lambda: bars_png(tmp_path / "demo.png", ["a", "b"], [1.0, 2.5], title="t", ylabel="img/s"))
    finally:
        os.umask(old)
    assert chart.written and chart.path == tmp_path / "demo.png" and chart.reason is None
    assert chart.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stat.S_IMODE(chart.path.stat().st_mode) == 0o644
    assert chart.describe() == f"wrote {tmp_path / 'demo.png'}"
    line = bar_or_line_png(tmp_path / "tune.png", {"bs 1": [(1, 2.0), (2, 3.0)]}, title="t", xlabel="x", ylabel="y")
    assert line.read_bytes()[:4] == b"\x89PNG"
    assert Chart.from_dict(chart.to_dict()) == chart


def test_without_matplotlib_the_chart_says_why_and_no_file_is_claimed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    with pytest.raises(MissingDependencyError):
        bars_png(tmp_path / "demo.png", ["a"], [1.0], title="t", ylabel="y")
    chart = try_chart(lambda: bars_png(tmp_path / "demo.png", ["a"], [1.0], title="t", ylabel="y"))
    assert not chart.written and chart.path is None
    assert chart.reason is not None and "matplotlib is not installed" in chart.reason
    assert "pip install matplotlib" in chart.reason
    assert chart.describe().startswith("no chart: matplotlib")
    assert list(tmp_path.iterdir()) == []
    assert Chart.from_dict(chart.to_dict()) == chart


def test_an_unwritable_chart_path_is_an_output_error_and_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError):
        bars_png(blocker / "demo.png", ["a"], [1.0], title="t", ylabel="y")
    chart = try_chart(lambda: bars_png(blocker / "demo.png", ["a"], [1.0], title="t", ylabel="y"))
    assert not chart.written and chart.reason is not None and "not usable" in chart.reason


def test_a_draw_call_that_returns_a_missing_path_is_not_claimed(tmp_path: Path) -> None:
    chart = try_chart(lambda: tmp_path / "never-written.png")
    assert not chart.written and chart.reason is not None and "was not written" in chart.reason
