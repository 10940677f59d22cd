"""``tfcpu quantize``: writes an INT8 graph atomically, checks calibration files, refuses to
overwrite its input. The full run happens in a fresh process, as a user would start it (the
CLI turns oneDNN on before TensorFlow starts, so the INT8 graph can be checked there)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.graphs import tiny_convnet
from tfcpu.cli.main import main


@pytest.fixture
def model_pb(tmp_path: Path) -> Path:
    return tiny_convnet().save(tmp_path / "tiny.pb")


def test_quantize_writes_an_int8_graph_and_reports_json(model_pb: Path, tmp_path: Path) -> None:
    calib = tmp_path / "calib"
    calib.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        np.save(calib / f"{i:03d}.npy", rng.standard_normal((4, 8, 8, 1)).astype(np.float32))
    out = tmp_path / "tiny_int8.pb"
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    argv = ["quantize", str(model_pb), "-o", str(out), "--calibration", str(calib), "--json"]
    proc = subprocess.run([sys.executable, "-m", "tfcpu", *argv], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    assert data["quantized"] and data["precision"] == "int8" and data["output"] == str(out)
    assert data["calibration"]["batches"] == 3 and data["calibration"]["samples"] == 12
    assert data["onednn_enabled"] is True  # the CLI set TF_ENABLE_ONEDNN_OPTS=1 before TF started
    assert data["top1_agreement"] is not None and data["max_abs_diff"] is not None
    assert not list(tmp_path.glob(".*tmp*")), "no temporary file left behind"

    import tfcpu

    written = tfcpu.load(out, inputs="x", outputs="probs")
    assert any(op.startswith("Quantized") for op in written.op_counts())


def test_output_equal_to_input_is_refused(model_pb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = model_pb.read_bytes()
    assert main(["quantize", str(model_pb), "-o", str(model_pb)]) == 2
    err = capsys.readouterr().err
    assert "-o is the input file" in err and "--overwrite" in err and len(err.strip().splitlines()) <= 2
    assert model_pb.read_bytes() == before


def test_calibration_with_the_wrong_shape_fails_in_one_line(
    model_pb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((4, 8, 8, 3), np.float32))
    out = tmp_path / "never.pb"
    assert main(["quantize", str(model_pb), "-o", str(out), "--calibration", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "expects shape (?, 8, 8, 1)" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--calibration", "missing_dir"], "calibration data not found"),
        (["-o", "out.onnx"], "-o must end in .pb or .pbtxt"),
    ],
)
def test_bad_arguments(model_pb: Path, argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["quantize", str(model_pb), "-o", str(model_pb.with_name("o.pb")), *argv]
    assert main(args) == 2
    assert fragment in capsys.readouterr().err
