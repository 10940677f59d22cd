"""`tfcpu plan` and `tfcpu config` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import TOPOLOGIES
from tfcpu.cli import main

XEON = str(TOPOLOGIES / "xeon_gold_6252_2s.json")


def _out(capsys: Any) -> str:
    return str(capsys.readouterr().out)


def test_plan_json_from_a_capture(capsys: Any) -> None:
    assert main(["plan", "--root", XEON, "--cores-per-instance", "4", "--json"]) == 0
    data = json.loads(_out(capsys))
    assert data["method"] == "numactl" and data["memory_binding"] is True and data["unused_cpus"] == []
    assert len(data["instances"]) == 12
    first = data["instances"][0]
    assert first["cpus"] == [0, 1, 2, 3, 48, 49, 50, 51] and first["numa_node"] == 0
    assert first["launch_prefix"] == ["numactl", "--physcpubind=0-3,48-51", "--membind=0"]
    assert first["env"]["OMP_NUM_THREADS"] == "4"


def test_plan_from_a_directory_without_smt(captured_root: Any, capsys: Any) -> None:
    root = captured_root("interleaved")
    assert main(["plan", "--root", str(root), "--instances", "2", "--no-smt", "--method", "taskset", "--json"]) == 0
    data = json.loads(_out(capsys))
    assert [i["cpus"] for i in data["instances"]] == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert data["unused_cpus"] == list(range(8, 16))


def test_plan_table_on_this_machine(capsys: Any) -> None:
    assert main(["plan", "--instances", "2"]) == 0
    out = _out(capsys)
    assert "2 instance(s)" in out and "pinning:" in out


def test_plan_script_to_stdout_and_file(tmp_path: Path, capsys: Any) -> None:
    argv = ["plan", "--root", XEON, "--instances", "2", "--shard-arg", "-d subset{n}/"]
    assert main([*argv, "--script", "python", "eval.py", "--flag"]) == 0
    script = _out(capsys)
    assert "numactl -N 0 -m 0 python eval.py --flag -d subset1/" in script
    assert "numactl -N 1 -m 1 python eval.py --flag -d subset2/" in script
    target = tmp_path / "multisocket.sh"
    assert main([*argv, "-o", str(target), "--script", "python", "eval.py"]) == 0
    assert target.read_text().startswith("#!/usr/bin/env bash") and os.access(target, os.X_OK)
    assert subprocess.run(["bash", "-n", str(target)]).returncode == 0


def test_plan_user_errors_exit_2(capsys: Any) -> None:
    assert main(["plan", "--root", XEON, "--instances", "0"]) == 2
    assert "positive" in capsys.readouterr().err
    assert main(["plan", "--root", XEON, "--cores-per-instance", "30"]) == 2
    err = capsys.readouterr().err
    assert "larger than any NUMA node" in err and "Traceback" not in err
    assert main(["plan", "--root", XEON, "--instances", "2", "--script"]) == 2


def test_config_json_env_and_table(capsys: Any) -> None:
    os.environ.pop("OMP_NUM_THREADS", None)
    assert main(["config", "--root", XEON, "--json", "--inter-op-threads", "2", "--onednn", "on"]) == 0
    data = json.loads(_out(capsys))
    rows = {r["setting"]: r for r in data["rows"]}
    assert rows["intra_op_parallelism_threads"]["value"] == "48"
    assert rows["inter_op_parallelism_threads"]["source"] == "set explicitly"
    assert data["env"]["TF_ENABLE_ONEDNN_OPTS"] == "1"
    os.environ["OMP_NUM_THREADS"] = "3"
    assert main(["config", "--root", XEON, "--env"]) == 0
    assert "export OMP_NUM_THREADS=3" in _out(capsys)
    assert main(["config", "--root", XEON, "--env", "--no-trust-env"]) == 0
    assert "export OMP_NUM_THREADS=48" in _out(capsys)
    assert main(["config"]) == 0
    assert "KMP_AFFINITY" in _out(capsys)
    assert main(["config", "--intra-op-threads", "-2"]) == 2
