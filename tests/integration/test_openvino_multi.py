"""OpenVINO as pinned instances: ``Runner(model, backend="openvino").multi_instance(plan)``,
``tfcpu bench MODEL --backend openvino --instances 2`` and ``tfcpu bench MODEL.xml --instances 2``.

Each child compiles with its instance's threads and one stream (unless the options name another
number); what each child compiled is read back from its own ``describe()``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.openvino_nets import bn_classifier
from tfcpu.plan import InstancePlan
from tfcpu.runtime.backends import BenchmarkOptions
from tfcpu.runtime.runner import Runner


def _check_instances(instances: list[dict[str, Any]], streams: int = 1) -> None:
    assert len(instances) == 2 and [i["status"] for i in instances] == ["ok", "ok"], instances
    assert sorted(tuple(i["affinity"]) for i in instances) == [(0,), (1,)]
    for inst in instances:
        ran = inst["benchmark"]["backend"]
        assert ran["backend"] == "openvino" and ran["precision"] == "fp32", ran
        assert ran["streams"] == ran["streams_asked"] == streams, ran
        assert ran["threads"] == ran["threads_asked"] == len(inst["cpus"]) == 1, ran


def test_runner_multi_instance_on_openvino_sizes_each_child_to_its_cores() -> None:
    plan = InstancePlan.for_topology(instances=2)
    runner = Runner(bn_classifier(), backend="openvino")
    result = runner.multi_instance(plan, options=BenchmarkOptions(batch_size=4, steps=5, warmup=1))
    assert not result.partial and result.throughput > 0
    _check_instances([i.to_dict() for i in result.instances])
    # told otherwise: the options' streams win over the one-stream default
    told = Runner(bn_classifier(), backend="openvino", options={"streams": 2}).multi_instance(
        plan, options=BenchmarkOptions(batch_size=4, steps=3, warmup=1)
    )
    assert [i.benchmark.backend["streams_asked"] for i in told.instances if i.benchmark] == [2, 2]


def _bench(*args: str) -> dict[str, Any]:
    argv = ["tfcpu", "bench", *args, "--batch-size", "4", "--steps", "5", "--instances", "2", "--json"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stderr[-3000:], proc.stdout[-3000:])
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


@pytest.mark.slow
def test_bench_cli_runs_openvino_instances_from_a_graph_and_from_an_ir(tmp_path: Path) -> None:
    from tfcpu.graph.openvino_ir import from_ov_model
    from tfcpu.runtime.backends._openvino_util import convert_graph

    model = bn_classifier()
    pb = tmp_path / "net.pb"
    model.save(pb)
    _check_instances(_bench(str(pb), "--backend", "openvino")["instances"])
    xml = tmp_path / "net.xml"
    from_ov_model(convert_graph(model), inputs=model.inputs, outputs=model.outputs, source="net").save(xml)
    _check_instances(_bench(str(xml))["instances"])  # an IR runs on openvino by itself
