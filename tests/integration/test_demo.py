"""`tfcpu demo` end to end, as a user runs it, on small models (short timed rows).

The ResNet-50 run itself is measured in docs/demo.md; here the point is that every row is
really measured, the JSON/PNG are written, the input is left alone and a step that cannot run
is reported rather than faked.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tests.graphs import echo_ids

pytestmark = pytest.mark.slow

SIX_ROWS = [
    "Keras model.predict",
    "frozen graph, oneDNN, tuned threads",
    "optimised graph",
    "optimised + multi-instance",
    "INT8",
    "INT8 + multi-instance",
]


def _demo(model: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = ["tfcpu", "demo", "--model", str(model), "--output", str(out), "--batch-size", "4", "--duration", "1"]
    argv.extend(extra)
    return subprocess.run(argv, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import keras

    model = keras.Sequential(
        [
            keras.Input((24, 24, 3)),
            keras.layers.Conv2D(8, 3, use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    path = tmp_path_factory.mktemp("demo-model") / "tiny.keras"
    model.save(path)
    return path


def test_demo_measures_the_six_steps_of_figure_1(keras_file: Path, tmp_path: Path) -> None:
    before = hashlib.sha256(keras_file.read_bytes()).hexdigest()
    out = tmp_path / "results" / "nested"  # created on demand
    proc = _demo(keras_file, out)
    assert proc.returncode == 0, proc.stderr[-3000:]

    data = json.loads((out / "demo.json").read_text())
    rows = data["rows"]
    assert [r["name"] for r in rows][:6] == SIX_ROWS
    bf16_rows = ("BF16", "OpenVINO BF16")  # measured only where the CPU accelerates BF16
    assert all(r["status"] == "ok" and r["throughput"] > 0 for r in rows if r["name"] not in bf16_rows), rows
    bf16 = next(r for r in rows if r["name"] == "BF16")
    ov_bf16 = next(r for r in rows if r["name"] == "OpenVINO BF16")
    from tfcpu.topology import Topology

    if Topology.detect().precisions["bf16"].accelerated:  # the graph Quantizer().bf16() makes, labelled from its ops
        assert bf16["status"] == "ok" and bf16["precision"] == "bf16" and "bfloat16" in bf16["note"], bf16
        assert ov_bf16["status"] == "ok" and ov_bf16["precision"] == "bf16", ov_bf16
    else:
        assert bf16["status"] == "skipped" and "AVX512_BF16" in bf16["note"], bf16
        assert ov_bf16["status"] == "skipped", ov_bf16
    for r in rows:  # every measured row reports its spread
        if r["status"] == "ok":
            assert len(r["rounds"]) == 3 and r["spread"] >= 0, r
    base = rows[0]["throughput"]
    for r in rows:  # speedups are ratios to the first row of the same run
        assert r["speedup"] == pytest.approx(r["throughput"] / base)
    assert [r["precision"] for r in rows[:6]] == ["fp32"] * 4 + ["int8"] * 2
    assert rows[3]["instances"] >= 2 and rows[5]["instances"] == rows[3]["instances"]
    assert data["best"] == max(rows, key=lambda r: r["throughput"])["name"]
    assert data["machine"] and data["runtime"]["tf_version"]
    # the kernels column: the dispatch probe of each TF graph row (Keras predict is not a graph, OpenVINO
    # rows run OpenVINO's own kernels: neither is probed)
    assert rows[0]["kernels"] == ""
    for r in rows[1:]:
        if r["status"] == "ok" and not r["name"].startswith("OpenVINO"):
            assert r["kernels"].startswith("conv ") and "outside oneDNN" in r["kernels"], r
        elif r["name"].startswith("OpenVINO"):
            assert r["kernels"] == "", r
    int8 = next(r for r in rows if r["name"] == "INT8")
    assert "s8" in int8["kernels"] or "u8" in int8["kernels"], int8
    from tfcpu.demo._result import DemoResult

    columns, cells = DemoResult.from_dict(data)._table()
    assert "kernels" in columns and cells[1][columns.index("kernels")] == rows[1]["kernels"]

    assert (out / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.iterdir()) == ["demo.json", "demo.png"]  # no temporaries left
    assert hashlib.sha256(keras_file.read_bytes()).hexdigest() == before  # the input is untouched
    assert "best:" in proc.stdout and "INT8" in proc.stdout
    assert data["files"] == ["demo.json", "demo.png"]
    assert proc.stdout.strip().splitlines()[-1].startswith(f"wrote {out}/demo.json and {out}/demo.png")


def test_a_graph_with_nothing_to_quantise_skips_the_int8_rows(tmp_path: Path) -> None:
    pb = tmp_path / "echo.pb"
    echo_ids().save(pb)
    proc = _demo(pb, tmp_path / "out", "--no-dispatch")
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "out" / "demo.json").read_text())
    assert all(r["kernels"] == "" for r in data["rows"])  # --no-dispatch: no probe
    status = {r["name"]: r["status"] for r in data["rows"]}
    # a graph file has no Keras model: the baseline is the frozen graph with TF's defaults
    assert data["rows"][0]["name"] == "frozen graph, TF defaults"
    assert status["frozen graph, oneDNN, tuned threads"] == "ok" and status["optimised graph"] == "ok"
    # never an "INT8" number measured on the FP32 graph
    assert status["INT8"] == "skipped" and status["INT8 + multi-instance"] == "skipped"
    assert any(n.startswith("INT8 rows skipped") for n in data["notes"]), data["notes"]


def test_the_demo_on_a_transformer_counts_sequences_and_quantises_its_projections(tmp_path: Path) -> None:
    """``tfcpu demo --model <encoder>``: token ids + mask fed to Keras predict and to every graph row,
    sequences/s, the projections' MatMuls in oneDNN and INT8, OpenVINO's layers named."""
    from tfcpu.graph.encoder import build_encoder

    path = tmp_path / "encoder.keras"
    build_encoder(layers=1, width=32, heads=2, seq_len=16).save(path)
    proc = _demo(path, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "out" / "demo.json").read_text())
    rows = {r["name"]: r for r in data["rows"]}
    assert data["unit"] == "seq/s" and "seq/s" in proc.stdout and "img/s" not in proc.stdout
    assert list(rows)[:6] == SIX_ROWS
    assert all(rows[name]["status"] == "ok" and rows[name]["throughput"] > 0 for name in SIX_ROWS), rows
    assert rows["optimised graph"]["kernels"].startswith("matmul "), rows["optimised graph"]
    assert rows["INT8"]["precision"] == "int8" and rows["INT8"]["note"].endswith("quantised ops")
    assert rows["OpenVINO INT8"]["status"] == "ok" and "FullyConnected:i8" in rows["OpenVINO INT8"]["note"]
    assert "quantizer" not in proc.stderr  # the quantizer's expected warnings stay out of the demo's terminal
    assert proc.stdout.strip().splitlines()[-2].startswith("best: ") and "seq/s" in proc.stdout.splitlines()[-2]


BF16_PROBE = r"""
import json, sys
sys.path.insert(0, {root!r})
from tests.graphs import tiny_convnet
from tfcpu.demo._measure import graph_precision, measure
from tfcpu.demo._steps import bf16_graph, optimised_graph
from tfcpu.plan import InstancePlan
from tfcpu.runtime.backends import BenchmarkOptions
from tfcpu.topology import Topology

