"""The README's test command is what CI runs, exactly."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    assert len(blocks) >= 2, "README must open with two command blocks"
    demo, tests = blocks[0].strip(), blocks[1].strip()
    assert "tfcpu" in demo and "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci, f"CI must run the README test command exactly: {tests!r}"
