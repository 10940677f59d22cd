"""Pinning-method probe and real pinning on this machine.

The numactl branches run against fake ``numactl`` programs put on PATH (fakes of the system,
not of tfcpu): one refuses ``--membind`` like a container without CAP_SYS_NICE does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tfcpu import InstancePlan, Topology
from tfcpu.plan import clear_probe_cache, probe_pinning

# A numactl stand-in: it logs its arguments, refuses --membind when REFUSE_MEMBIND=1, then strips
# its options and execs the command (it does not pin: the probe only runs `true`).
FAKE_NUMACTL = """#!/bin/sh
for arg in "$@"; do
  case "$arg" in
    --membind=*|-m)
      if [ "$REFUSE_MEMBIND" = 1 ]; then echo "set_mempolicy: Operation not permitted" >&2; exit 1; fi ;;
  esac
done
echo "$@" >> "$NUMACTL_LOG"
while [ $# -gt 0 ]; do
  case "$1" in
    --*=*) shift ;;
    -N|-m|-C) shift 2 ;;
    *) break ;;
  esac
done
exec "$@"
"""

AFFINITY = (
    "import os, sys, json; "
    "print(json.dumps([sorted(os.sched_getaffinity(0)), os.environ.get('OMP_NUM_THREADS'), sys.argv[1:]]))"
)


@pytest.fixture
def fake_numactl(tmp_path: Path) -> Callable[[bool], Path]:
    def make(refuse_membind: bool) -> Path:
        bindir = tmp_path / "bin"
        bindir.mkdir(exist_ok=True)
        tool = bindir / "numactl"
        tool.write_text(FAKE_NUMACTL)
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
        os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ['PATH']}"
        os.environ["REFUSE_MEMBIND"] = "1" if refuse_membind else "0"
        os.environ["NUMACTL_LOG"] = str(tmp_path / "numactl.log")
        clear_probe_cache()
        return tmp_path / "numactl.log"

    return make


def test_numactl_with_membind(fake_numactl: Callable[[bool], Path]) -> None:
    log = fake_numactl(False)
    probe = probe_pinning(Topology.detect())
    assert (probe.method, probe.memory_binding) == ("numactl", True)
    first = Topology.detect().usable_cpu_set[0]
    assert f"--physcpubind={first} --membind=0 true" in log.read_text()


def test_membind_refused_falls_back_to_cpu_binding(fake_numactl: Callable[[bool], Path]) -> None:
    fake_numactl(True)
    probe = probe_pinning(Topology.detect())
    assert (probe.method, probe.memory_binding) == ("numactl-cpubind", False)
    assert any("set_mempolicy: Operation not permitted" in a for a in probe.attempts)
    plan = InstancePlan.for_topology(Topology.detect(), instances=2)
    assert plan.method == "numactl-cpubind" and plan.memory_binding is False
    assert plan.instances[0].launch_prefix[0] == "numactl"
    assert not any("membind" in a for i in plan.instances for a in i.launch_prefix)


def test_memory_binding_false_skips_membind(fake_numactl: Callable[[bool], Path]) -> None:
    log = fake_numactl(False)
    probe = probe_pinning(Topology.detect(), memory_binding=False)
    assert probe.method == "numactl-cpubind"
    assert "membind" not in log.read_text()


def test_no_numactl_uses_taskset_then_sched_setaffinity() -> None:
    without_numactl: Callable[[str], str | None] = lambda name: None if name == "numactl" else shutil.which(name)  # noqa: E731
    probe = probe_pinning(Topology.detect(), which=without_numactl)
    assert probe.method == "taskset" and probe.attempts[0] == "numactl: not installed"
    nothing = probe_pinning(Topology.detect(), which=lambda name: None)
    assert nothing.method == "sched_setaffinity" and nothing.memory_binding is False


def test_refusing_taskset_falls_back() -> None:
    calls: list[list[str]] = []

    def run(argv: Sequence[str]) -> tuple[int, str]:
        calls.append(list(argv))
        return 1, "sched_setaffinity: Invalid argument"

    probe = probe_pinning(Topology.detect(), which=lambda name: f"/usr/bin/{name}", run=run)
    assert probe.method == "sched_setaffinity"
    assert [c[0] for c in calls] == ["/usr/bin/numactl", "/usr/bin/numactl", "/usr/bin/taskset"]


def test_probe_uses_a_cpu_and_node_from_the_allowed_set(topology: Callable[[str], Topology]) -> None:
    topo = dataclasses.replace(topology("xeon_gold_6252_2s"), allowed_cpus=(30, 78))
    seen: list[list[str]] = []

    def run(argv: Sequence[str]) -> tuple[int, str]:
        seen.append(list(argv))
        return 0, ""

    probe = probe_pinning(topo, which=lambda name: name, run=run)
    assert probe.method == "numactl"
    assert seen == [["numactl", "--physcpubind=30", "--membind=1", "true"]]


def test_results_are_cached_per_process() -> None:
    clear_probe_cache()
    topo = Topology.detect()
    assert probe_pinning(topo) is probe_pinning(topo)


def test_captured_topology_is_not_probed(topology: Callable[[str], Topology]) -> None:
    plan = InstancePlan.for_topology(topology("xeon_gold_6252_2s"), instances=2, memory_binding=False)
    assert plan.method == "numactl-cpubind" and not plan.memory_binding
    assert any("not probed" in n for n in plan.notes)


def _run_pinned(argv: list[str]) -> list[object]:
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    result: list[object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_probed_prefix_really_pins_on_this_machine() -> None:
    clear_probe_cache()
    plan = InstancePlan.for_topology(Topology.detect(), instances=2)
    if shutil.which("numactl") is None:
        assert plan.method in ("taskset", "sched_setaffinity")
    for inst in plan.instances:
        if inst.launch_prefix:
            cpus, _omp, _args = _run_pinned(inst.wrap([sys.executable, "-c", AFFINITY]))
            assert cpus == list(inst.cpus)


def test_sched_setaffinity_in_the_child() -> None:
    plan = InstancePlan.for_topology(Topology.detect(), instances=2, method="sched_setaffinity")
    assert all(i.launch_prefix == () for i in plan.instances)
    code = (
        "import json, os, sys; from tfcpu.plan import Instance; "
        "Instance.from_dict(json.loads(sys.argv[1])).pin_current_process(); "
        "print(json.dumps(sorted(os.sched_getaffinity(0))))"
    )
    for inst in plan.instances:
        assert inst.wrap(["x"]) == ["x"]
        out = subprocess.run(
            [sys.executable, "-c", code, json.dumps(inst.to_dict())], capture_output=True, text=True, check=True
        )
        assert json.loads(out.stdout) == list(inst.cpus)


@pytest.mark.parametrize("method", [None, "sched_setaffinity"])
def test_generated_script_runs_pinned_instances(method: str | None, tmp_path: Path) -> None:
    plan = InstancePlan.for_topology(Topology.detect(), instances=2, method=method)
    script = tmp_path / "run.sh"
    script.write_text(plan.to_script([sys.executable, "-c", AFFINITY], shard_arg="--shard"))
    env = {**os.environ, "LOG_DIR": str(tmp_path / "logs")}
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for inst in plan.instances:
        log = (tmp_path / "logs" / f"instance-{inst.index}.log").read_text()
        cpus, omp, args = json.loads(log.strip().splitlines()[-1])
        assert cpus == list(inst.cpus) and omp == str(inst.physical_cores)
        assert args == ["--shard", str(inst.index)]


def test_script_reports_a_failed_instance(tmp_path: Path) -> None:
    plan = InstancePlan.for_topology(Topology.detect(), instances=2, method="taskset")
    script = tmp_path / "run.sh"
    fail_second = "import os, sys; sys.exit(3 if os.environ['TF_NUM_INTRAOP_THREADS'] and sys.argv[-1] == '1' else 0)"
    script.write_text(plan.to_script([sys.executable, "-c", fail_second], shard_arg="{index}"))
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1
