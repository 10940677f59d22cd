"""The coverage matrix's own code path on three of its rows (issue 27, part 6).

``benchmarks/coverage.py`` runs every architecture in a fresh child through load → optimise (exact)
→ INT8 (synthetic calibration, agreement) → OpenVINO FP32 (agreement with TensorFlow) and writes
``docs/coverage.md``. Here the same script (parent and children) runs a small subset that covers two
kinds of model the matrix found problems in: a small CNN with built-in rescaling and normalisation
(EfficientNetB0 at 64×64) and a BERT classifier that takes segment ids and a dynamic sequence length.
Grouped convolutions (RegNetX002, ConvNeXtTiny) have their own test (test_function_calls.py); the
whole matrix runs with ``nox -s coverage``. Each stage's status and numbers are asserted; a stage
that regresses fails here.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SUBSET = ("EfficientNetB0", "BERT classifier")


def _coverage_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tfcpu_coverage_script", ROOT / "benchmarks" / "coverage.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, dict[str, dict[str, Any]]]:
    coverage = _coverage_module()
    out = tmp_path_factory.mktemp("coverage")
    lines: list[str] = []
    argv = ["--models", ",".join(SUBSET), "--image-size", "64", "--out-dir", str(out), "--no-docs", "--timeout", "600"]
    assert coverage.main(argv, log=lines.append) == 0
    records = {}
    for path in sorted(out.glob("*.json")):
        data = json.loads(path.read_text())
        if "stages" in data:
            records[data["name"]] = data
    assert set(records) == set(SUBSET), (sorted(records), lines)
    return coverage, records


def _stages(records: dict[str, dict[str, Any]], name: str) -> dict[str, dict[str, Any]]:
    stages: dict[str, dict[str, Any]] = records[name]["stages"]
    assert list(stages) == ["load", "optimise", "int8", "openvino"], (name, stages)
    return stages


@pytest.mark.parametrize("name", SUBSET)
def test_every_stage_passes(matrix: tuple[ModuleType, dict[str, dict[str, Any]]], name: str) -> None:
    _, records = matrix
    stages = _stages(records, name)
    assert stages["load"]["status"] == "ok", stages["load"]
    assert stages["load"]["nodes"] > 50

    opt = stages["optimise"]
    assert opt["status"] == "exact", opt
    assert opt["max_rel_error"] <= 1e-4, opt
    assert not opt["degenerate"], opt  # the check saw outputs that differ with the inputs
    assert opt["nodes_after"] < opt["nodes_before"], opt

    int8 = stages["int8"]
    assert int8["status"] == "ok", int8  # quantised, cosine >= 0.99 against FP32 (the quantiser's own)
    assert int8["precision"] == "int8" and int8["cosine"] >= 0.99, int8
    assert int8["int8_flop_share"] is not None and int8["int8_flop_share"] > 0.85, int8
    assert int8["onednn_enabled"] is True

    ov = stages["openvino"]
    assert ov["status"] == "ok", ov
    assert ov["cosine"] > 0.9999 and ov["max_rel_error"] < 1e-3, ov


def test_the_rows_say_what_ran(matrix: tuple[ModuleType, dict[str, dict[str, Any]]]) -> None:
    _, records = matrix
    bert = _stages(records, "BERT classifier")
    assert set(bert["load"]["inputs"]) == {"token_ids", "segment_ids", "padding_mask"}
    assert bert["int8"]["quantized_ops"], bert["int8"]  # its MatMuls became INT8 ops
    assert records["EfficientNetB0"]["input"] == "64×64×3"
    assert 4e6 < records["EfficientNetB0"]["params"] < 6e6  # 1000 classes: about 5.3 M


def test_the_table_and_the_counts(matrix: tuple[ModuleType, dict[str, dict[str, Any]]], tmp_path: Path) -> None:
    coverage, records = matrix
    rows = [records[n] for n in SUBSET]
    where = coverage.machine()
    text = coverage.render_markdown(rows, where)
    assert "2 of 2 architectures load, 2 optimise exactly, 2 quantise to INT8" in text
    assert "2 run on OpenVINO in agreement with TensorFlow" in text
    assert sum(1 for line in text.splitlines() if line.startswith("| ") and "✓ exact" in line) == 2
    assert where["isa"] in text and where["date"] in text
    assert "Nothing: every stage passed" in text

    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nbefore\n<!-- coverage:start -->\nold\n<!-- coverage:end -->\nafter\n")
    coverage.update_readme(coverage.counts_line(coverage.counts(rows)), where, readme)
    updated = readme.read_text()
    assert "old" not in updated and "before" in updated and "after" in updated
    assert updated.count("2 of 2 architectures load") == 1


def test_a_crash_costs_one_row_not_the_run(tmp_path: Path) -> None:
    """A child that dies mid-way leaves its finished stages and names the stage it died in."""
    coverage = _coverage_module()
    record = coverage.run_one("MobileNetV3Small", tmp_path, timeout=1.0, image_size=64)
    assert record["stages"]["load"]["status"] == "timeout", record  # 1 s: TensorFlow has not even imported
    assert "timed out after 1 s" in record["stages"]["load"]["error"]
    assert json.loads((tmp_path / "mobilenetv3small.json").read_text())["stages"]["load"]["status"] == "timeout"
