"""The README's Python blocks run as written (in a fresh interpreter, as a user pastes them),
with ResNet-50 swapped for a tiny graph and the timed seconds shortened to keep CI short."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.graphs import tiny_convnet

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_readme_has_the_tour() -> None:
    blocks = _blocks()
    assert len(blocks) >= 2 and any('tfcpu.load("keras:ResNet50")' in b for b in blocks)


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_readme_python_block_runs(index: int, tmp_path: Path) -> None:
    code = _blocks()[index]
    pb = tiny_convnet().save(tmp_path / "tiny.pb")
    code = code.replace('"keras:ResNet50"', repr(str(pb))).replace("duration=10", "duration=1")
    code = code.replace("batch_size=16", "batch_size=2")
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=900, cwd=tmp_path
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    if "Runner" in code:  # the tour prints its tables, not dataclass reprs
        assert "items/s" in proc.stdout and "BenchmarkResult(" not in proc.stdout
