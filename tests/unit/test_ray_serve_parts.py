"""tfcpu.ray.serve's parts that need neither Ray nor TensorFlow: argument checks, merging and splitting rows."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from tfcpu.errors import ConfigError, PlanError
from tfcpu.ray._serve import ReplicaStats, ServeReplica, _Counters, serve


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, PlanError),  # neither cores_per_instance nor instances_per_node
        ({"cores_per_instance": 1, "instances_per_node": 2}, PlanError),
        ({"cores_per_instance": 1, "name": "no spaces"}, ConfigError),
        ({"cores_per_instance": 1, "max_batch_size": 0}, ConfigError),
        ({"cores_per_instance": 1, "port": 70000}, ConfigError),
        ({"cores_per_instance": 1, "route_prefix": "v2"}, ConfigError),
        ({"cores_per_instance": 1, "replicas": 0}, PlanError),
    ],
)
def test_bad_arguments_fail_before_ray_starts(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        serve("unused.pb", **kwargs)


class FakeReplica(ServeReplica):
    """The batching half of a replica over a model that doubles its input and tags each row with its run."""

    def __init__(self, max_batch_size: int = 8) -> None:  # no Predictor, no Ray
        self.max_batch_size = max_batch_size
        self._counters = _Counters()
        self.runs: list[int] = []

    async def _run_async(self, feeds: Any) -> dict[str, np.ndarray]:
        x = feeds["x:0"]
        self.runs.append(len(x))
        return {"y:0": x * 2, "run:0": np.full(len(x), len(self.runs))}


def test_a_batch_is_merged_per_shape_and_split_back_per_caller() -> None:
    replica = FakeReplica()
    items = [
        {"x:0": np.arange(4, dtype=np.float32).reshape(2, 2)},
        {"x:0": np.arange(3, dtype=np.float32).reshape(1, 3)},  # another width: a run of its own
        {"x:0": np.arange(6, dtype=np.float32).reshape(3, 2) + 10},
    ]
    out = asyncio.run(replica._run_batch(items))
    assert len(out) == 3
    for item, got in zip(items, out, strict=True):
        np.testing.assert_array_equal(got["y:0"], item["x:0"] * 2)
    assert sorted(replica.runs) == [1, 5]
    assert out[0]["run:0"].tolist() == [1, 1] and out[2]["run:0"].tolist() == [1, 1, 1]
    c = replica._counters
    assert (c.batches, c.rows, c.merged_batches, c.max_batch_requests, c.max_batch_rows) == (2, 6, 1, 2, 5)


def test_a_request_larger_than_a_batch_runs_alone() -> None:
    replica = FakeReplica(max_batch_size=2)
    x = np.ones((5, 2), np.float32)
    out = asyncio.run(replica._infer({"x:0": x}))
    np.testing.assert_array_equal(out["y:0"], x * 2)
    assert replica.runs == [5] and replica._counters.requests == 1


def test_replica_stats_round_trip() -> None:
    stats = ReplicaStats("r1", "n", "h", 1, 0, (0, 2), True, 3, 2, 4, 1, 2, 3)
    assert ReplicaStats.from_dict(stats.to_dict()) == stats
