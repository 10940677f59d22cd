"""Issue 23, part 5 and 8: every value a user types is checked before any work.

NaN/inf/negative/absurd numbers on the command line and in the builders, a batch that cannot fit in
memory, an unknown ``--shape`` name, feeds of unequal batch sizes, integer casts that would change a
value, and ``TF_ENABLE_ONEDNN_OPTS`` values TensorFlow does not accept.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest

from tests.graphs import dense_softmax, two_inputs
from tfcpu.errors import ConfigError
from tfcpu.graph.compare import compare_outputs, random_inputs
from tfcpu.runtime.backends._base import BenchmarkOptions
from tfcpu.runtime.feeds import normalise_feed
from tfcpu.session.precision import decide_onednn, parse_onednn_env

NAN, INF = float("nan"), float("inf")


# -- numbers on the command line: the same builders refuse them (exit 2) before anything loads --------------
@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["bench", "m.pb", "--duration", "nan"], "nan is not a finite number"),
        (["bench", "m.pb", "--duration", "inf"], "inf is not a finite number"),
        (["bench", "m.pb", "--duration", "-1"], "must be > 0"),
        (["bench", "m.pb", "--duration", "1e12"], "must be <= 604800"),
        (["bench", "m.pb", "--warmup", "-3"], "bad warmup"),
        (["bench", "m.pb", "--steps", "0"], "bad steps"),
        (["tune", "m.pb", "--duration", "nan"], "nan is not a finite number"),
        (["tune", "m.pb", "--latency-budget", "inf", "--cores-per-instance", "1"], "latency_budget_ms"),
        (["optimize", "m.pb", "-o", "o.pb", "--rtol", "nan"], "bad --rtol"),
        (["optimize", "m.pb", "-o", "o.pb", "--atol=-1e-5"], "bad --atol"),
        (["quantize", "m.pb", "-o", "o.pb", "--smooth-quant", "nan"], "alpha must be in [0, 1]"),
        (["launch", "--timeout", "nan", "--instances", "1", "--", "true"], "nan is not a finite number"),
    ],
)
def test_bad_numbers_on_the_command_line_exit_2(argv: list[str], fragment: str, tmp_path: Path) -> None:
    dense_softmax().save(tmp_path / "m.pb")
    try:  # a fresh process with a deadline: before the fix `--duration nan` ran forever
        proc = subprocess.run(
            [sys.executable, "-m", "tfcpu", *argv], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"tfcpu {' '.join(argv)} did not stop within 120 s")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert ": error: " in proc.stderr and fragment in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o.pb").exists()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"duration": NAN},
        {"duration": INF},
        {"duration": -1.0},
        {"duration": 1e12},
        {"warmup": -1},
        {"warmup": 10**12},
        {"steps": 0},
        {"batch_size": 0},
        {"batch_size": 2.5},
        {"shapes": (("x", (1, -4)),)},
    ],
)
def test_benchmark_options_refuse_nan_inf_negative_and_absurd(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="bad"):
        BenchmarkOptions(**kwargs)  # type: ignore[arg-type]


def test_tolerances_are_finite_and_not_negative() -> None:
    ref = {"y": np.ones(3, np.float32)}
    for atol, rtol in ((INF, 1e-4), (1e-4, NAN), (-1.0, 1e-4)):
        with pytest.raises(ConfigError):
            compare_outputs(ref, ref, atol=atol, rtol=rtol)


def test_optimizer_refuses_a_nan_tolerance_before_any_pass() -> None:
    from tfcpu.graph.optimizer import GraphOptimizer

    with pytest.raises(ConfigError, match="rtol"):
        GraphOptimizer.default().run(dense_softmax(), rtol=NAN)


# -- a batch that cannot fit -----------------------------------------------------------------------------
def test_a_batch_bigger_than_memory_is_refused_with_the_estimate() -> None:
    model = dense_softmax()  # x[?, 4] float32
    total = psutil.virtual_memory().total
    batch = total // 4 + 1  # float32 rows of 4 values: one row is 16 bytes, so the inputs alone exceed memory
    with pytest.raises(ConfigError, match=r"needs about .*GiB.* more than this machine's") as info:
        random_inputs(model, batch)
    assert "batch_size" in (info.value.hint or "")


def test_bench_batch_size_bigger_than_memory_is_a_user_error(tmp_path: Path) -> None:
    path = dense_softmax().save(tmp_path / "m.pb")
    proc = subprocess.run(
        ["tfcpu", "bench", str(path), "--batch-size", "1000000000", "--steps", "1", "--warmup", "0"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "internal error" not in proc.stderr and "MemoryError" not in proc.stderr
    assert "more than this machine's" in proc.stderr


# -- names ---------------------------------------------------------------------------------------------------
def test_an_unknown_shape_name_is_refused_with_did_you_mean() -> None:
    with pytest.raises(ConfigError, match="names no input") as info:
        random_inputs(dense_softmax(), 2, shapes={"xx": (2, 4)})
    assert "did you mean 'x'" in (info.value.hint or "")


def test_bench_refuses_an_unknown_shape_name(tmp_path: Path) -> None:
    path = dense_softmax().save(tmp_path / "m.pb")
    proc = subprocess.run(
        ["tfcpu", "bench", str(path), "--steps", "1", "--warmup", "0", "--batch-size", "1", "--shape", "xx:1,4"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "'xx'" in proc.stderr and "did you mean 'x'" in proc.stderr


# -- feeds -----------------------------------------------------------------------------------------------------
def test_feeds_of_unequal_batch_sizes_are_refused() -> None:
    model = two_inputs()  # a[?, 3] float32, n[?] int32
    feed = {"a": np.ones((1, 3), np.float32), "n": np.arange(8, dtype=np.int32)}
    with pytest.raises(ConfigError, match="different batch sizes") as info:
        normalise_feed(model, feed)
    assert "a:0: 1" in (info.value.why or "") and "n:0: 8" in (info.value.why or "")
    good = normalise_feed(model, {"a": np.ones((8, 3), np.float32), "n": np.arange(8, dtype=np.int32)})
    assert set(good) == {"a:0", "n:0"}


def test_an_integer_cast_that_would_change_a_value_is_refused_naming_the_input() -> None:
    model = two_inputs()
    ids = np.array([1, 2**31 + 5], dtype=np.int64)
    with pytest.raises(ConfigError, match=r"'n:0' expects int32.*2147483653 does not fit"):
        normalise_feed(model, {"a": np.ones((2, 3), np.float32), "n": ids})
    small = normalise_feed(model, {"a": np.ones((2, 3), np.float32), "n": np.array([1, 2], dtype=np.int64)})
    assert small["n:0"].dtype == np.int32 and small["n:0"].tolist() == [1, 2]


def test_a_large_unsigned_id_into_int32_is_refused() -> None:
    with pytest.raises(ConfigError, match="does not fit"):
        normalise_feed(two_inputs(), [np.ones((1, 3), np.float32), np.array([3_000_000_000], dtype=np.uint32)])


# -- TF_ENABLE_ONEDNN_OPTS -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "value"), [("1", True), ("TRUE", True), ("0", False), ("FaLsE", False)])
def test_onednn_values_tensorflow_accepts(raw: str, value: bool) -> None:
    assert parse_onednn_env(raw) is value
    assert decide_onednn(needs_onednn=False, environ={"TF_ENABLE_ONEDNN_OPTS": raw}).value is value


@pytest.mark.parametrize("raw", ["garbage", "yes", "on", "off", " 1", "2"])
def test_onednn_values_tensorflow_ignores_are_refused_with_the_list(raw: str) -> None:
    with pytest.raises(ConfigError, match="not a value TensorFlow accepts") as info:
        decide_onednn(needs_onednn=False, environ={"TF_ENABLE_ONEDNN_OPTS": raw})
    assert "0, false, 1, true" in (info.value.why or "")


def test_session_config_refuses_a_garbage_onednn_value(monkeypatch: pytest.MonkeyPatch) -> None:
    from tfcpu.session.config import SessionConfig
    from tfcpu.topology import Topology

    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "garbage")
    with pytest.raises(ConfigError, match="TF_ENABLE_ONEDNN_OPTS='garbage'"):
        _ = SessionConfig.for_topology(Topology.detect()).onednn


def test_bench_refuses_a_garbage_onednn_value(tmp_path: Path) -> None:
    path = dense_softmax().save(tmp_path / "m.pb")
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="garbage")
    proc = subprocess.run(
        [sys.executable, "-m", "tfcpu", "bench", str(path), "--steps", "1", "--warmup", "0", "--batch-size", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "TF_ENABLE_ONEDNN_OPTS='garbage'" in proc.stderr


def test_the_limits_are_finite() -> None:
    from tfcpu._numbers import MAX_COUNT, MAX_SECONDS

    assert math.isfinite(MAX_SECONDS) and MAX_COUNT > 10**6
