"""An INT8 graph runs wherever tfcpu starts the process, and fails clearly where it cannot.

Quantised kernels exist only in oneDNN, which stock TensorFlow leaves off on CPUs without
VNNI/BF16/AMX and decides once, at import. Every check runs in a fresh interpreter whose
environment does not set TF_ENABLE_ONEDNN_OPTS, as a user's shell would not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.graphs import tiny_convnet

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ENV = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"} | {"TF_CPP_MIN_LOG_LEVEL": "2"}


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.fixture(scope="module")
def int8_pb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("int8")
    fp32 = tiny_convnet().save(work / "tiny.pb")
    out = work / "tiny_int8.pb"
    proc = _run([sys.executable, "-m", "tfcpu", "quantize", str(fp32), "-o", str(out), "--json"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["quantized"] is True
    return out


def test_tfcpu_bench_turns_onednn_on_for_an_int8_graph(int8_pb: Path) -> None:
    proc = _run(["tfcpu", "bench", str(int8_pb), "--batch-size", "2", "--steps", "5", "--json"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    assert data["throughput"] > 0 and data["items"] == 10


CHILD = """
import json, sys
import tfcpu
from tfcpu.errors import RunnerError
from tfcpu.runtime import Runner
from tfcpu.session.runtime import runtime_info

model = tfcpu.load(sys.argv[1])  # imports TensorFlow with this CPU's default oneDNN setting
report = {"needs_onednn": model.needs_onednn, "onednn_here": runtime_info().onednn_enabled}
try:
    with Runner(model) as runner:
        runner.run({model.input_names[0]: __import__("numpy").zeros((1, 8, 8, 1), "float32")})
    report["in_process"] = "ran"
except RunnerError as exc:
    report["in_process"] = str(exc)
plan = tfcpu.InstancePlan.for_topology(tfcpu.Topology.detect(), instances=1)
result = Runner(model).multi_instance(plan, batch_size=2, steps=3)
report["children"] = [i.status for i in result.instances]
print(json.dumps(report))
"""


def test_in_process_runs_need_onednn_and_fresh_instances_get_it(int8_pb: Path) -> None:
    proc = _run([sys.executable, "-c", CHILD, str(int8_pb)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["needs_onednn"] is True  # read back from the file's ops, no metadata
    if report["onednn_here"]:  # a VNNI/AMX CPU: oneDNN is on by default and the graph just runs
        assert report["in_process"] == "ran"
    else:  # this CI machine: a clear error instead of TensorFlow's "Missing 0-th output"
        assert "needs oneDNN" in report["in_process"] and "TF_ENABLE_ONEDNN_OPTS=1" in report["in_process"]
    assert report["children"] == ["ok"]  # the instances start with oneDNN on by themselves
