"""``tune`` across backends and precisions on a tiny classifier (trained-like numbers): every row's backend
and precision are read from what ran, the quantised rows carry the quantiser's agreement with TensorFlow
FP32, a row that fails the accuracy rule is never named best, and the result round-trips through JSON."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.openvino_nets import bn_classifier
from tfcpu.runtime.backends import BenchmarkOptions
from tfcpu.runtime.tune import AccuracyRule, TuneResult, tune

pytestmark = pytest.mark.slow


def test_tune_measures_backend_by_precision_and_names_the_fastest_accurate_row() -> None:
    from tfcpu.topology import Topology

    bf16 = Topology.detect().precisions["bf16"].accelerated
    strict = AccuracyRule(min_cosine=1.0)  # no quantised model is bit-exact: they may not be named best
    result = tune(
        bn_classifier(),
        backends=("tensorflow", "openvino"),
        precisions=("fp32", "bf16", "int8"),
        cores_per_instance=[2],
        options=BenchmarkOptions(batch_size=4, steps=5, warmup=1),
        accuracy=strict,
    )
    ran = {(r.backend, r.precision) for r in result.rows}
    want = {(b, p) for b in ("tensorflow", "openvino") for p in ("fp32", "int8", *(("bf16",) if bf16 else ()))}
    assert ran == want, (ran, result.notes)
    if not bf16:
        assert any("bf16 skipped" in n and "AVX512_BF16" in n for n in result.notes), result.notes
    assert any("synthetic" in n for n in result.notes)  # the quantiser's warning is passed on
    assert result.accuracy_rule.startswith("cosine with TensorFlow FP32 >= 1 (synthetic")
    assert all(not r.partial and r.throughput > 0 for r in result.rows), result.rows
    for row in result.rows:
        if row.precision in ("int8", "bf16"):
            assert row.cosine is not None and 0.99 <= row.cosine < 1.0, row  # passes the default rule, not this one
            assert row.accurate is False and AccuracyRule().passes(row.top1_agreement, row.cosine) is True
        if row.backend == "tensorflow" and row.precision == "fp32":
            assert row.accurate is None  # the model as given is the reference
    assert result.best is not None and result.best.precision == "fp32"
    assert result.best.throughput == max(r.throughput for r in result.rows if r.accurate is not False)
    assert TuneResult.from_json(result.to_json()) == result
    table = result.table_rows()
    assert {t[0] for t in table} == {"tensorflow", "openvino"} and any("(fails)" in t[2] for t in table)


def test_tune_cli_takes_backend_and_precision_lists(tmp_path: Path) -> None:
    pb = tmp_path / "net.pb"
    bn_classifier().save(pb)
    bad = subprocess.run(["tfcpu", "tune", str(pb), "--backend", "tensorflow,openvin"], capture_output=True, text=True)
    assert bad.returncode == 2 and "did you mean 'openvino'" in bad.stderr, bad.stderr
    argv = ["tfcpu", "tune", str(pb), "--backend", "tensorflow,openvino", "--cores-per-instance", "1"]
    proc = subprocess.run(
        [*argv, "--batch-size", "4", "--duration", "0.5", "--json"], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    assert [(r["backend"], r["precision"]) for r in data["rows"]] == [("tensorflow", "fp32"), ("openvino", "fp32")]
    assert data["best"]["throughput"] == max(r["throughput"] for r in data["rows"])
    assert data["accuracy_rule"].startswith("cosine")
