"""`tfcpu bench` and `tfcpu tune` as a user runs them, on a tiny frozen graph."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.graphs import dense_softmax

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_pb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "dense.pb"
    dense_softmax().save(path)
    return path


def _tfcpu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tfcpu", *args], capture_output=True, text=True, timeout=600)


def test_bench_one_process_json(model_pb: Path) -> None:
    out = _tfcpu("bench", str(model_pb), "--batch-size", "4", "--steps", "20", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["throughput"] > 0 and data["items"] == 80
    assert set(data["latency_ms"]) >= {"p50", "p90", "p99", "mean", "min", "max"}
    assert data["config"]["intra_op_threads"] >= 1


def test_bench_two_instances_json(model_pb: Path) -> None:
    out = _tfcpu("bench", str(model_pb), "--batch-size", "4", "--duration", "1", "--instances", "2", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert len(data["instances"]) == 2 and not data["partial"]
    assert data["throughput"] > 0 and data["sum_throughput"] > 0
    assert [i["affinity"] for i in data["instances"]] == [[0], [1]]
    assert "p99" in data["latency_ms"]


def test_tune_picks_a_layout_and_plots(model_pb: Path, tmp_path: Path) -> None:
    png = tmp_path / "layouts.png"
    out = _tfcpu("tune", str(model_pb), "--batch-size", "4", "--duration", "1", "--plot", str(png), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [r["cores_per_instance"] for r in data["rows"]] == [1, 2]
    assert data["best"] is not None and data["best"]["throughput"] == max(r["throughput"] for r in data["rows"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_bad_input_is_one_line(tmp_path: Path) -> None:
    out = _tfcpu("bench", str(tmp_path / "missing.pb"))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and out.stderr.startswith("tfcpu bench: error:")


def test_bench_backend_and_its_options_reach_the_runner_and_the_workers(model_pb: Path) -> None:
    out = _tfcpu("bench", str(model_pb), "--backend", "tensorflw")
    assert out.returncode == 2 and "did you mean 'tensorflow'" in out.stderr, out.stderr
    # one process: the Runner's backend gets the options (the tensorflow backend takes none)
    out = _tfcpu("bench", str(model_pb), "--steps", "2", "--backend-option", "streams=2")
    assert out.returncode == 2 and "takes no options, got streams" in out.stderr, out.stderr
    # instances: the options travel in the WorkerSpec; the child's own cause comes back first
    out = _tfcpu("bench", str(model_pb), "--instances", "1", "--steps", "2", "--backend-option", "streams=2", "--json")
    assert out.returncode == 1, out.stderr
    data = json.loads(out.stdout)
    assert data["partial"] and data["instances"][0]["error"].startswith("ConfigError: the tensorflow backend takes no")
    ok = _tfcpu("bench", str(model_pb), "--instances", "1", "--steps", "3", "--backend", "tensorflow", "--json")
    assert ok.returncode == 0, ok.stderr
    bench = json.loads(ok.stdout)["instances"][0]["benchmark"]
    assert bench["backend"]["backend"] == "tensorflow" and bench["backend"]["precision"] == "fp32"
