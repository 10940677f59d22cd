"""Faults in the pinned launch paths: affinity refused, numactl refused, Ctrl-C during ``tfcpu launch``.

(Killed and hung instances and Ctrl-C during ``run_instances`` are in test_multi_instance.py;
numactl missing/refused while *probing* the method is in tests/unit/test_plan_pinning.py.)
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil

from tfcpu.plan import InstancePlan
from tfcpu.runtime.launch import launch
from tfcpu.topology import Topology


def _plan(method: str) -> InstancePlan:
    return InstancePlan.for_topology(Topology.detect(), instances=2, method=method)


def test_refused_affinity_fails_that_copy_only() -> None:
    plan = _plan("sched_setaffinity")
    bad = dataclasses.replace(plan.instances[1], cpus=(4095,))  # not a CPU of this machine: EINVAL
    plan = dataclasses.replace(plan, instances=(plan.instances[0], bad))
    result = launch([sys.executable, "-c", "print('ran')"], plan, timeout=120)
    ok, refused = result.copies
    assert ok.ok and not refused.ok and refused.exit_code not in (0, None)
    assert result.exit_code != 0


def test_numactl_refusing_at_launch_is_reported_not_hung(tmp_path: Path) -> None:
    fake = tmp_path / "numactl"
    fake.write_text("#!/bin/sh\necho 'set_mempolicy: Operation not permitted' >&2\nexit 1\n")
    fake.chmod(0o755)
    plan = _plan("taskset")
    insts = tuple(
        dataclasses.replace(i, launch_prefix=(str(fake), f"--physcpubind={i.cpus[0]}", "--")) for i in plan.instances
    )
    plan = dataclasses.replace(plan, instances=insts, method="numactl")
    t0 = time.monotonic()
    result = launch([sys.executable, "-c", "print('ran')"], plan, timeout=60)
    assert time.monotonic() - t0 < 30
    assert [c.exit_code for c in result.copies] == [1, 1] and result.exit_code == 1
    assert any("Operation not permitted" in line for line in result.copies[0].tail)


def _copies(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if marker in " ".join(cmd) and "launch" not in cmd:
            found.append(proc)
    return found


def test_ctrl_c_during_tfcpu_launch_stops_every_copy() -> None:
    marker = f"tfcpu-faults-{uuid.uuid4().hex}"
    sleeper = f"import time; time.sleep(300)  # {marker}"
    proc = subprocess.Popen(
        ["tfcpu", "launch", "--instances", "2", "--", sys.executable, "-c", sleeper],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.time() + 60
    while time.time() < deadline and len(_copies(marker)) < 2:
        time.sleep(0.2)
    assert len(_copies(marker)) == 2
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err and b"interrupted" in err
    time.sleep(0.5)
    assert _copies(marker) == []
