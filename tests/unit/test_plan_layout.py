"""InstancePlan layouts on captured machines: the paper's Appendix A and the rules of Section 7."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import TOPOLOGIES
from tfcpu import InstancePlan, PlanError, Topology
from tfcpu.topology import parse_cpulist

# Appendix A of the white paper, in order: twelve instances of 4 cores on 2 × 24-core sockets.
APPENDIX_A = [
    "0-3,48-51", "4-7,52-55", "8-11,56-59", "12-15,60-63", "16-19,64-67", "20-23,68-71",
    "24-27,72-75", "28-31,76-79", "32-35,80-83", "36-39,84-87", "40-43,88-91", "44-47,92-95",
]  # fmt: skip
# Section 7, "For 4 instances".
SECTION_7_FOUR = ["0-11,48-59", "12-23,60-71", "24-35,72-83", "36-47,84-95"]
CAPTURES = sorted(p.stem for p in TOPOLOGIES.glob("*.json"))


def test_appendix_a_twelve_instances(topology: Callable[[str], Topology]) -> None:
    plan = InstancePlan.for_topology(topology("xeon_gold_6252_2s"), cores_per_instance=4)
    assert [i.cpulist for i in plan.instances] == APPENDIX_A
    assert [i.numa_node for i in plan.instances] == [0] * 6 + [1] * 6
    assert [i.index for i in plan.instances] == list(range(12))
    assert plan.unused_cpus == ()
    for inst in plan.instances:
        assert inst.physical_cores == inst.intra_op_threads == 4 and inst.inter_op_threads == 1
        env = inst.env
        assert env["OMP_NUM_THREADS"] == env["TF_NUM_INTRAOP_THREADS"] == "4"
        assert env["TF_NUM_INTEROP_THREADS"] == "1" and env["KMP_BLOCKTIME"] == "1"
        assert env["KMP_AFFINITY"] == f"granularity=thread,proclist=[{APPENDIX_A[inst.index]}],explicit"


def test_section_7_four_instances_and_one_per_socket(topology: Callable[[str], Topology]) -> None:
    topo = topology("xeon_gold_6252_2s")
    four = InstancePlan.for_topology(topo, cores_per_instance=12)
    assert [i.cpulist for i in four.instances] == SECTION_7_FOUR
    assert four == InstancePlan.for_topology(topo, instances=4)
    two = InstancePlan.for_topology(topo, instances=2, method="numactl")
    assert [(i.socket, i.numa_node, i.cpulist) for i in two.instances] == [
        (0, 0, "0-23,48-71"),
        (1, 1, "24-47,72-95"),
    ]
    # an instance that owns its whole node gets the paper's short numactl form
    assert [i.launch_prefix for i in two.instances] == [
        ("numactl", "-N", "0", "-m", "0"),
        ("numactl", "-N", "1", "-m", "1"),
    ]
    assert two.memory_binding is True


def test_script_matches_the_paper_in_substance(topology: Callable[[str], Topology], tmp_path: Path) -> None:
    plan = InstancePlan.for_topology(topology("xeon_gold_6252_2s"), cores_per_instance=4, method="numactl")
    script = plan.to_script(["python", "eval_image_classifier_inference.py"], shard_arg="-d subset{n}/")
    launches = [line for line in script.splitlines() if line.startswith("env ")]
    assert len(launches) == 12
    for index, (line, procs) in enumerate(zip(launches, APPENDIX_A, strict=True)):
        node = 0 if index < 6 else 1
        assert f"numactl --physcpubind={procs} --membind={node} python eval_image_classifier_inference.py" in line
        assert f"proclist=[{procs}],explicit" in line and "OMP_NUM_THREADS=4" in line
        assert line.split(" python eval_image_classifier_inference.py ")[1].startswith(f"-d subset{index + 1}/ ")
    path = tmp_path / "multisocket.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
    assert script.startswith("#!/usr/bin/env bash") and 'wait "$pid"' in script


def _check_rules(topo: Topology, plan: InstancePlan, smt: bool) -> None:
    usable = set(topo.usable_cpu_set)
    seen: set[int] = set()
    for inst in plan.instances:
        cpus = set(inst.cpus)
        assert cpus <= usable, "only usable CPUs"
        assert not cpus & seen, "instances are disjoint"
        seen |= cpus
        cores = {topo.core_of(c) for c in cpus}
        assert len(cores) == inst.physical_cores == inst.intra_op_threads
        assert len({c.socket for c in cores}) == 1, "never spans sockets"
        assert len({c.numa_node for c in cores}) == 1, "never spans NUMA nodes"
        assert len({c.kind for c in cores}) == 1, "never mixes P and E cores"
        for core in cores:
            allowed = {c for c in core.cpus if c in usable}
            if smt:
                assert allowed <= cpus, "SMT siblings go to the same instance"
            else:
                assert len(allowed & cpus) == 1, "smt=False uses one CPU per core"
        node = next(n for n in topo.numa_nodes if n.id == inst.numa_node)
        assert cpus <= set(node.cpus)
    assert plan.total_threads <= topo.usable_cpus, "never more threads than the CPU budget"
    assert set(plan.unused_cpus) == usable - seen, "leftovers are listed"
    assert len({i.physical_cores for i in plan.instances}) == 1, "equal sizes"


@pytest.mark.parametrize("name", CAPTURES)
@pytest.mark.parametrize("smt", [True, False])
def test_rules_hold_for_every_valid_request(name: str, smt: bool, topology: Callable[[str], Topology]) -> None:
    topo = topology(name)
    budget = topo.usable_physical_cores
    for n in range(1, budget + 1):
        plan = InstancePlan.for_topology(topo, instances=n, smt=smt, method="taskset")
        assert len(plan.instances) == n
        _check_rules(topo, plan, smt)
    largest = max(
        sum(1 for c in topo.usable_cores if (c.numa_node, c.socket, c.kind) == key)
        for key in {(c.numa_node, c.socket, c.kind) for c in topo.usable_cores}
    )
    for k in range(1, min(largest, budget) + 1):
        plan = InstancePlan.for_topology(topo, cores_per_instance=k, smt=smt, method="taskset")
        assert plan.instances and all(i.physical_cores == k for i in plan.instances)
        _check_rules(topo, plan, smt)


def test_epyc_instances_stay_in_their_l3(topology: Callable[[str], Topology]) -> None:
    topo = topology("epyc_8_l3")
    l3_of = {cpu: i for i, dom in enumerate(topo.l3_domains) for cpu in dom}
    plan = InstancePlan.for_topology(topo, cores_per_instance=4)
    assert len(plan.instances) == 8
    assert all(len({l3_of[c] for c in i.cpus}) == 1 for i in plan.instances)
    three = InstancePlan.for_topology(topo, cores_per_instance=3)
    assert all(len({l3_of[c] for c in i.cpus}) == 1 for i in three.instances)
    assert len(three.unused_cpus) == 16 and any("L3" in n for n in three.notes)
    eight = InstancePlan.for_topology(topo, cores_per_instance=8)
    # larger than one L3 domain: made of whole domains
    for inst in eight.instances:
        doms = {l3_of[c] for c in inst.cpus}
        assert len(doms) == 2 and set(inst.cpus) == {c for d in doms for c in topo.l3_domains[d]}


def test_hybrid_never_mixes_and_prefers_p_cores(topology: Callable[[str], Topology]) -> None:
    topo = topology("hybrid_alder_lake")
    two = InstancePlan.for_topology(topo, instances=2)
    assert [i.kind for i in two.instances] == ["P", "P"]
    assert [i.cpulist for i in two.instances] == ["0-7", "8-15"]
    pairs = InstancePlan.for_topology(topo, cores_per_instance=2)
    assert [i.kind for i in pairs.instances] == ["P"] * 4 + ["E"] * 2
    with pytest.raises(PlanError):
        InstancePlan.for_topology(topo, cores_per_instance=9)


def test_container_quota_caps_threads(topology: Callable[[str], Topology]) -> None:
    topo = topology("container_quota")
    plan = InstancePlan.for_topology(topo, instances=2)
    assert [i.cpus for i in plan.instances] == [(0, 16), (1, 17)]
    assert plan.total_threads == 2 and plan.unused_cpus == (2, 3, 18, 19)
    assert any("quota" in n for n in plan.notes)
    one = InstancePlan.for_topology(topo, cores_per_instance=1)
    assert len(one.instances) == 2
    for request in ({"instances": 3}, {"cores_per_instance": 3}):
        with pytest.raises(PlanError) as info:
            InstancePlan.for_topology(topo, **request)  # type: ignore[arg-type]
        assert info.value.hint


def test_smt_off_and_interleaved_numbering(topology: Callable[[str], Topology]) -> None:
    smt_off = InstancePlan.for_topology(topology("smt_off"), cores_per_instance=2)
    assert [i.cpulist for i in smt_off.instances] == ["0-1", "2-3", "4-5", "6-7"]
    inter = InstancePlan.for_topology(topology("interleaved"), cores_per_instance=2)
    assert [i.cpus for i in inter.instances] == [(0, 2, 8, 10), (4, 6, 12, 14), (1, 3, 9, 11), (5, 7, 13, 15)]
    assert [i.numa_node for i in inter.instances] == [0, 0, 1, 1]


def test_this_machine_capture_two_instances(topology: Callable[[str], Topology]) -> None:
    plan = InstancePlan.for_topology(topology("this_machine"), instances=2)
    assert [i.cpus for i in plan.instances] == [(0,), (1,)]


def test_smt_false_leaves_siblings_listed(topology: Callable[[str], Topology]) -> None:
    plan = InstancePlan.for_topology(topology("xeon_gold_6252_2s"), instances=4, smt=False)
    assert [i.cpulist for i in plan.instances] == ["0-11", "12-23", "24-35", "36-47"]
    assert plan.unused_cpus == tuple(range(48, 96))
    assert any("smt=False" in n for n in plan.notes)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"instances": 0}, "positive"),
        ({"instances": 49}, "do not fit"),
        ({"cores_per_instance": 25}, "larger than any NUMA node"),
        ({"cores_per_instance": 0}, "positive"),
        ({"instances": 2, "cores_per_instance": 4}, "exactly one"),
        ({}, "exactly one"),
        ({"instances": 2, "method": "numactll"}, "did you mean 'numactl'"),
    ],
)
def test_invalid_requests(kwargs: dict[str, object], fragment: str, topology: Callable[[str], Topology]) -> None:
    with pytest.raises(PlanError) as info:
        InstancePlan.for_topology(topology("xeon_gold_6252_2s"), **kwargs)  # type: ignore[arg-type]
    assert fragment in str(info.value)


def test_json_round_trip_and_schema(topology: Callable[[str], Topology]) -> None:
    plan = InstancePlan.for_topology(topology("xeon_gold_6252_2s"), cores_per_instance=12, method="taskset")
    data = json.loads(plan.to_json())
    assert {"instances", "method", "memory_binding", "unused_cpus"} <= set(data)
    first = data["instances"][0]
    assert {
        "index", "cpus", "physical_cores", "numa_node", "intra_op_threads", "inter_op_threads", "env", "launch_prefix"
    } <= set(first)  # fmt: skip
    assert first["launch_prefix"] == ["taskset", "-c", "0-11,48-59"]
    assert parse_cpulist("0-11,48-59") == tuple(first["cpus"])
    assert InstancePlan.from_json(plan.to_json()) == plan


def test_renderings(topology: Callable[[str], Topology]) -> None:
    plan = InstancePlan.for_topology(topology("container_quota"), instances=2, method="sched_setaffinity")
    console = Console(record=True, width=160)
    console.print(plan)
    text = console.export_text()
    assert "sched_setaffinity" in text and "0,16" in text and "unused CPUs: 2-3,18-19" in text
    assert "<table" in plan._repr_html_()


def test_session_config_and_custom_threads(topology: Callable[[str], Topology]) -> None:
    from tfcpu import SessionConfig

    base = SessionConfig(intra_op=1).with_inter_op_threads(2).with_onednn(True).with_env(TF_CPP_MIN_LOG_LEVEL="3")
    plan = InstancePlan.for_topology(topology("xeon_gold_6252_2s"), cores_per_instance=4, config=base)
    inst = plan.instances[1]
    assert inst.inter_op_threads == 2 and inst.env["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert inst.env["TF_CPP_MIN_LOG_LEVEL"] == "3"
    config = plan.session_config(1)
    assert config.intra_op_threads == 4 and config.env() == inst.env
    defaults = plan.with_threads(0, 0)
    assert all(i.intra_op_threads == 0 for i in defaults.instances)
    assert "TF_NUM_INTRAOP_THREADS" not in defaults.instances[0].env
    assert defaults.instances[0].cpus == inst.cpus[:0] + plan.instances[0].cpus


def test_epyc_instance_counts_round_to_whole_l3_domains(topology: Callable[[str], Topology]) -> None:
    topo = topology("epyc_8_l3")
    l3_of = {cpu: i for i, dom in enumerate(topo.l3_domains) for cpu in dom}
    for n, size in ((2, 16), (3, 8), (5, 4), (8, 4), (16, 2)):
        plan = InstancePlan.for_topology(topo, instances=n)
        assert len(plan.instances) == n and plan.cores_per_instance == size
        owners: dict[int, set[int]] = {}
        for inst in plan.instances:
            for cpu in inst.cpus:
                owners.setdefault(l3_of[cpu], set()).add(inst.index)
        if size >= 4:
            assert all(len(o) == 1 for o in owners.values()), "no two instances share an L3 domain"
