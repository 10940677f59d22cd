"""`tfcpu topology` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import TOPOLOGIES
from tfcpu.cli import main


def test_console_script_prints_table() -> None:
    out = subprocess.run(["tfcpu", "topology"], capture_output=True, text=True, check=True)
    assert "CPU topology" in out.stdout and "usable CPUs" in out.stdout and "Package 0" in out.stdout


def test_json_from_capture_file(capsys: object) -> None:
    assert main(["topology", "--root", str(TOPOLOGIES / "xeon_gold_6252_2s.json"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
    assert data["sockets"] == 2 and data["physical_cores"] == 48 and data["logical_cpus"] == 96
    assert data["numa_nodes"][1]["cpus"][0] == 24


def test_tree_from_directory(captured_root: object, capsys: object) -> None:
    root = captured_root("epyc_8_l3")  # type: ignore[operator]
    assert main(["topology", "--root", str(root), "--tree"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert out.count("L3 #") == 8


def test_capture_then_read_back(tmp_path: Path, capsys: object) -> None:
    target = tmp_path / "me.json"
    assert main(["topology", "--capture", str(target)]) == 0
    assert main(["topology", "--root", str(target), "--json"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    data = json.loads(out[out.index("{") :])
    live = json.loads(
        subprocess.run(["tfcpu", "topology", "--json"], capture_output=True, text=True, check=True).stdout
    )
    for key in ("physical_cores", "logical_cpus", "numa_nodes", "cores", "isa", "allowed_cpus"):
        assert data[key] == live[key]


def test_bad_root_is_a_user_error(capsys: object) -> None:
    assert main(["topology", "--root", "/nonexistent/place"]) == 2
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "topology root not found" in err and "Traceback" not in err


def test_module_entry_point() -> None:
    out = subprocess.run([sys.executable, "-m", "tfcpu", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("tfcpu ")
