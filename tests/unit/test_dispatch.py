"""The dispatch probe's parser on oneDNN verbose logs captured here and synthesised for other ISAs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tfcpu.errors import ConfigError
from tfcpu.runtime.dispatch import (
    DispatchReport,
    add_dispatch_to,
    isa_of_implementation,
    parse_verbose,
    report_from_log,
)

LOGS = Path(__file__).parents[1] / "data" / "onednn_verbose"


def report(name: str, wall_ms: float = 20.0, batch: int = 4) -> DispatchReport:
    return report_from_log((LOGS / f"{name}.log").read_text(), source=name, wall_ms=wall_ms, batch_size=batch)


def test_captured_fp32_keeps_only_the_measured_batch() -> None:
    text = (LOGS / "zen5_fp32.log").read_text()
    all_exec = sum(1 for line in text.splitlines() if ",exec," in line)
    parsed = parse_verbose(text)
    assert len(parsed.execs) == 6 < all_exec  # the warm-up before the begin mark is dropped
    assert parsed.version == "3.7.3"
    assert "AVX-512" in parsed.cpu_isa
    r = report("zen5_fp32")
    assert r.isa_of("convolution") == "avx512_core"
    assert r.kinds()["convolution"]["count"] == 3
    assert r.kinds()["convolution"]["dtypes"] == ["f32"]
    assert r.isa_of("matmul") == "avx512_core"  # inner_product answers for matmul too
    assert not r.uses_amx
    assert r.isa_of("lrn") is None


def test_captured_int8_runs_vnni_kernels_with_integer_types() -> None:
    r = report("zen5_int8")
    assert r.isa_of("convolution") == "avx512_core_vnni"
    assert set(r.kinds()["convolution"]["dtypes"]) == {"s8", "u8"}
    assert r.kinds()["reorder"]["count"] == 2  # quantise at the input, dequantise before the head
    assert r.isa_of("inner_product") == "avx512_core_vnni"
    assert not r.uses_amx


def test_captured_bf16_runs_bf16_kernels_end_to_end() -> None:
    r = report("zen5_bf16")
    assert r.isa_of("convolution") == "avx512_core_bf16"
    assert all(row.dtypes == ("bf16",) for row in r.rows)
    assert "reorder" not in r.kinds()


def test_synthesised_amx_int8_with_timestamps() -> None:
    r = report("spr_amx_int8", wall_ms=20.0, batch=16)
    assert r.uses_amx
    assert r.isa_of("convolution") == "avx512_core_amx"
    assert r.kinds()["convolution"]["count"] == 4
    assert r.onednn_ms == pytest.approx(10.17703, abs=1e-4)
    assert r.outside_share == pytest.approx(1 - 10.17703 / 20.0, abs=1e-4)
    assert "AMX" in r.cpu_isa


def test_timestamp_window_selects_lines() -> None:
    text = (LOGS / "spr_amx_int8.log").read_text()
    parsed = parse_verbose(text, window_ms=(1796100000002.0, 1796100000009.0))
    assert [e.kind for e in parsed.execs] == ["convolution", "pooling", "convolution", "convolution"]
    assert parsed.execs[0].timestamp_ms == pytest.approx(1796100000002.2)


def test_synthesised_avx10_amx_bf16_without_timestamps() -> None:
    r = report("gnr_amx_bf16", batch=16)
    assert r.uses_amx
    assert r.isa_of("convolution") == "avx10_1_512_amx"
    assert r.isa_of("matmul") == "avx10_1_512_amx"
    assert r.kinds()["eltwise"]["count"] == 1
    assert r.kinds()["reorder"]["dtypes"] == ["f32", "bf16"]


def test_synthesised_oneDNN_2_avx2_log() -> None:
    r = report("epyc_avx2_fp32", wall_ms=50.0, batch=16)
    assert r.onednn_version == "2.7.3"
    assert r.isa_of("convolution") == "avx2"
    assert r.kinds()["convolution"]["count"] == 3
    assert r.isa_of("inner_product") == "gemm:jit"  # no ISA in the name: the implementation answers
    assert r.kinds()["inner_product"]["dtypes"] == ["f32"]
    assert not r.uses_amx


def test_overlapping_primitives_are_noted() -> None:
    r = report("epyc_avx2_fp32", wall_ms=30.0)
    assert r.outside_share == 0.0
    assert any("parallel" in n for n in r.notes)


def test_no_exec_lines_is_said() -> None:
    r = report_from_log("some TensorFlow output\n", source="m", wall_ms=5.0, batch_size=1)
    assert r.rows == () and r.outside_share == 1.0
    assert any("no oneDNN exec lines" in n for n in r.notes)
    assert r.isa_of("convolution") is None


@pytest.mark.parametrize(
    ("impl", "isa"),
    [
        ("brg_conv_fwd:avx512_core_amx", "avx512_core_amx"),
        ("jit:avx2", "avx2"),
        ("gemm:jit", ""),
        ("ref:any", "any"),
        ("brgemm:avx10_1_512_amx", "avx10_1_512_amx"),
    ],
)
def test_isa_of_implementation(impl: str, isa: str) -> None:
    assert isa_of_implementation(impl) == isa


def test_report_round_trips_and_renders() -> None:
    r = report("spr_amx_int8", batch=16)
    again = DispatchReport.from_json(json.dumps(r.to_dict()))
    assert again == r
    assert again.to_dict() == r.to_dict()
    text = str(r)
    assert "brg_conv_fwd:avx512_core_amx" in text and "outside oneDNN" in text and "AMX used" in text
    assert "<table" in r._repr_html_()


def test_add_dispatch_to_names_the_convolution_isa() -> None:
    out = add_dispatch_to({"throughput": 1.0}, report("zen5_int8"))
    assert out["dispatch"]["convolution_isa"] == "avx512_core_vnni"
    assert json.loads(json.dumps(out))["dispatch"]["kinds"]["convolution"]["count"] == 3


def test_probe_refuses_backends_without_a_onednn_log() -> None:
    from tests.graphs import dense_softmax
    from tfcpu.runtime.dispatch import probe_dispatch

    with pytest.raises(ConfigError, match="does not write"):
        probe_dispatch(dense_softmax(), backend="openvino")


def test_brief_names_the_main_kernels() -> None:
    assert report("spr_amx_int8", wall_ms=20.0).brief() == "conv avx512_core_amx s8/u8, 49% outside oneDNN"
    assert report("epyc_avx2_fp32", wall_ms=50.0).brief().startswith("conv avx2 f32, ")
    assert report_from_log("", source="m", wall_ms=1.0, batch_size=1).brief() == "no oneDNN kernels"


def test_captured_onednn_off_shows_only_the_sgemm_api() -> None:
    r = report("zen5_fp32_onednn_off")
    assert set(r.kinds()) == {"gemm_api"} and r.kinds()["gemm_api"]["count"] == 23
    assert r.kinds()["gemm_api"]["dtypes"] == ["f32"]  # oneDNN 3.7 still writes these in the 2.x src_f32 form
    assert r.brief().startswith("sgemm API f32, ")  # no implementation named on these lines: none shown
    assert r.isa_of("convolution") is None
    assert any("Eigen" in n for n in r.notes)
