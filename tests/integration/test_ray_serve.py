"""tfcpu.ray.serve on a local Ray cluster started by this module (2 CPUs, like this machine).

One deployment serves the whole module (Ray and two TensorFlow replicas take a while to start on
2 cores): concurrent HTTP clients on both protocols, each with its own rows checked against the
reference maths; the replicas' own report of their CPUs and of merged batches.
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from tests.graphs import dense_softmax, dense_softmax_reference
from tfcpu.plan import InstancePlan
from tfcpu.ray import ServeDeployment, serve

pytestmark = pytest.mark.slow

NAME = "dense"
CLIENTS = 12
REQUESTS = 36


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def deployment(ray_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeDeployment]:
    from ray import serve as ray_serve

    locks = tmp_path_factory.mktemp("slots")
    dep = None
    try:
        dep = serve(
            dense_softmax(),
            name=NAME,
            cores_per_instance=1,
            max_batch_size=16,
            batch_wait_timeout_s=0.25,  # wide, so concurrent requests surely meet in one batch
            port=free_port(),
            lock_dir=str(locks),
        )
        yield dep
    finally:
        if dep is not None:
            dep.shutdown()
        ray_serve.shutdown()


def test_metadata_and_health(deployment: ServeDeployment) -> None:
    assert deployment.url.startswith("http://127.0.0.1:")
    assert deployment.replicas == 2
    assert call(f"{deployment.url}/v2/health/ready") == (200, {"ready": True})
    status, meta = call(f"{deployment.url}/v2/models/{NAME}")
    assert status == 200
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert meta["outputs"] == [{"name": "probs", "datatype": "FP32", "shape": [-1, 3]}]
    status, body = call(f"{deployment.url}/v1/models/{NAME}")
    assert status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"
    assert call(f"{deployment.url}/v2/models/other")[0] == 404


def request_for(i: int, x: np.ndarray) -> tuple[str, dict[str, Any]]:
    """Request ``i`` in one of three wire forms: KServe v2, TF Serving rows, TF Serving columns."""
    form = i % 3
    if form == 0:
        path = f"/v2/models/{NAME}/infer"
        return path, {"id": f"r{i}", "inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                                                 "data": x.reshape(-1).tolist()}]}  # fmt: skip
    if form == 1:
        return f"/v1/models/{NAME}:predict", {"instances": x.tolist()}
    return f"/v1/models/{NAME}:predict", {"inputs": {"x": x.tolist()}}


def answer_of(i: int, body: dict[str, Any]) -> np.ndarray:
    form = i % 3
    if form == 0:
        assert body["id"] == f"r{i}" and body["model_name"] == NAME
        (out,) = body["outputs"]
        assert out["name"] == "probs" and out["datatype"] == "FP32"
        return np.asarray(out["data"], np.float32).reshape(out["shape"])
    return np.asarray(body["predictions" if form == 1 else "outputs"], np.float32)


def test_concurrent_clients_each_get_their_own_rows_and_replicas_are_pinned_apart(
    deployment: ServeDeployment,
) -> None:
    rng = np.random.default_rng(26)
    inputs = [rng.standard_normal((1 + i % 3, 4)).astype(np.float32) * 3 for i in range(REQUESTS)]
    start = threading.Barrier(CLIENTS)

    def one(i: int) -> tuple[int, int, dict[str, Any]]:
        path, body = request_for(i, inputs[i])
        if i < CLIENTS:
            start.wait(timeout=60)  # the first wave leaves together
        status, answer = call(deployment.url + path, body)
        return i, status, answer

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(one, range(REQUESTS)))
    for i, status, body in results:
        assert status == 200, body
        got = answer_of(i, body)
        assert got.shape == (inputs[i].shape[0], 3)
        np.testing.assert_allclose(got, dense_softmax_reference(inputs[i]), rtol=1e-5, atol=1e-6)

    # Python callers through the handle get the same batching and maths.
    x = rng.standard_normal((5, 4)).astype(np.float32)
    out = deployment.handle.infer.remote({"x": x}).result(timeout_s=120)
    np.testing.assert_allclose(out["probs"], dense_softmax_reference(x), rtol=1e-5, atol=1e-6)

    # A request that does not fit the signature: 400 naming the input; nothing runs.
    wrong = {"inputs": [{"name": "x", "shape": [1, 5], "datatype": "FP32", "data": [0.0] * 5}]}
    status, body = call(f"{deployment.url}/v2/models/{NAME}/infer", wrong)
    assert status == 400 and "'x'" in body["error"]

    stats = deployment.replica_stats(timeout=120)
    assert len(stats) == 2, stats
    plan = InstancePlan.for_topology(cores_per_instance=1, method="sched_setaffinity", memory_binding=False)
    slots = {inst.index: inst.cpus for inst in plan.instances}
    assert len({s.pid for s in stats}) == 2
    assert {s.slot for s in stats} == set(slots)
    for s in stats:
        assert s.pinned and s.cpus == slots[s.slot]  # every thread of the replica's process on its slot's CPUs
    assert not set(stats[0].cpus) & set(stats[1].cpus)

    # Every request was counted once; concurrent requests shared model runs.
    assert sum(s.requests for s in stats) == REQUESTS + 1
    rows = sum(x.shape[0] for x in inputs) + 5  # + the handle call (the warm-up batches are not counted)
    assert sum(s.rows for s in stats) == rows
    assert sum(s.merged_batches for s in stats) >= 1
    assert sum(s.batches for s in stats) < REQUESTS + 1
    assert max(s.max_batch_rows for s in stats) <= 16


def test_lazy_imports() -> None:
    import subprocess
    import sys

    code = "import sys, tfcpu, tfcpu.ray; print(sorted(m for m in ('tensorflow', 'ray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
