"""Quantizer stages hand each other values once (issue 15 item 4) and the first-ten-minutes fixes of
issue 19 in the quantiser: calibration files through the API, no INC log left in the temp directory,
builders that do not read the machine, SmoothQuant on the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.children import run_snippet
from tests.graphs import dense_softmax, tiny_convnet
from tfcpu import ConfigError, Quantizer
from tfcpu.graph.optimizer import GraphOptimizer
from tfcpu.quantize.calibration import load_files, materialise
from tfcpu.topology import Topology

TopologyFactory = Callable[[str], Topology]


def _forbid_detect(monkeypatch: pytest.MonkeyPatch) -> None:
    def detect(*args: object, **kwargs: object) -> Topology:
        raise AssertionError("a builder read the machine")

    monkeypatch.setattr(Topology, "detect", staticmethod(detect))


def test_builders_do_not_read_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    _forbid_detect(monkeypatch)
    plan = Quantizer().bf16()  # the BF16 check moves to run()
    assert plan.precision == "bf16"
    assert Quantizer().int8().calibrate("synthetic").smooth_quant(0.5).optimize(False).precision == "int8"


def test_bf16_is_refused_by_run_when_the_machine_has_no_bf16(
    topology: TopologyFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    this = topology("this_machine")  # AVX2 EPYC: no AVX512_BF16
    monkeypatch.setattr(Topology, "detect", staticmethod(lambda *a, **k: this))
    plan = Quantizer().bf16()
    with pytest.raises(ConfigError, match="BF16 is not accelerated"):
        plan.run(dense_softmax())


def test_calibration_files_work_like_the_cli(tmp_path: Path) -> None:
    model = dense_softmax()
    rng = np.random.default_rng(0)
    data = rng.standard_normal((10, 4)).astype(np.float32)
    np.save(tmp_path / "cal.npy", data)
    folder = tmp_path / "batches"
    folder.mkdir()
    for i, start in enumerate(range(0, 10, 4)):
        np.save(folder / f"{i:02d}.npy", data[start : start + 4])
    one = materialise(model, str(tmp_path / "cal.npy"), batches=10, batch_size=4)
    many = materialise(model, folder, batches=10, batch_size=None)
    assert [b["x:0"].shape[0] for b in one] == [4, 4, 2] == [b["x:0"].shape[0] for b in many]
    np.testing.assert_array_equal(np.concatenate([b["x:0"] for b in many]), data)
    plan = Quantizer().int8().calibrate(str(tmp_path / "cal.npy"), batch_size=4)
    assert plan.to_dict()["calibration"] == str(tmp_path / "cal.npy")
    assert isinstance(Quantizer().calibrate(folder).calibration, Path)
    from tfcpu.cli.quantize import load_calibration

    np.testing.assert_array_equal(np.asarray(load_files(load_calibration(str(tmp_path / "cal.npy")))), data)


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("missing.npy", None, "calibration data not found"),
        ("broken.npy", b"not an array", "cannot read the calibration file"),
    ],
)
def test_bad_calibration_files_are_config_errors(
    tmp_path: Path, name: str, content: bytes | None, fragment: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    plan = Quantizer().int8().calibrate(str(path))  # stored, not read
    with pytest.raises(ConfigError, match=fragment):
        plan.run(dense_softmax())


def test_a_quantisation_leaves_no_file_in_the_temp_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, topology: TopologyFactory
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    result = Quantizer(topology=topology("vm_no_numa")).calibrate("synthetic", batches=2).run(tiny_convnet())
    assert result.quantized
    assert list(temp.iterdir()) == [], "INC's calibration log (tmpXXXX.log) or a work file was left behind"
    assert tempfile.tempdir == str(temp)  # restored


def test_optimisation_is_a_visible_step_kept_in_the_result(topology: TopologyFactory) -> None:
    plan = Quantizer(topology=topology("vm_no_numa")).calibrate("synthetic", batches=1)
    result = plan.run(tiny_convnet())
    assert result.optimized and result.optimization is not None
    assert result.optimization.model.optimized_with  # the FP32 graph INC got
    assert result.to_dict()["optimization"]["nodes_after"] == result.optimization.model.node_count
    skipped = plan.optimize(False).run(tiny_convnet())
    assert not skipped.optimized and skipped.optimization is None


def test_an_optimised_model_is_not_optimised_again(topology: TopologyFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    optimised = GraphOptimizer.default().run(tiny_convnet()).model

    def again(*args: object, **kwargs: object) -> None:
        raise AssertionError("optimised a second time")

    monkeypatch.setattr(GraphOptimizer, "run", again)
    result = Quantizer(topology=topology("vm_no_numa")).calibrate("synthetic", batches=1).run(optimised)
    assert result.quantized and result.optimized and result.optimization is None
    assert "not again" in str(result)


def test_inc_never_gets_the_models_own_graph_def(topology: TopologyFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    import tfcpu.quantize._inc as inc

    model = tiny_convnet()
    seen: list[object] = []
    real = inc.quantize_graph

    def spy(graph_def: object, *args: object, **kwargs: object) -> object:
        seen.append(graph_def)
        return real(graph_def, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(inc, "quantize_graph", spy)
    Quantizer(topology=topology("vm_no_numa")).calibrate("synthetic", batches=1).optimize(False).run(model)
    assert seen and all(g is not model.graph_def for g in seen)


def test_cli_smooth_quant_reaches_the_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tfcpu.cli.main import main

    model = tiny_convnet().save(tmp_path / "tiny.pb")
    assert main(["quantize", str(model), "-o", str(tmp_path / "q.pb"), "--smooth-quant", "1.5"]) == 2
    assert "alpha must be in [0, 1]" in capsys.readouterr().err
    assert main(["quantize", str(model), "-o", str(tmp_path / "q.pb"), "--bf16", "--smooth-quant", "0.5"]) == 2
    assert "--smooth-quant is an INT8 option" in capsys.readouterr().err


def test_cli_smooth_quant_quantises(tmp_path: Path) -> None:
    model = tiny_convnet().save(tmp_path / "tiny.pb")
    out = tmp_path / "sq.pb"
    argv = ["quantize", str(model), "-o", str(out), "--smooth-quant", "0.5", "--batches", "2", "--json"]
    proc = subprocess.run([sys.executable, "-m", "tfcpu", *argv], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    assert data["quantized"] and out.exists()


BF16_REPORT_CHILD = """
import json, sys
from tests.graphs import tiny_convnet
from tfcpu import Quantizer, Topology
spr = Topology.from_json(open(sys.argv[1]).read())
result = Quantizer(topology=spr).bf16().run(tiny_convnet())
print(json.dumps({"text": str(result), "ops": result.quantized_ops, "rows": [r.to_dict() for r in result.op_types]}))
"""


def test_bf16_report_says_bf16_and_lists_the_bf16_ops(topology: TopologyFactory, tmp_path: Path) -> None:
    topo_file = tmp_path / "spr.json"
    topo_file.write_text(topology("vm_no_numa").to_json())
    data = run_snippet(BF16_REPORT_CHILD, str(topo_file), env={"TF_ENABLE_ONEDNN_OPTS": "1"})
    assert "BF16 conversion of" in data["text"] and "INT8" not in data["text"]
    rows = {r["op"]: r for r in data["rows"]}
    assert rows, "the BF16 table is empty"
    assert rows["Conv2D"]["quantized"] == 1  # read from the graph: the Conv2D computes in bfloat16
    assert data["ops"].get("Cast->bfloat16", 0) >= 1


def test_bad_result_records_are_config_errors() -> None:
    from tfcpu.quantize.calibration import Calibration
    from tfcpu.quantize.result import OpTypeRow, Trial

    for cls, data in ((OpTypeRow, {"op": "Conv2D"}), (Trial, {"metric": "x"}), (Calibration, {"source": "s"})):
        with pytest.raises(ConfigError, match="not a"):
            cls.from_dict(data)  # type: ignore[attr-defined]
    row = OpTypeRow("Conv2D", 2, 1, 1)
    assert OpTypeRow.from_dict(json.loads(json.dumps(row.to_dict()))) == row


def test_cli_remainder_bf16_runs_the_attention_in_bf16(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tfcpu.cli.main import main
    from tfcpu.graph.encoder import build_encoder
    from tfcpu.topology import Topology

    model = tmp_path / "enc.keras"
    build_encoder(layers=1, width=32, heads=2, seq_len=16).save(model)
    assert main(["quantize", str(model), "-o", str(tmp_path / "q.pb"), "--bf16", "--remainder", "bf16"]) == 2
    assert "--remainder is an INT8 option" in capsys.readouterr().err
    out = tmp_path / "mixed.pb"
    argv = ["quantize", str(model), "-o", str(out), "--remainder", "bf16", "--batches", "2", "--json"]
    proc = subprocess.run([sys.executable, "-m", "tfcpu", *argv], capture_output=True, text=True, timeout=600)
    if not Topology.detect().precisions["bf16"].accelerated:
        assert proc.returncode == 2 and "AVX512_BF16" in proc.stderr and not out.exists(), proc.stderr[-2000:]
        return
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":  # the oneDNN-off leg: the user's setting wins, said clearly
        assert proc.returncode == 1 and "needs oneDNN" in proc.stderr and not out.exists(), proc.stderr[-2000:]
        assert "TF_ENABLE_ONEDNN_OPTS=1" in proc.stderr
        return
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["precision"] == "int8"
    import tfcpu

    written = tfcpu.load(out)
    einsums = [n for n in written.graph_def.node if n.op == "Einsum"]
    assert einsums and all(n.attr["T"].type == 14 for n in einsums)  # DT_BFLOAT16
    assert any(op.startswith("Quantized") for op in written.op_counts())
