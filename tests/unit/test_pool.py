"""tfcpu.Pool on tiny graphs: settings reach every worker, order, bounded in-flight work, asyncio, stats, no leftovers.

The workers are real pinned processes that import TensorFlow; one pool is shared by the tests that
only use it, the config tests start their own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

from tests.children import marked_processes
from tests.graphs import dense_softmax, dense_softmax_reference, echo_ids, two_inputs
from tfcpu.errors import ConfigError, RunnerError
from tfcpu.graph.model import NEEDS_ONEDNN
from tfcpu.plan import InstancePlan
from tfcpu.runtime.pool import MARKER, Pool, PoolStats
from tfcpu.session.config import SessionConfig


def _plan() -> InstancePlan:
    return InstancePlan.for_topology(instances=2)


def _processes(pool_id: str) -> list[psutil.Process]:
    """Every process on the machine whose environment carries this pool's marker."""
    return marked_processes(MARKER, pool_id)


def _segments(pool_id: str) -> list[str]:
    pid, seq = pool_id.split("-")
    return [p.name for p in Path("/dev/shm").iterdir() if p.name.startswith(f"tfp{pid}_{pid}_{seq}_")]


@pytest.fixture(scope="module")
def echo_pool() -> Iterator[Pool]:
    with Pool(echo_ids(), _plan()) as pool:
        yield pool


def test_whole_config_reaches_every_worker() -> None:
    plan = _plan()
    config = (
        SessionConfig.for_topology()
        .with_onednn(False)
        .with_kmp(blocktime=7, settings=None)
        .with_frozen_weights(True)
        .with_env(TFCPU_POOL_PROBE="from-the-config")
    )
    with Pool(dense_softmax(), plan, config) as pool:
        reports = pool.reports
        assert [r.index for r in reports] == [0, 1]
        for inst, rep in zip(plan.instances, reports, strict=True):
            env = rep.env
            assert rep.affinity == tuple(inst.cpus)  # read in the child
            assert rep.method == plan.method
            assert rep.threads == (inst.intra_op_threads, inst.inter_op_threads)
            assert env["TF_NUM_INTRAOP_THREADS"] == str(inst.intra_op_threads)
            assert env["TF_NUM_INTEROP_THREADS"] == str(inst.inter_op_threads)
            assert env["OMP_NUM_THREADS"] == str(inst.physical_cores)
            assert env["KMP_AFFINITY"] == inst.env["KMP_AFFINITY"]
            assert env["KMP_BLOCKTIME"] == "7"
            assert "KMP_SETTINGS" not in env
            assert env["TF_ENABLE_ONEDNN_OPTS"] == "0"
            assert env["TF_ONEDNN_ASSUME_FROZEN_WEIGHTS"] == "1"
            assert env["TFCPU_POOL_PROBE"] == "from-the-config"
            assert env[MARKER] == pool.id
            # the config the child applied is the whole one, and the backend ran with it
            assert rep.config["onednn_opts"] is False
            assert rep.config["frozen_weights"] is True
            assert rep.backend["onednn"] is False
            assert (rep.backend["intra_op_threads"], rep.backend["inter_op_threads"]) == rep.threads
        x = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
        got = pool.submit(x).result(timeout=120)["probs:0"]
        np.testing.assert_allclose(got, dense_softmax_reference(x), rtol=1e-4, atol=1e-6)


def test_runner_pool_carries_the_runner_config_and_int8_gets_onednn() -> None:
    import tfcpu

    model = dense_softmax()
    int8_like = dataclasses.replace(model, metadata={NEEDS_ONEDNN: True})  # what the Quantizer marks
    os.environ.pop("TF_ENABLE_ONEDNN_OPTS", None)
    runner = tfcpu.Runner(int8_like, SessionConfig.for_topology().with_kmp(blocktime=3))
    with runner.pool(_plan()) as pool:
        assert isinstance(pool, tfcpu.Pool)
        for rep in pool.reports:
            assert rep.env["TF_ENABLE_ONEDNN_OPTS"] == "1"  # the precision policy's decision
            assert rep.env["KMP_BLOCKTIME"] == "3"  # the Runner's config
            assert rep.backend["onednn"] is True


