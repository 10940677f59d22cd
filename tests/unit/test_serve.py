"""``tfcpu.serve``: both REST protocols end to end on a real server bound to 127.0.0.1.

Each test starts the server on a background thread (`tfcpu.serve.start`, port 0), talks to it with
httpx (or tritonclient) over loopback, and checks the answers against the model's own reference
maths. Every request loop is bounded and every server is stopped in the test.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
from collections.abc import Iterator, Mapping

import httpx
import numpy as np
import pytest

from tests.graphs import dense_softmax, dense_softmax_reference, two_inputs
from tfcpu.serve import RunnerExecutor, ServeOptions, start


@pytest.fixture(scope="module")
def dense() -> Iterator[object]:
    server = start(dense_softmax(), ServeOptions(name="dense", port=0, max_delay_ms=20, max_body_bytes=64 * 1024))
    try:
        yield server
    finally:
        server.stop()


def _kserve(x: np.ndarray, name: str = "x", datatype: str = "FP32") -> dict[str, object]:
    return {"inputs": [{"name": name, "shape": list(x.shape), "datatype": datatype, "data": x.ravel().tolist()}]}


def test_every_endpoint_of_both_protocols(dense) -> None:  # type: ignore[no-untyped-def]
    base = dense.url
    with httpx.Client(base_url=base, timeout=30) as c:
        assert c.get("/v2/health/live").json() == {"live": True}
        assert c.get("/v2/health/ready").status_code == 200
        assert c.get("/v2").json()["name"] == "tfcpu"
        meta = c.get("/v2/models/dense").json()
        assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
        assert meta["outputs"] == [{"name": "probs", "datatype": "FP32", "shape": [-1, 3]}]
        assert c.get("/v2/models/dense/ready").json() == {"name": "dense", "ready": True}
        assert c.get("/v2/models/other").status_code == 404

        x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
        body = {**_kserve(x), "id": "req-7", "outputs": [{"name": "probs"}]}
        answer = c.post("/v2/models/dense/infer", json=body).json()
        assert answer["id"] == "req-7" and answer["model_name"] == "dense"
        (out,) = answer["outputs"]
        assert out["name"] == "probs" and out["shape"] == [3, 3] and out["datatype"] == "FP32"
        np.testing.assert_allclose(np.reshape(out["data"], (3, 3)), dense_softmax_reference(x), atol=1e-5)

        status = c.get("/v1/models/dense").json()["model_version_status"][0]
        assert status["state"] == "AVAILABLE"
        rows = c.post("/v1/models/dense:predict", json={"instances": x.tolist()}).json()["predictions"]
        np.testing.assert_allclose(rows, dense_softmax_reference(x), atol=1e-5)
        columnar = c.post("/v1/models/dense:predict", json={"inputs": {"x": x.tolist()}}).json()["outputs"]
        np.testing.assert_allclose(columnar, dense_softmax_reference(x), atol=1e-5)
        assert c.post("/v1/models/dense:classify", json={}).status_code == 404

        metrics = c.get("/metrics").text
        for name in ("tfcpu_requests_total", "tfcpu_queue_depth", "tfcpu_batch_size_bucket",
                     "tfcpu_request_latency_seconds_bucket", 'tfcpu_instance_batches_total{instance="0"'):  # fmt: skip
            assert name in metrics, name


_SHORT = {"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1, 2]}


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/v2/models/dense/infer", b"{not json", 400, "not JSON"),
        ("/v2/models/dense/infer", json.dumps(_kserve(np.zeros((1, 4)), name="y")).encode(), 400, "unknown input 'y'"),
        ("/v2/models/dense/infer", json.dumps(_kserve(np.zeros((1, 5)))).encode(), 400, "input 'x'"),
        ("/v2/models/dense/infer", json.dumps(_kserve(np.zeros((1, 4)), datatype="FP99")).encode(), 400, "FP99"),
        ("/v2/models/dense/infer", json.dumps({"inputs": [_SHORT]}).encode(), 400, "does not fit"),
        ("/v1/models/dense:predict", json.dumps({"instances": [["a", "b", "c", "d"]]}).encode(), 400, "input 'x'"),
        ("/v1/models/dense:predict", json.dumps({"instances": [[1, 2, 3, 4]], "inputs": {}}).encode(), 400, "either"),
        ("/v1/models/dense:predict", b"[" * 70_000, 413, "limit"),
    ],
)
def test_bad_requests_are_refused_naming_what_is_wrong(dense, path, body, status, words):  # type: ignore[no-untyped-def]
    response = httpx.post(dense.url + path, content=body, timeout=30)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


def test_concurrent_clients_get_their_own_rows_from_merged_batches(dense) -> None:  # type: ignore[no-untyped-def]
    before = dense.state.batcher.stats.batches
    sizes = [1, 3, 2, 1, 4, 1, 2, 3] * 6

    def one(i: int) -> bool:
        x = np.full((sizes[i], 4), float(i), np.float32) + np.arange(4, dtype=np.float32)
        answer = httpx.post(f"{dense.url}/v2/models/dense/infer", json=_kserve(x), timeout=60).json()
        got = np.reshape(answer["outputs"][0]["data"], (sizes[i], 3))
        return bool(np.allclose(got, dense_softmax_reference(x), atol=1e-5))

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        assert all(pool.map(one, range(len(sizes))))
    batches = dense.state.batcher.stats.batches - before
    assert batches < len(sizes)  # requests were merged, and each caller still got its own rows


class _GatedExecutor:
    """Runs batches on a real Runner, but only when the test opens the gate (to fill the queue)."""

    workers = 1

    def __init__(self, model: object) -> None:
        self.runner = RunnerExecutor(model)  # type: ignore[arg-type]
        self.gate = threading.Event()
        self.seen: list[int] = []

    def submit(self, feeds: Mapping[str, np.ndarray]) -> concurrent.futures.Future[dict[str, np.ndarray]]:
        future: concurrent.futures.Future[dict[str, np.ndarray]] = concurrent.futures.Future()

        def later() -> None:
            self.gate.wait(60)
            self.seen.append(len(next(iter(feeds.values()))))
            future.set_result(self.runner.submit(feeds).result())

        threading.Thread(target=later, daemon=True).start()
        return future

    def close(self) -> None:
        self.gate.set()
        self.runner.close()


def test_a_full_queue_answers_503_at_once_and_the_rest_complete() -> None:
    model = dense_softmax()
    executor = _GatedExecutor(model)
    executor.gate.set()  # let the warm-up through
    options = ServeOptions(name="gated", port=0, max_batch_size=1, max_delay_ms=0, max_queue=2)
    server = start(model, options, executor=executor)
    try:
        executor.gate.clear()
        x = np.ones((1, 4), np.float32)
        url = f"{server.url}/v2/models/gated/infer"
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(httpx.post, url, json=_kserve(x), timeout=60) for _ in range(8)]
            rejected = []
            for f in concurrent.futures.as_completed(futures, timeout=30):
                response = f.result()
                if response.status_code == 503:
                    rejected.append(response)
                if len(rejected) >= 4:
                    break
            assert rejected and all(r.headers["retry-after"] == "1" for r in rejected)
            assert "queue is full" in rejected[0].json()["error"]
            executor.gate.set()
            codes = sorted(f.result().status_code for f in futures)
        assert set(codes) == {200, 503} and codes.count(200) >= 3  # one running, two queued, none lost
    finally:
        server.stop()


def test_two_inputs_and_a_client_from_the_ecosystem() -> None:
    import tritonclient.http as triton

    model = two_inputs()
    server = start(model, ServeOptions(name="two", port=0))
    try:
        client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
        assert client.is_server_live() and client.is_model_ready("two")
        a = np.random.default_rng(1).normal(size=(2, 3)).astype(np.float32)
        n = np.array([2, 5], np.int32)
        with _runner(model) as run:
            expected = run({"a:0": a, "n:0": n})["out:0"]
        for binary_in, binary_out in ((False, False), (True, False), (False, True), (True, True)):
            inputs = [triton.InferInput("a", list(a.shape), "FP32"), triton.InferInput("n", list(n.shape), "INT32")]
            inputs[0].set_data_from_numpy(a, binary_data=binary_in)
            inputs[1].set_data_from_numpy(n, binary_data=binary_in)
            result = client.infer("two", inputs, outputs=[triton.InferRequestedOutput("out", binary_data=binary_out)])
            (item,) = result.get_response()["outputs"]
            # the answer came in the form asked: raw bytes after the JSON header, or JSON data
            assert ("data" not in item) == binary_out
            assert ("binary_data_size" in (item.get("parameters") or {})) == binary_out
            np.testing.assert_allclose(result.as_numpy("out"), expected, rtol=1e-6)
        client.close()
    finally:
        server.stop()


def test_binary_outputs_of_every_kind_decode_to_the_arrays() -> None:
    """The binary tensor extension's answer: the JSON header's length in a header, then each output's
    little-endian bytes in the order of the header (BYTES elements length-prefixed), JSON for the rest."""
    import json

    from tfcpu.graph.model import TensorSpec
    from tfcpu.serve._protocols import KServeRequest, Signature, encode_kserve

    outs = {"f:0": np.arange(6, dtype=np.float32).reshape(2, 3) / 7, "s:0": np.array([b"ab", b"", b"xyz"], object),
            "i:0": np.array([[-3, 4]], np.int64)}  # fmt: skip
    sig = Signature("serving_default", (), tuple((k[0], TensorSpec(k, str(v.dtype) if v.dtype != object else "string",
                                                                    v.shape)) for k, v in outs.items()))  # fmt: skip
    reply = encode_kserve("m", sig, outs, KServeRequest({}, ("f", "s", "i"), "req-7", frozenset({"f", "s"})))
    content, headers = reply.content()
    length = int(headers["inference-header-content-length"])
    head, raw = json.loads(content[:length]), content[length:]
    assert head["id"] == "req-7" and [o["name"] for o in head["outputs"]] == ["f", "s", "i"]
    f_item, s_item, i_item = head["outputs"]
    n = f_item["parameters"]["binary_data_size"]
    np.testing.assert_array_equal(np.frombuffer(raw[:n], "<f4").reshape(f_item["shape"]), outs["f:0"])
    strings, rest = [], raw[n : n + s_item["parameters"]["binary_data_size"]]
    while rest:
        size = int.from_bytes(rest[:4], "little")
        strings.append(rest[4 : 4 + size])
        rest = rest[4 + size :]
    assert strings == [b"ab", b"", b"xyz"] and s_item["datatype"] == "BYTES"
    assert i_item["data"] == [-3, 4] and "parameters" not in i_item  # not asked binary: JSON
    assert len(raw) == n + s_item["parameters"]["binary_data_size"]
    plain, plain_headers = encode_kserve("m", sig, outs, KServeRequest({}, ("i",))).content()
    assert plain_headers == {"content-type": "application/json"} and json.loads(plain)["outputs"][0]["data"] == [-3, 4]


class _runner:  # a tiny context manager around tfcpu's Runner
    def __init__(self, model: object) -> None:
        from tfcpu.runtime.runner import Runner

        self.r = Runner(model)  # type: ignore[arg-type]

    def __enter__(self):  # type: ignore[no-untyped-def]
        self.r.activate()
        return self.r.run

    def __exit__(self, *exc: object) -> None:
        self.r.close()


def test_serve_options_refuse_bad_values() -> None:
    from tfcpu.errors import ConfigError

    for bad in ({"name": "a b"}, {"port": 70000}, {"max_queue": 0}, {"max_delay_ms": float("nan")}):
        with pytest.raises(ConfigError):
            ServeOptions(**bad)  # type: ignore[arg-type]
