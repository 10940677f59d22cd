"""The runtime's values and seams without running TensorFlow children: public surface, JSON round trips,
the parent -> child protocol, BenchmarkOptions from keywords, spread and noise, the demo's files."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tfcpu.demo import DemoResult, DemoRow, mark_noise, with_speedups
from tfcpu.errors import ConfigError, PlanError, RunnerError
from tfcpu.runtime._pool_worker import cause_line
from tfcpu.runtime._protocol import PROTOCOL_VERSION, DataShard, WorkerResult
from tfcpu.runtime.backends._base import BenchmarkOptions, Timing, check_backend
from tfcpu.runtime.multi import InstanceSettings
from tfcpu.runtime.results import InstanceResult, MultiInstanceResult
from tfcpu.runtime.runner import benchmark_options, benchmark_result
from tfcpu.runtime.stats import relative_spread, round_throughputs
from tfcpu.runtime.tune import TuneResult, TuneRow

ROOT = Path(__file__).resolve().parents[2]


def _fresh(code: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300, **kwargs
    )  # type: ignore[call-overload]


def test_public_names_are_lazy_and_import_no_tensorflow() -> None:
    out = _fresh("""
        import sys, tfcpu
        for name in ("Runner", "BenchmarkResult", "MultiInstanceResult", "TuneResult", "BenchmarkOptions",
                     "InstanceSettings", "Comparison", "compare_outputs", "DispatchReport", "OutputError",
                     "OptimizationResult", "QuantizationResult"):
            assert getattr(tfcpu, name).__name__ == name, name
            assert name in tfcpu.__all__, name
        print("tensorflow" in sys.modules)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def _timing(n: int = 9) -> Timing:
    batches = tuple((float(i), float(i) + 0.5 + 0.1 * (i % 3), 4) for i in range(n))
    return Timing(batches, started_at=1000.0)


def _bench(name: str = "") -> object:
    return benchmark_result(
        _timing(),
        BenchmarkOptions(batch_size=4, warmup=2, steps=9),
        model="m.pb",
        first_run_s=0.25,
        config={"intra_op_threads": 2, "inter_op_threads": 1},
        topology="some CPU",
        runtime={"tf_version": "2.x", "onednn_enabled": True},
        backend={"backend": "tensorflow", "precision": "fp32"},
        name=name,
    )


def test_benchmark_result_from_a_timing_keeps_every_field_and_round_trips() -> None:
    res = _bench()
    assert res.steps == 9 and res.items == 36 and res.batch_size == 4 and res.warmup == 2  # type: ignore[attr-defined]
    assert res.seconds == pytest.approx(8.5 + 0.1 * (8 % 3))  # type: ignore[attr-defined]
    assert res.first_run_ms == pytest.approx(250.0)  # type: ignore[attr-defined]
    assert res.backend == {"backend": "tensorflow", "precision": "fp32"}  # type: ignore[attr-defined]
    assert len(res.rounds) == 3 and res.spread > 0  # type: ignore[attr-defined]
    back = type(res).from_json(res.to_json())  # type: ignore[attr-defined]
    assert back == res
    assert type(res).from_csv(res.to_csv()) == res  # type: ignore[attr-defined]
    assert "spread" in dict(res.rows())  # type: ignore[attr-defined]


def test_every_public_result_type_round_trips_through_json() -> None:
    bench = _bench("instance 0")
    inst = InstanceResult(0, (0,), "ok", 0, None, bench, 36, ("line",), "", 36, 0.0, 8.7, (0,))  # type: ignore[arg-type]
    failed = InstanceResult(1, (1,), "failed", 1, None, None, error="ValueError: boom (exited with code 1)")
    multi = MultiInstanceResult((inst, failed), "taskset", 4.0, 4.1, 8.0, 3.9, 9.0, 36, 4, model="m.pb")
    back = MultiInstanceResult.from_json(multi.to_json())
    assert back.to_json() == multi.to_json()  # the failed instance's NaN times are equal only as text
    assert back.instances[0] == inst and back.instances[1].error == failed.error
    ok_only = MultiInstanceResult((inst,), "taskset", 4.0, 4.1, 8.0, 3.9, 9.0, 36, 4, model="m.pb")
    assert MultiInstanceResult.from_json(ok_only.to_json()) == ok_only
    row = TuneRow(1, 2, 4, None, 12.5, 3.0, False)
    tune = TuneResult((row, TuneRow(2, 1, 4, True, 10.0, 2.0, False)), row, None, "m.pb")
    assert TuneResult.from_json(tune.to_json()) == tune
    demo = DemoResult(
        "m",
        (DemoRow("a", "b", 10.0, 1.0, 3.0, rounds=(9.0, 10.0, 11.0)),),
        4,
        1.0,
        "cpu",
        notes=("n",),
        files=("demo.json",),
    )
    assert DemoResult.from_json(demo.to_json()) == demo
    assert BenchmarkOptions.from_dict(
        json.loads(json.dumps(BenchmarkOptions(shapes=(("x", (1, 2)),)).to_dict()))
    ) == BenchmarkOptions(shapes=(("x", (1, 2)),))
    settings = InstanceSettings(threads=(0, 0), env=(("A", "1"),), onednn=True, strict=True)
    assert InstanceSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings


def test_worker_result_round_trips_and_refuses_another_version() -> None:
    result = WorkerResult(
        1,
        42,
        3.5,
        ((1.0, 2.0, 8), (2.0, 3.0, 8)),
        99.0,
        (("y:0", "/o.npy"),),
        {"a": 1},
        {"backend": "tensorflow"},
        (2, 3),
    )
    assert WorkerResult.from_json(result.to_json()) == result and result.items == 16
    stale = {**result.to_dict(), "version": PROTOCOL_VERSION + 1}
    with pytest.raises(RunnerError, match="protocol version"):
        WorkerResult.from_dict(stale)
    shard = DataShard("shard", 3, (("x:0", "/tmp/d.npy"),), 10, 20)
    assert DataShard.from_dict(shard.to_dict()) == shard
    with pytest.raises(RunnerError, match="unknown data shard kind"):
        DataShard("imagenet")