topo = Topology.detect()
graph = bf16_graph(optimised_graph(tiny_convnet()), topo)
got = measure(graph, InstancePlan.for_topology(topo, instances=1), BenchmarkOptions(batch_size=2, steps=3), onednn=True)
ops = sorted({{n.op for n in graph.graph_def.node if any(n.attr[k].type == 14 for k in ("T", "DstT") if k in n.attr)}})
print(json.dumps({{"precision": graph_precision(graph), "ops": ops, "throughput": got.throughput}}))
"""


def test_the_bf16_row_times_the_graph_quantizer_bf16_makes() -> None:
    """On this CPU (AVX512_BF16) the BF16 row's graph is Quantizer().bf16()'s, and it holds BF16 ops."""
    import os
    import sys

    from tfcpu.session.precision import child_env, decide_onednn
    from tfcpu.topology import Topology

    if not Topology.detect().precisions["bf16"].accelerated:  # elsewhere the row is refused, with the reason
        from tests.graphs import tiny_convnet
        from tfcpu.demo._steps import bf16_graph
        from tfcpu.errors import ConfigError

        with pytest.raises(ConfigError, match="AVX512_BF16"):
            bf16_graph(tiny_convnet())
        return
    root = str(Path(__file__).resolve().parents[2])
    env = child_env(decide_onednn(needs_onednn=True, environ={}), {**os.environ, "PYTHONPATH": root})
    code = BF16_PROBE.format(root=root)
    proc = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    assert data["precision"][0] == "bf16" and data["precision"][1].endswith("ops in bfloat16")
    assert "Conv2D" in data["ops"] or "_FusedConv2D" in data["ops"] or "MatMul" in data["ops"], data["ops"]
    assert data["throughput"] > 0
