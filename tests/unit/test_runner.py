"""Runner: lifecycle, feeds checked before TensorFlow, Appendix B benchmark semantics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.graphs import dense_softmax, dense_softmax_reference, two_inputs
from tfcpu.errors import ConfigError, RunnerError
from tfcpu.runtime import BenchmarkResult, Runner
from tfcpu.session.config import SessionConfig
from tfcpu.topology import Topology


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return dense_softmax()


@pytest.fixture
def config() -> SessionConfig:
    return SessionConfig.for_topology(Topology.detect()).with_intra_op_threads(1).with_inter_op_threads(1)


def test_run_by_name_position_and_single_array(model, config) -> None:  # type: ignore[no-untyped-def]
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    want = dense_softmax_reference(x)
    with Runner(model, config) as r:
        for feed in ({"x:0": x}, {"x": x}, [x], x):
            out = r.run(feed)
            assert list(out) == ["probs:0"]
            np.testing.assert_allclose(out["probs:0"], want, rtol=1e-5, atol=1e-6)


def test_two_inputs_by_position_and_safe_cast(config) -> None:  # type: ignore[no-untyped-def]
    m = two_inputs()
    a = np.ones((2, 3), np.float32)
    with Runner(m, config) as r:
        out = r.run([a, np.array([2, 3], np.int64)])  # int64 → int32 is a same-kind cast
        np.testing.assert_allclose(out["out:0"], [[2, 2, 2], [3, 3, 3]])
        with pytest.raises(ConfigError, match="2 inputs, 1 were given"):
            r.run([a])
        with pytest.raises(ConfigError, match="missing inputs"):
            r.run({"a": a})


def test_bad_feeds_are_caught_before_tensorflow(model, config) -> None:  # type: ignore[no-untyped-def]
    with Runner(model, config) as r:
        with pytest.raises(ConfigError, match=r"did you mean 'x:0'|did you mean 'x'"):
            r.run({"xx": np.zeros((1, 4), np.float32)})
        with pytest.raises(ConfigError, match=r"expects shape \(\?, 4\), got \(2, 5\)"):
            r.run(np.zeros((2, 5), np.float32))
        with pytest.raises(ConfigError, match="expects rank 2"):
            r.run(np.zeros((4,), np.float32))
        with pytest.raises(ConfigError, match="expects float32, got complex128"):
            r.run(np.zeros((1, 4), np.complex128))


def test_lifecycle_is_strict(model, config) -> None:  # type: ignore[no-untyped-def]
    r = Runner(model, config)
    with pytest.raises(RunnerError, match="not active"):
        r.run(np.zeros((1, 4), np.float32))
    with r:
        r.run(np.zeros((1, 4), np.float32))
    with pytest.raises(RunnerError, match="was closed"):
        r.run(np.zeros((1, 4), np.float32))
    with pytest.raises(RunnerError, match="was closed"):
        r.activate()
    with pytest.raises(ConfigError, match="needs a tfcpu Model"):
        Runner("model.pb")  # type: ignore[arg-type]


def test_benchmark_steps_counts_and_round_trips(model, config) -> None:  # type: ignore[no-untyped-def]
    calls: list[tuple[int, int]] = []
    with Runner(model, config, name="tiny") as r:
        res = r.benchmark(batch_size=8, warmup=2, steps=7, progress=lambda d, t: calls.append((d, t)))
    assert res.steps == 7 and res.items == 56 and res.batch_size == 8
    assert res.latency_ms.count == 7
    assert res.latency_ms.min <= res.latency_ms.p50 <= res.latency_ms.p99 <= res.latency_ms.max
    assert math.isclose(res.throughput, res.items / res.seconds)
    # per-batch latencies sum to at most the timed region
    assert res.latency_ms.mean * res.steps / 1000.0 <= res.seconds * 1.0001
    assert res.first_run_ms > 0 and res.mode == "throughput"
    assert res.config == {"intra_op_threads": 1, "inter_op_threads": 1}
    assert res.runtime["tf_version"]
    assert calls[-1] == (7, 7)
    assert BenchmarkResult.from_json(res.to_json()) == res
    assert BenchmarkResult.from_csv(res.to_csv()) == res
    assert json.loads(res.to_json())["latency_ms"]["p99"] == res.latency_ms.p99
    assert "items/s" in res._repr_html_()


def test_benchmark_duration_and_latency_mode(model, config) -> None:  # type: ignore[no-untyped-def]
    with Runner(model, config) as r:
        res = r.benchmark(batch_size=1, warmup=0, duration=0.3)
    assert res.mode == "latency"
    assert res.seconds >= 0.3
    assert res.items == res.steps >= 1


def test_benchmark_on_a_dataset_uses_every_item(model, config) -> None:  # type: ignore[no-untyped-def]
    data = np.zeros((10, 4), np.float32)
    with Runner(model, config) as r:
        res = r.benchmark(batch_size=4, warmup=0, steps=3, data=data)
        assert res.items == 10  # batches of 4, 4, 2
        with pytest.raises(ConfigError, match="steps or duration"):
            r.benchmark(steps=1, duration=1.0)
        with pytest.raises(ConfigError, match="batch_size"):
            r.benchmark(batch_size=0)
        with pytest.raises(ConfigError, match="unknown data source"):
            r.benchmark(data="imagenet")


def test_benchmark_takes_one_options_value_and_says_what_ran(model, config) -> None:  # type: ignore[no-untyped-def]
    from tfcpu.runtime.backends import BenchmarkOptions

    with Runner(model, config, name="opts") as r:
        res = r.benchmark(BenchmarkOptions(batch_size=2, warmup=1, steps=6, seed=3))
        assert r.describe()["backend"] == "tensorflow"
        with pytest.raises(ConfigError, match="not both"):
            r.benchmark(BenchmarkOptions(steps=1), batch_size=4)
    assert res.steps == 6 and res.items == 12 and res.warmup == 1
    assert res.backend["backend"] == "tensorflow" and res.backend["precision"] == "fp32"
    assert res.backend["intra_op_threads"] == 1
    assert len(res.rounds) == 3 and all(t > 0 for t in res.rounds)


def test_unknown_backend_and_options_are_refused(model, config) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="did you mean 'tensorflow'"):
        Runner(model, config, backend="tensorfow")
    with pytest.raises(ConfigError, match="takes no options"), Runner(model, config, options={"streams": 2}):
        pass