def test_benchmark_options_from_keywords() -> None:
    assert benchmark_options(batch_size=8, steps=3) == BenchmarkOptions(batch_size=8, steps=3)
    assert benchmark_options(shapes={"x": [1, 4]}).shapes == (("x", (1, 4)),)
    assert benchmark_options(BenchmarkOptions(warmup=1)) == BenchmarkOptions(warmup=1)
    with pytest.raises(ConfigError, match="not both"):
        benchmark_options(BenchmarkOptions(), batch_size=4)
    with pytest.raises(ConfigError, match="did you mean 'batch_size'"):
        benchmark_options(batchsize=4)


def test_backend_names_are_checked_with_a_did_you_mean() -> None:
    assert check_backend("tensorflow").endswith(":TensorFlowBackend")
    with pytest.raises(ConfigError, match="did you mean 'tensorflow'"):
        check_backend("tensorflw")
    with pytest.raises(ConfigError, match="did you mean 'openvino'"):
        InstanceSettings(backend="openvin")


def test_round_throughputs_and_spread() -> None:
    # three thirds: 4 items in 1 s, 4 items in 2 s, 4 items in 1 s (batches back to back)
    batches = [(0.0, 0.5, 2), (0.5, 1.0, 2), (1.0, 2.0, 2), (2.0, 3.0, 2), (3.0, 3.5, 2), (3.5, 4.0, 2)]
    assert round_throughputs(batches) == (4.0, 2.0, 4.0)
    assert relative_spread((4.0, 2.0, 4.0)) == pytest.approx(0.5)
    assert round_throughputs(batches[:2]) == (4.0, 4.0)
    assert math.isnan(relative_spread((1.0,)))


def test_rows_within_the_noise_are_marked() -> None:
    rows = (
        DemoRow("base", "", 10.0, rounds=(9.0, 10.0, 11.0)),
        DemoRow("same", "", 10.5, rounds=(10.5, 10.8, 10.2)),  # overlaps 9..11: noise
        DemoRow("skipped", "", status="skipped", note="x"),
        DemoRow("faster", "", 20.0, rounds=(19.0, 20.0, 21.0)),  # compared with "same", not the skipped row
        DemoRow("unknown", "", 20.0),  # no rounds: never marked
    )
    marked = mark_noise(with_speedups(rows))
    assert [r.within_noise for r in marked] == [False, True, False, False, False]
    assert [round(r.speedup, 2) for r in marked] == [1.0, 1.05, 0.0, 2.0, 2.0]
    cols, table = DemoResult("m", marked, 4, 1.0, "cpu")._table()
    assert "spread" in cols
    assert "within the noise" in table[1][-1] and table[0][2] == "±10%"


def test_a_demo_without_matplotlib_says_so_and_claims_only_what_it_wrote(tmp_path: Path) -> None:
    out = _fresh(f"""
        import sys
        sys.modules["matplotlib"] = None  # as if it were not installed
        from pathlib import Path
        from tfcpu.cli.demo import last_line
        from tfcpu.demo import DemoResult, DemoRow, write_outputs
        result = DemoResult("m", (DemoRow("a", "b", 10.0, 1.0, 3.0),), 4, 1.0, "cpu")
        written = write_outputs(result, Path({str(tmp_path)!r}))
        print(last_line({str(tmp_path)!r}, written))
    """)
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.json"]
    assert "demo.png" not in last.split(";")[0] and "no chart" in last and "matplotlib" in last
    data = json.loads((tmp_path / "demo.json").read_text())
    assert data["files"] == ["demo.json"]
    assert any(n.startswith("no chart:") and "matplotlib" in n for n in data["notes"]), data["notes"]


def test_the_bf16_row_is_refused_with_the_reason_on_a_cpu_without_bf16() -> None:
    from tests.graphs import dense_softmax
    from tfcpu.demo._steps import bf16_graph

    with pytest.raises(ConfigError, match="AVX512_BF16"):
        bf16_graph(dense_softmax(), ["avx2", "avx512f"])


def test_worker_cause_line_leads_with_the_exception() -> None:
    err = ConfigError("bad thing", where="x", hint="do y")
    assert cause_line(err) == "ConfigError: bad thing [x] | hint: do y"
    assert cause_line(ValueError("a\nb")) == "ValueError: a"


def test_bench_refuses_too_many_instances_before_tensorflow_with_a_cli_hint() -> None:
    out = _fresh("""
        import sys
        from tfcpu.cli.main import main
        code = main(["bench", "missing-but-unread.pb", "--instances", "99"])
        print(code, "tensorflow" in sys.modules)
    """)
    assert out.stdout.strip().splitlines()[-1] == "2 False", out.stdout + out.stderr
    assert "--instances 2" in out.stderr and "instances=2" not in out.stderr


def test_backend_option_parsing_and_plan_hint() -> None:
    import argparse

    from tfcpu.cli.bench import backend_options, cli_plan

    assert backend_options(["hint=throughput", "streams=2", 'x={"a": 1}']) == {
        "hint": "throughput",
        "streams": 2,
        "x": {"a": 1},
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        backend_options(["novalue"])
    args = argparse.Namespace(instances=99, cores_per_instance=None, no_smt=False)
    with pytest.raises(PlanError, match="--instances "):
        cli_plan(args)


