"""CI tests both oneDNN settings: pytest's header says which one this run has, the oneDNN-sensitive tests
carry the ``onednn`` marker, and .ci/run and nox run them again with the opposite value."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests import onednn
from tfcpu.topology import Topology

ROOT = Path(__file__).resolve().parents[2]
FILES = ("tests/unit/test_runner.py", "tests/unit/test_readme.py")


def test_the_state_reads_the_variable_and_otherwise_this_cpus_default() -> None:
    assert onednn.state({"TF_ENABLE_ONEDNN_OPTS": "0"}) == (False, "TF_ENABLE_ONEDNN_OPTS=0")
    assert onednn.state({"TF_ENABLE_ONEDNN_OPTS": "1"})[0] is True
    assert onednn.opposite({"TF_ENABLE_ONEDNN_OPTS": "1"}) == "0"
    assert onednn.opposite({"TF_ENABLE_ONEDNN_OPTS": "0"}) == "1"
    default = Topology.detect().onednn_default
    on, why = onednn.state({})
    assert on is default and "unset" in why
    assert onednn.opposite({}) == ("0" if default else "1")
    assert onednn.header({"TF_ENABLE_ONEDNN_OPTS": "0"}).startswith("tfcpu: oneDNN off in this run")


def test_every_listed_file_exists_and_covers_passes_quantiser_and_runner() -> None:
    for name in onednn.SENSITIVE:
        assert (ROOT / name).is_file(), f"{name} is listed in tests/onednn.py but does not exist"
    joined = " ".join(onednn.SENSITIVE)
    for part in ("graph_passes", "quantize", "runner", "optimize"):
        assert part in joined


def test_ci_and_nox_run_the_second_leg_with_the_opposite_value() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line for line in ci if line.strip() and not line.lstrip().startswith("#")]
    readme_command = next(line for line in commands if "pytest" in line)

    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert readme_command == blocks[1].strip()  # the README's test command, first
    leg = 'TF_ENABLE_ONEDNN_OPTS="$(python -m tests.onednn)" python -m pytest -m onednn'
    assert leg in commands and commands.index(leg) > commands.index(readme_command)
    nox = (ROOT / "noxfile.py").read_text()
    assert re.search(r"def onednn\(session", nox) and '"tests.onednn"' in nox and '"-m", "onednn"' in nox


def test_pytest_prints_the_setting_and_marks_the_sensitive_tests() -> None:
    env_off = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-m", "onednn", "-p", "no:cacheprovider", *FILES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env_off,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "tfcpu: oneDNN off in this run (TF_ENABLE_ONEDNN_OPTS=0)" in proc.stdout
    assert "test_runner.py" in proc.stdout and "test_ci_runs_the_readme_test_command" not in proc.stdout
