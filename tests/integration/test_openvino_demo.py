"""The demo's OpenVINO rows on a tiny classifier (trained-like numbers), walked like ``run_demo`` walks them:
each row timed in pinned children with backend "openvino" and labelled from what the compiled model ran;
without ``openvino`` the rows are skipped with the reason, and nothing crashes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.openvino_nets import bn_classifier
from tfcpu.demo._result import DemoResult, with_speedups
from tfcpu.demo._run import _prepare, _row, _Run
from tfcpu.demo._steps import demo_steps
from tfcpu.runtime.backends import BenchmarkOptions
from tfcpu.topology import Topology

ROOT = Path(__file__).resolve().parents[2]


def _walk(tmp_path: Path) -> list:  # type: ignore[type-arg]
    topo = Topology.detect()
    run = _Run("bn_classifier", BenchmarkOptions(batch_size=4, warmup=1, steps=5), topo, tmp_path, 2, 2, False)
    run.graphs["optimised"] = bn_classifier()
    steps = [s for s in demo_steps(2) if s.key == "openvino" or s.backend == "openvino"]
    rows = []
    for step in steps:
        if step.kind == "prepare":
            _prepare(run, step)
        else:
            rows.append(_row(run, step))
    return rows


def test_openvino_rows_come_after_the_tensorflow_rows_and_are_labelled_from_what_ran(tmp_path: Path) -> None:
    names = [s.name for s in demo_steps(2) if s.kind == "measure"]
    assert names[-3:] == ["OpenVINO FP32", "OpenVINO BF16", "OpenVINO INT8"]
    rows = _walk(tmp_path)
    by_name = {r.name: r for r in rows}
    fp32, bf16, int8 = by_name["OpenVINO FP32"], by_name["OpenVINO BF16"], by_name["OpenVINO INT8"]
    assert fp32.ok and fp32.precision == "fp32" and fp32.throughput > 0 and "f32" in fp32.note, fp32
    assert int8.ok and int8.precision == "int8" and (":u8" in int8.note or ":i8" in int8.note), int8
    if Topology.detect().precisions["bf16"].accelerated:
        assert bf16.ok and bf16.precision == "bf16" and ":bf16" in bf16.note, bf16
    else:
        assert bf16.status == "skipped" and "AVX512_BF16" in bf16.note, bf16
    for row in rows:
        if row.ok:
            assert "1 stream(s)" in row.note and len(row.rounds) == 3, row
    result = DemoResult("m", with_speedups(tuple(rows)), 4, 1.0, "cpu")
    best = max((r for r in rows if r.ok), key=lambda r: r.throughput)
    assert result.best is not None and result.best.name == best.name  # the best is picked over every backend's rows


HIDDEN = """
import json, sys
sys.path.insert(0, {root!r})
sys.modules["openvino"] = None  # an environment without the package
from pathlib import Path
from tests.integration.test_openvino_demo import _walk
rows = _walk(Path(sys.argv[1]))
print(json.dumps([[r.name, r.status, r.note] for r in rows]))
"""


def test_without_openvino_the_rows_are_skipped_with_the_reason(tmp_path: Path) -> None:
    code = HIDDEN.format(root=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r[0] for r in rows] == ["OpenVINO FP32", "OpenVINO BF16", "OpenVINO INT8"]
    for _, status, note in rows:
        assert status == "skipped" and 'pip install "tfcpu[openvino]"' in note, rows
