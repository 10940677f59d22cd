"""``tfcpu serve`` as a user runs it: a real process, SIGTERM drain, pinned workers that die, a real architecture.

Servers bind 127.0.0.1; every request loop is bounded in count and time; every process started here
is ended in ``finally``.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.graphs import dense_softmax, dense_softmax_reference


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready within {timeout} s")


def _kserve(x: np.ndarray) -> dict[str, object]:
    return {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}


@pytest.mark.slow
def test_sigterm_answers_what_is_in_flight_then_refuses_and_exits(tmp_path: Path) -> None:
    pb = tmp_path / "dense.pb"
    dense_softmax().save(pb)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # requests wait 2 s in the batcher, so SIGTERM arrives while they are in flight
    argv = ["tfcpu", "serve", str(pb), "--name", "dense", "--port", str(port), "--max-delay-ms", "2000"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_ready(url, proc)
        xs = [np.full((1, 4), float(i), np.float32) for i in range(4)]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(httpx.post, f"{url}/v2/models/dense/infer", json=_kserve(x), timeout=60) for x in xs]
            time.sleep(0.7)
            proc.send_signal(signal.SIGTERM)
            answers = [f.result(timeout=60) for f in futures]
        for x, answer in zip(xs, answers, strict=True):
            assert answer.status_code == 200, answer.text
            np.testing.assert_allclose(np.reshape(answer.json()["outputs"][0]["data"], (1, 3)),
                                       dense_softmax_reference(x), atol=1e-5)  # fmt: skip
        code = proc.wait(timeout=30)
        assert code in (0, 143), proc.stderr.read() if proc.stderr else ""
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/v2/health/live", timeout=2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _heavy_model() -> object:
    """Eight 768-wide MatMul+Relu layers with random weights: a batch takes long enough to be killed mid-way."""
    import tensorflow as tf

    from tfcpu.graph.load import load

    rng = np.random.default_rng(0)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 768], name="x")
        h = x
        for i in range(8):
            w = tf.constant(rng.normal(0, 0.04, size=(768, 768)).astype(np.float32))
            b = tf.constant(rng.normal(0, 0.1, size=(768,)).astype(np.float32))
            h = tf.nn.relu(tf.nn.bias_add(tf.matmul(h, w), b), name=f"layer{i}")
        tf.identity(h, name="y")
    return load(g.as_graph_def())


@pytest.mark.slow
def test_a_killed_worker_is_restarted_and_its_requests_get_the_cause() -> None:
    import psutil

    from tfcpu.plan import InstancePlan
    from tfcpu.runtime.pool import Pool
    from tfcpu.serve import ServeOptions, start

    model = _heavy_model()
    pool = Pool(model, InstancePlan.for_topology(instances=2))  # type: ignore[arg-type]
    server = start(model, ServeOptions(name="heavy", port=0, max_batch_size=64, max_delay_ms=2), executor=pool)  # type: ignore[arg-type]
    try:
        x = np.random.default_rng(1).normal(size=(64, 768)).astype(np.float32)
        body = {"inputs": [{"name": "x", "shape": [64, 768], "datatype": "FP32", "data": x.ravel().tolist()}]}
        url = f"{server.url}/v2/models/heavy/infer"
        victim = pool.pids()[0]
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            futures = [ex.submit(httpx.post, url, json=body, timeout=120) for _ in range(16)]
            deadline = time.monotonic() + 60  # kill it while it holds a batch (the machine may be slow)
            while pool.stats().instances[0].in_flight == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert pool.stats().instances[0].in_flight > 0
            psutil.Process(victim).kill()
            answers = [f.result(timeout=180) for f in futures]
        codes = [a.status_code for a in answers]
        assert set(codes) <= {200, 500}, codes
        failed = [a.json()["error"] for a in answers if a.status_code == 500]
        assert failed, "the kill should have hit at least one batch in flight"
        assert all("instance 0" in text and "SIGKILL" in text for text in failed), failed
        # the pool started instance 0 again: new requests are answered, by both instances
        deadline = time.monotonic() + 120
        while pool.pids()[0] in (0, victim) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pool.pids()[0] not in (0, victim)
        for _ in range(4):
            assert httpx.post(url, json=body, timeout=120).status_code == 200
        assert pool.stats().instances[0].restarts >= 1
    finally:
        server.stop()
    assert pool.closed
    assert not [p for p in pool_pids_alive(victim)]


def pool_pids_alive(*pids: int) -> list[int]:
    import psutil

    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


@pytest.mark.slow
def test_resnet50_served_answers_like_the_runner() -> None:
    import tfcpu
    from tfcpu.runtime.runner import Runner
    from tfcpu.serve import ServeOptions, start

    model = tfcpu.load("keras:ResNet50")
    server = start(model, ServeOptions(name="resnet50", port=0, max_batch_size=4, max_delay_ms=50))
    try:
        rng = np.random.default_rng(0)
        images = [rng.uniform(0, 255, size=(1, 224, 224, 3)).astype(np.float32) for _ in range(3)]
        url = f"{server.url}/v1/models/resnet50:predict"
        with concurrent.futures.ThreadPoolExecutor(3) as ex:
            answers = list(ex.map(lambda im: httpx.post(url, json={"instances": im.tolist()}, timeout=300), images))
        with Runner(model) as runner:
            for image, answer in zip(images, answers, strict=True):
                expected = runner.run(image)[model.output_names[0]]
                np.testing.assert_allclose(answer.json()["predictions"], expected, rtol=1e-4, atol=1e-5)
    finally:
        server.stop()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