def test_map_keeps_input_order(echo_pool: Pool) -> None:
    sizes = [1, 3, 2, 5, 4] * 8
    batches = []
    start = 0
    for n in sizes:
        batches.append(np.arange(start, start + n, dtype=np.float32).reshape(-1, 1))
        start += n
    outputs = list(echo_pool.map(batches))
    assert len(outputs) == len(batches)
    for batch, out in zip(batches, outputs, strict=True):
        np.testing.assert_array_equal(out["echo:0"], batch)
    unordered = list(echo_pool.map(batches, ordered=False))
    got = np.sort(np.concatenate([o["echo:0"] for o in unordered]).ravel())
    np.testing.assert_array_equal(got, np.arange(start, dtype=np.float32))


def test_map_bounds_the_work_in_flight(echo_pool: Pool) -> None:
    pulled = 0

    def stream() -> Iterator[np.ndarray]:
        nonlocal pulled
        for i in range(60):
            pulled += 1
            yield np.full((2, 1), i, np.float32)

    ahead = []
    for k, out in enumerate(echo_pool.map(stream(), window=3)):
        assert out["echo:0"][0, 0] == k
        ahead.append(pulled - k)
    assert max(ahead) <= 3  # never more than the window read ahead of what was yielded
    assert pulled == 60


def test_submit_returns_futures_and_checks_feeds(echo_pool: Pool) -> None:
    futures = [echo_pool.submit({"ids": np.full((3, 1), i, np.float32)}) for i in range(10)]
    for i, fut in enumerate(futures):
        np.testing.assert_array_equal(fut.result(timeout=60)["echo:0"], np.full((3, 1), i, np.float32))
    with pytest.raises(ConfigError):
        echo_pool.submit(np.zeros((2, 5), np.float32))  # wrong shape: refused before it is queued


def test_asyncio_variant(echo_pool: Pool) -> None:
    async def batches() -> AsyncIterator[np.ndarray]:
        for i in range(12):
            await asyncio.sleep(0)
            yield np.full((1, 1), i, np.float32)

    async def main() -> tuple[list[float], np.ndarray]:
        one = await echo_pool.asubmit(np.full((2, 1), 42.0, np.float32))
        seen = [float(out["echo:0"][0, 0]) async for out in echo_pool.amap(batches())]
        return seen, one["echo:0"]

    seen, one = asyncio.run(main())
    assert seen == [float(i) for i in range(12)]
    np.testing.assert_array_equal(one, np.full((2, 1), 42.0, np.float32))


def test_stats_render_and_round_trip_json(echo_pool: Pool) -> None:
    list(echo_pool.map([np.zeros((4, 1), np.float32)] * 10))
    stats = echo_pool.stats()
    assert stats.batches >= 10 and stats.items >= 40
    assert len(stats.instances) == 2
    assert sum(i.batches for i in stats.instances) == stats.batches
    assert stats.latency_ms.count == stats.batches and stats.latency_ms.p50 > 0
    again = PoolStats.from_json(json.loads(json.dumps(stats.to_json())))
    assert again == stats
    assert json.loads(stats.to_json())["items"] == stats.items
    text = str(stats)
    assert "echo_ids" in text and "p99 ms" in text
    assert "<table" in stats._repr_html_()


def test_two_inputs_and_several_outputs_cross_shared_memory() -> None:
    a = np.random.default_rng(3).standard_normal((7, 3)).astype(np.float32)
    n = np.arange(7, dtype=np.int32)
    with Pool(two_inputs(), InstancePlan.for_topology(instances=1), slots=1) as pool:
        out = pool.submit({"a": a, "n": n}).result(timeout=120)["out:0"]
        np.testing.assert_allclose(out, a * n[:, None])
        big = np.ones((20000, 3), np.float32)  # larger than the first segments: they grow
        np.testing.assert_allclose(pool.submit([big, np.full(20000, 2, np.int32)]).result(timeout=120)["out:0"], 2.0)


def test_close_leaves_no_process_segment_or_temp_dir() -> None:
    pool = Pool(echo_ids(), _plan())
    work = pool._core.work
    assert work is not None and work.is_dir()
    assert len(_processes(pool.id)) >= 2
    list(pool.map([np.zeros((2, 1), np.float32)] * 5))
    assert _segments(pool.id)
    pool.close()
    assert _processes(pool.id) == []
    assert _segments(pool.id) == []
    assert not work.exists()
    with pytest.raises(RunnerError, match="closed"):
        pool.submit(np.zeros((1, 1), np.float32))
    pool.close()  # twice is fine


def test_invalid_arguments_refused_before_any_process() -> None:
    with pytest.raises(ConfigError, match="slots"):
        Pool(echo_ids(), _plan(), slots=0)
    with pytest.raises(ConfigError, match="backend"):
        Pool(echo_ids(), _plan(), backend="tensorflwo")
