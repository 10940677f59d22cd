"""ITEX backend, in the itex environment (TensorFlow 2.15 + intel-extension-for-tensorflow).

The graphs were frozen (FP32) and quantised (tfcpu INT8) by a newer TensorFlow (2.21 today) in
the main environment, which also computed the reference outputs without ITEX.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tfcpu
from tfcpu.runtime.runner import Runner
from tfcpu.session.config import ItexSettings, SessionConfig


def _model(fixtures: Path, meta: dict[str, Any], name: str) -> tfcpu.Model:
    return tfcpu.load(fixtures / f"resnet50_{name}.pb", inputs=[meta["input"]], outputs=[meta["output"]])


def _has_avx512() -> bool:
    from tfcpu.topology import Topology

    return "avx512f" in Topology.detect().isa


def test_bf16_amp_refused_without_avx512():
    from tfcpu.errors import ConfigError

    config = SessionConfig.for_topology().with_itex(amp="bf16")  # a builder reads no machine
    assert config.itex is not None
    if not _has_avx512():  # apply() refuses it (this branch ran for the first time on an AVX2-only EPYC)
        import os

        saved = dict(os.environ)
        try:
            with pytest.raises(ConfigError, match="needs AVX-512"):
                config.apply()
            assert dict(os.environ) == saved  # refused before anything was set
        finally:
            os.environ.clear()
            os.environ.update(saved)


def test_environment_is_tf215_with_itex():
    import tensorflow as tf

    from tfcpu.session.runtime import runtime_info

    info = runtime_info()
    assert tf.__version__.startswith("2.15.")
    assert info.itex_installed and info.itex_version is not None and info.itex_version.startswith("2.15")
    assert info.threading == "openmp" and info.kmp_effective


def test_itex_threadpool_off_means_eigen(monkeypatch):
    from tfcpu.session.runtime import runtime_info

    monkeypatch.setenv("ITEX_OMP_THREADPOOL", "0")
    runtime_info.cache_clear()
    try:
        assert runtime_info().threading == "eigen"
    finally:
        runtime_info.cache_clear()


def test_with_itex_builds_itex_config_and_env():
    import intel_extension_for_tensorflow as itex

    base = SessionConfig.for_topology()
    # amp="bf16" is refused on CPUs without AVX-512; build the settings directly to test the mapping.
    config = dataclasses.replace(base.with_itex(layout=False), itex=ItexSettings(amp="bf16", layout=False))
    proto = config.itex_config()
    assert isinstance(proto, itex.ConfigProto)
    assert proto.graph_options.auto_mixed_precision == itex.ON
    assert proto.graph_options.auto_mixed_precision_options.data_type == itex.BFLOAT16
    assert proto.graph_options.layout_opt == itex.OFF
    env = config.env()
    assert env["ITEX_AUTO_MIXED_PRECISION"] == "1" and env["ITEX_LAYOUT_OPT"] == "0"
    assert env["TF_ENABLE_ONEDNN_OPTS"] == "1" and env["ITEX_OMP_THREADPOOL"] == "1"
    exp = config.explain()
    assert exp.row("KMP_AFFINITY").takes_effect is True
    assert exp.row("ITEX_AUTO_MIXED_PRECISION").takes_effect is True
    eigen = SessionConfig.for_topology().with_itex(threadpool="eigen").explain()
    assert eigen.row("KMP_AFFINITY").takes_effect is False


def test_the_raw_newer_graph_aborts_itex(fixtures, meta):
    """The premise: without tfcpu's stripping, ITEX kills the process on a newer TensorFlow's MatMul."""
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        "g = tf.compat.v1.GraphDef(); g.ParseFromString(open(sys.argv[1], 'rb').read())\n"
        "graph = tf.Graph()\n"
        "with graph.as_default(): tf.compat.v1.import_graph_def(g, name='')\n"
        "with tf.compat.v1.Session(graph=graph) as s:\n"
        "    s.run(sys.argv[3], {sys.argv[2]: np.zeros((1, 8), np.float32)})\n"
    )
    path = str(fixtures / "matmul_raw.pb")
    proc = subprocess.run(
        [sys.executable, "-c", script, path, meta["matmul_input"], meta["matmul_output"]],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode != 0
    assert "AttrDef not found for attribute grad_" in proc.stderr


@pytest.mark.parametrize(("name", "atol"), [("fp32", 1e-4), ("int8", 2e-3)])
def test_newer_graph_runs_under_itex_and_matches_stock_tensorflow(fixtures, meta, name, atol):
    from tensorflow.python.framework import versions

    model = _model(fixtures, meta, name)
    assert model.graph_def.versions.producer > versions.GRAPH_DEF_VERSION  # really from a newer TF
    ref = np.load(fixtures / "reference.npz")
    config = SessionConfig.for_topology().with_itex()
    with Runner(model, config) as runner:
        out = runner.run(ref["input"])[meta["output"]]
    expected = ref[name]
    assert out.shape == expected.shape
    # Outputs are softmax probabilities (1000 classes, random weights): compare absolutely and
    # against the output's own scale; INT8 kernels differ in rounding between oneDNN builds.
    err = float(np.max(np.abs(out - expected)))
    assert err <= atol + 0.02 * float(np.max(np.abs(expected))), f"{name}: max abs error {err:.3g}"
    assert np.array_equal(out.argmax(axis=1), expected.argmax(axis=1)) or name == "int8"


def test_int8_graph_keeps_its_int8_ops_under_itex(fixtures, meta):
    model = _model(fixtures, meta, "int8")
    assert set(meta["int8_ops"]) <= set(model.op_counts())
    assert meta["int8_ops"]


def test_default_optimizer_strips_the_newer_attributes(fixtures, meta):
    result = tfcpu.GraphOptimizer.default().run(_model(fixtures, meta, "fp32"), check=True, batch=1)
    changed = result.report("strip_unknown_attrs").changed
    assert any(c.endswith(".grad_a") for c in changed) and any(c.endswith(".grad_b") for c in changed)
    assert result.check is not None and result.check.passed


@pytest.mark.parametrize("amp", [None, "bf16"])
def test_bench_cli_with_itex_reports_throughput(fixtures, meta, amp):
    argv = [
        sys.executable, "-m", "tfcpu", "bench", str(fixtures / "resnet50_fp32.pb"),
        "--inputs", meta["input"], "--outputs", meta["output"],
        "--itex", "--json", "--batch-size", "2", "--warmup", "1", "--steps", "3",
    ]  # fmt: skip
    if amp:
        argv += ["--amp", amp]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, env={**os.environ})
    if amp == "bf16" and not _has_avx512():
        # ITEX's AVX2 backend segfaulted on bf16 AMP here: tfcpu refuses before starting.
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "needs AVX-512" in proc.stderr
        return
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert data["throughput"] > 0
    assert data["itex"] == {"amp": amp, "layout": None, "threadpool": "openmp"}
