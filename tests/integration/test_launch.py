"""`tfcpu launch` pins copies, passes the instance environment, and reports failures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

PROBE = (
    "import os, json; print(json.dumps({'i': os.environ['TFCPU_INSTANCE_INDEX'], "
    "'n': os.environ['TFCPU_NUM_INSTANCES'], 'shard': os.environ['TFCPU_SHARD'], "
    "'aff': sorted(os.sched_getaffinity(0)), 'omp': os.environ.get('OMP_NUM_THREADS')}))"
)


def test_launch_pins_each_copy_to_its_cpu() -> None:
    out = subprocess.run(
        ["tfcpu", "launch", "--instances", "2", "--", sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    seen = {}
    for line in out.stdout.splitlines():
        prefix, _, payload = line.partition(" ")
        data = json.loads(payload)
        assert prefix == f"[{data['i']}]"
        seen[data["i"]] = data
    assert seen["0"]["aff"] == [0] and seen["1"]["aff"] == [1]
    assert seen["1"]["shard"] == "1/2" and seen["0"]["n"] == "2"
    assert seen["0"]["omp"] == "1"


def test_launch_reports_the_failing_copy() -> None:
    code = "import os, sys; i = os.environ['TFCPU_INSTANCE_INDEX']; print('copy', i); sys.exit(3 if i == '1' else 0)"
    out = subprocess.run(
        ["tfcpu", "launch", "--instances", "2", "--", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 3
    assert "copy 1" in out.stderr and "exit code 3" in out.stderr
    assert "[0] copy 0" in out.stdout


def test_launch_deadline_kills_hung_copies() -> None:
    out = subprocess.run(
        [
            "tfcpu",
            "launch",
            "--instances",
            "2",
            "--timeout",
            "2",
            "--",
            sys.executable,
            "-c",
            "import time; time.sleep(60)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "deadline exceeded" in out.stderr


def test_launch_without_command_is_a_user_error() -> None:
    out = subprocess.run(["tfcpu", "launch", "--instances", "2"], capture_output=True, text=True)
    assert out.returncode == 2 and "no command given" in out.stderr
