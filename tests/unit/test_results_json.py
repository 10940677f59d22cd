"""Every public result type round-trips through JSON, each built from a real (tiny) run:
``from_dict(json.loads(json.dumps(r.to_dict()))).to_dict() == r.to_dict()``.

The optimiser's and the quantiser's results carry their model as signature and op histogram; read
back, that is a `ModelRecord` (a loaded report, not a runnable model).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tfcpu
from tests.graphs import dense_softmax, tiny_convnet
from tests.keras_models import tiny_resnet
from tfcpu import GraphOptimizer, ModelError, Quantizer, SessionConfig
from tfcpu.errors import ConfigError
from tfcpu.graph._result import OptimizationResult
from tfcpu.graph.compare import Comparison, compare_outputs
from tfcpu.graph.model import Model, ModelRecord
from tfcpu.quantize import QuantizationResult
from tfcpu.runtime import BenchmarkResult, Runner
from tfcpu.runtime.dispatch import DispatchReport, report_from_log
from tfcpu.topology import Topology

DATA = Path(__file__).parents[1] / "data" / "onednn_verbose"


def _again(result: Any) -> Any:
    back = type(result).from_dict(json.loads(json.dumps(result.to_dict())))
    assert back.to_dict() == result.to_dict()
    return back


def test_optimization_result_round_trips_with_checks_and_timings() -> None:
    model = tfcpu.load(tiny_resnet(size=16))  # batch norms to fold: passes that modify, checked each
    result = GraphOptimizer.default().run(model, check_each_pass=True, timing=True)
    assert result.reports and result.check is not None and result.pass_checks and result.timings
    back = _again(result)
    assert isinstance(back, OptimizationResult) and isinstance(back.model, ModelRecord)
    assert back.model.graph_def is None and back.model.op_counts() == result.model.op_counts()
    assert back.nodes_before == model.node_count and back.nodes_after == result.model.node_count
    assert back.check == result.check and back.reports == result.reports
    assert OptimizationResult.from_json(result.to_json()).to_dict() == result.to_dict()
    assert "Graph optimisation" in back._repr_html_()


def test_quantization_result_round_trips_and_its_model_is_a_report_only(
    topology: Callable[[str], Topology],
) -> None:
    model = tiny_convnet()
    result = Quantizer(topology=topology("this_machine")).int8().calibrate("synthetic", batches=2).run(model)
    assert result.quantized and result.calibration is not None and result.optimization is not None
    back = _again(result)
    assert isinstance(back, QuantizationResult)
    assert back.model.inputs == result.model.inputs and back.model.outputs == result.model.outputs
    assert back.model.op_counts() == result.model.op_counts() and back.model.needs_onednn
    assert back.op_types == result.op_types and back.calibration == result.calibration
    assert back.warnings == result.warnings and back.relative_loss == result.relative_loss
    assert QuantizationResult.from_json(result.to_json()).to_dict() == result.to_dict()
    with pytest.raises(ModelError, match="has no graph"):
        back.model.to_bytes()
    with pytest.raises(ConfigError, match="not a QuantizationResult record"):
        QuantizationResult.from_dict({"model": result.to_dict()["model"]})


def test_model_record_keeps_signature_metadata_and_histogram() -> None:
    model = dense_softmax()
    record = Model.from_dict(json.loads(json.dumps(model.to_dict())))
    assert record.to_dict() == model.to_dict()
    assert record.node_count == model.node_count and not record.needs_onednn
    with pytest.raises(ConfigError, match="not a Model record"):
        Model.from_dict({"source": "x"})


def test_comparison_round_trips() -> None:
    rng = np.random.default_rng(0)
    ref = {"logits:0": rng.standard_normal((4, 10)).astype(np.float32)}
    cand = {"logits:0": ref["logits:0"] + rng.normal(0, 1e-3, (4, 10)).astype(np.float32)}
    comparison = compare_outputs(ref, cand, atol=1e-2, label="fp32 vs noisy")
    back = _again(comparison)
    assert isinstance(back, Comparison) and back == comparison and back.passed


def test_dispatch_report_round_trips() -> None:
    log = (DATA / "spr_amx_int8.log").read_text()
    report = report_from_log(log, source="spr", wall_ms=20.0, batch_size=16)
    assert report.rows
    back = _again(report)
    assert isinstance(back, DispatchReport) and back == report


def test_benchmark_result_of_a_real_run_round_trips() -> None:
    with Runner(
        dense_softmax(), SessionConfig.for_topology(Topology.detect()).with_intra_op_threads(1).with_inter_op_threads(1)
    ) as runner:
        result = runner.benchmark(batch_size=2, warmup=1, steps=3)
    back = _again(result)
    assert isinstance(back, BenchmarkResult) and back == result
