"""The real dispatch probe: one batch of a tiny ResNet in a child with oneDNN's verbose log."""

from __future__ import annotations

import argparse
import json

import pytest

import tfcpu
from tests.keras_models import tiny_resnet
from tfcpu.runtime.dispatch import add_cli_argument, cli_dispatch


@pytest.mark.slow
def test_probe_names_the_convolution_isa_of_this_cpu() -> None:
    topo = tfcpu.Topology.detect()
    model = tfcpu.load(tiny_resnet())
    parser = argparse.ArgumentParser()
    add_cli_argument(parser)
    args = parser.parse_args(["--dispatch"])
    args.batch_size, args.onednn = 2, None
    data: dict[str, object] = {"throughput": 1.0}
    report = cli_dispatch(args, model, data)  # what `tfcpu bench --dispatch --json` adds to its result
    assert report is not None
    assert json.loads(json.dumps(data))["dispatch"]["convolution_isa"] == report.isa_of("convolution")
    assert report.env["ONEDNN_VERBOSE"] == "profile_exec"
    assert report.wall_ms > 0 and report.batch_size == 2
    choice = report.env.get("TF_ENABLE_ONEDNN_OPTS")  # set in the child only when someone chose
    if choice == "0" or (choice is None and not topo.onednn_default):
        # oneDNN off (asked for, or TensorFlow's default on this CPU): Eigen ran, and the report says so
        # (Eigen's contractions may still call oneDNN's sgemm: gemm_api rows, no convolution primitive)
        assert report.isa_of("convolution") is None
        assert set(report.kinds()) <= {"gemm_api"}
        assert any("no oneDNN exec lines" in n or "Eigen" in n for n in report.notes)
        return
    isa = report.isa_of("convolution")
    assert isa is not None, report.to_dict()
    assert report.kinds()["convolution"]["count"] == 3  # stem + two block convolutions, warm-up excluded
    # an FP32 graph: AVX-512 (or AVX10) kernels where the CPU has them, AVX2 otherwise; AMX is for INT8/BF16
    expected = ("avx512", "avx10") if topo.has("avx512f") else ("avx2",)
    assert any(e in isa for e in expected), isa
    assert 0.0 <= report.outside_share < 1.0
