"""tfcpu.ray on a local Ray cluster started by this module (2 CPUs, like this machine).

Each test runs a real ``map_batches`` pipeline; the failure tests use Predictor subclasses
that fail the way a system does (a crashed actor process, an exception on one batch).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from tests.graphs import echo_ids, tiny_convnet
from tfcpu.plan import InstancePlan
from tfcpu.ray import METADATA_COLUMNS, Predictor, predict, predict_with_report, survey
from tfcpu.runtime.runner import Runner
from tfcpu.topology.cpulist import parse_cpulist

ROOT = Path(__file__).resolve().parents[2]
CRASH, RAISE = 137, 42  # ids whose batches fail once


def ids_dataset(ray: Any, n: int, blocks: int = 8) -> Any:
    return ray.data.from_items([{"ids": np.array([i], np.float32)} for i in range(n)], override_num_blocks=blocks)


def column(rows: list[dict[str, Any]], name: str) -> np.ndarray:
    return np.array([np.asarray(r[name]).reshape(-1)[0] for r in rows])


def plan_slots() -> set[tuple[int, ...]]:
    plan = InstancePlan.for_topology(cores_per_instance=1, method="sched_setaffinity", memory_binding=False)
    return {inst.cpus for inst in plan.instances}


def test_survey_sees_this_machine(ray_cluster: Any) -> None:
    (node,) = survey(cores_per_instance=1)
    assert node.ray_cpus == 2.0
    assert {tuple(parse_cpulist(c)) for c in node.cpulists} == plan_slots()


def test_every_row_once_on_pinned_distinct_cpus_equal_to_local_runner(ray_cluster: Any, tmp_path: Path) -> None:
    model = tiny_convnet()
    n = 240
    images = np.random.default_rng(3).standard_normal((n, 8, 8, 1)).astype(np.float32)
    ds = ray_cluster.data.from_items([{"id": i, "image": images[i]} for i in range(n)], override_num_blocks=8)
    out, report = predict_with_report(
        ds,
        model,
        cores_per_instance=1,
        batch_size=16,
        input_columns="image",
        output_prefix="pred_",
        keep_metadata=True,
        lock_dir=str(tmp_path),
    )
    assert set(out.columns()) == {"id", "image", "pred_probs", *METADATA_COLUMNS}
    rows = sorted(out.take_all(), key=lambda r: int(r["id"]))
    assert [int(r["id"]) for r in rows] == list(range(n))  # every row, exactly once

    # Outputs: row by row what a local Runner computes for the same images.
    got = np.stack([r["pred_probs"] for r in rows])
    with Runner(model) as runner:
        want = runner.run(images)["probs:0"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    # Actors: one per slot, each process (all its threads) on its own slot's CPUs.
    slots = plan_slots()
    by_pid: dict[int, set[str]] = {}
    for r in rows:
        by_pid.setdefault(int(r["tfcpu_pid"]), set()).add(str(r["tfcpu_cpus"]))
    assert len(by_pid) == len(slots) == 2
    assert all(len(c) == 1 for c in by_pid.values())
    cpu_sets = [tuple(parse_cpulist(next(iter(c)))) for c in by_pid.values()]
    assert set(cpu_sets) == slots
    assert not set(cpu_sets[0]) & set(cpu_sets[1])
    assert os.getpid() not in by_pid

    assert report.items == n and report.actors == 2 and report.pinned
    (node,) = report.nodes
    assert node.items == n and node.instances == 2
    assert node.batches >= n // 16
    assert node.throughput > 0 and node.busy_seconds > 0


class FailingPredictor(Predictor):
    """Fails like a system does, once each: kills its own process (like an OOM kill) on the batch
    holding CRASH, raises on the batch holding RAISE."""

    def __init__(self, model: Any, **kwargs: Any) -> None:
        self.markers = Path(kwargs["lock_dir"])
        super().__init__(model, **kwargs)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = batch["ids"].reshape(-1)
        crashed, raised = self.markers / "crashed-pid", self.markers / "raised-pid"
        if CRASH in ids and not crashed.exists():
            crashed.write_text(str(os.getpid()))
            os._exit(1)
        if RAISE in ids and not raised.exists():
            raised.write_text(str(os.getpid()))
            raise RuntimeError("poisoned batch")
        return super().__call__(batch)


def test_failed_batches_are_retried_without_losing_or_duplicating_rows(ray_cluster: Any, tmp_path: Path) -> None:
    ctx = ray_cluster.data.DataContext.get_current()
    saved = ctx.actor_task_retry_on_errors
    ctx.actor_task_retry_on_errors = True  # Ray retries a crashed actor's task by default, exceptions on request
    try:
        n = 240
        out = predict(
            ids_dataset(ray_cluster, n),
            echo_ids(),
            cores_per_instance=1,
            batch_size=20,
            metadata=True,
            lock_dir=str(tmp_path),
            predictor_class=FailingPredictor,
        ).materialize()
    finally:
        ctx.actor_task_retry_on_errors = saved
    crashed = int((tmp_path / "crashed-pid").read_text())
    assert (tmp_path / "raised-pid").exists()
    rows = out.take_all()
    ids = column(rows, "ids").astype(int)
    assert sorted(ids.tolist()) == list(range(n))
    np.testing.assert_array_equal(column(rows, "echo").astype(int), ids)
    by_id = {int(np.asarray(r["ids"]).reshape(-1)[0]): r for r in rows}
    assert int(by_id[CRASH]["tfcpu_pid"]) != crashed  # rerun by the restarted actor
    slots = plan_slots()
    assert {tuple(parse_cpulist(str(r["tfcpu_cpus"]))) for r in rows} <= slots
