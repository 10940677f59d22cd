"""CI tests both oneDNN settings: pytest's header says which one this run has, the oneDNN-sensitive tests
carry the ``onednn`` marker, and .ci/run and nox run them again with the opposite value."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from tests import onednn
from tfcpu.topology import Topology

ROOT = Path(__file__).resolve().parents[2]
FILES = ("tests/unit/test_runner.py", "tests/unit/test_readme.py")


def test_the_state_reads_the_variable_and_otherwise_this_cpus_default() -> None:
    assert onednn.state({"TF_ENABLE_ONEDNN_OPTS": "0"}) == (False, "TF_ENABLE_ONEDNN_OPTS=0")
    assert onednn.state({"TF_ENABLE_ONEDNN_OPTS": "1"})[0] is True
    assert onednn.opposite({"TF_ENABLE_ONEDNN_OPTS": "1"}) == "0"
    assert onednn.opposite({"TF_ENABLE_ONEDNN_OPTS": "0"}) == "1"
    default = Topology.detect().onednn_default
    on, why = onednn.state({})
    assert on is default and "unset" in why
    assert onednn.opposite({}) == ("0" if default else "1")
    assert onednn.header({"TF_ENABLE_ONEDNN_OPTS": "0"}).startswith("tfcpu: oneDNN off in this run")


def test_every_listed_file_exists_and_covers_passes_quantiser_and_runner() -> None:
    for name in onednn.SENSITIVE:
        assert (ROOT / name).is_file(), f"{name} is listed in tests/onednn.py but does not exist"
    joined = " ".join(onednn.SENSITIVE)
    for part in ("graph_passes", "quantize", "runner", "optimize"):
        assert part in joined


def test_ci_and_nox_run_the_second_leg_with_the_opposite_value() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line for line in ci if line.strip() and not line.lstrip().startswith("#")]
    readme_command = next(line for line in commands if "pytest" in line)

    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert readme_command == blocks[1].strip()  # the README's test command, first
    leg = 'TF_ENABLE_ONEDNN_OPTS="$(python -m tests.onednn)" python -m pytest -m onednn'
    assert leg in commands and commands.index(leg) > commands.index(readme_command)
    nox = (ROOT / "noxfile.py").read_text()
    assert re.search(r"def onednn\(session", nox) and '"tests.onednn"' in nox and '"-m", "onednn"' in nox


def test_pytest_prints_the_setting_and_marks_the_sensitive_tests() -> None:
    env_off = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-m", "onednn", "-p", "no:cacheprovider", *FILES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env_off,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "tfcpu: oneDNN off in this run (TF_ENABLE_ONEDNN_OPTS=0)" in proc.stdout
    assert "test_runner.py" in proc.stdout and "test_ci_runs_the_readme_test_command" not in proc.stdout


# -- the capped-ISA leg (issue 27) -----------------------------------------------------------------------
def test_isa_cap_hides_what_onednn_will_not_use_and_the_policy_follows(
    captured_root: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A captured AMX Xeon capped at AVX2 reads as an AVX2 server: no VNNI, BF16 refused, oneDNN off by default."""
    from tfcpu.errors import ConfigError
    from tfcpu.session.precision import check_precision
    from tfcpu.topology.isa import cap_isa

    amx = Topology.detect(captured_root("xeon_amx_2vcpu"))
    assert amx.precisions["bf16"].accelerated and amx.precisions["int8"].accelerated and amx.onednn_default
    kept, hidden = cap_isa(amx.isa, "AVX2")
    assert {"avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"} <= set(hidden)
    assert "avx2" in kept and not set(kept) & set(hidden)
    capped = replace(amx, isa=kept)
    assert not capped.precisions["bf16"].accelerated and not capped.precisions["int8"].accelerated
    assert capped.onednn_default is False
    check_precision("bf16", amx)
    with pytest.raises(ConfigError, match="AVX512_BF16"):
        check_precision("bf16", capped)
    vnni_cap = set(cap_isa(amx.isa, "avx512_core_vnni")[1])
    assert {"avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"} <= vnni_cap and "avx512_vnni" not in vnni_cap
    for no_cap in (None, "", "ALL", "default", "AVX9000"):  # oneDNN ignores what it does not know
        assert cap_isa(amx.isa, no_cap) == (amx.isa, ())
    # detect() applies the variable to this machine only, never to a captured tree
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "SSE41")
    here = Topology.detect()
    assert "avx2" not in here.isa and "fma" not in here.isa
    assert any("ONEDNN_MAX_CPU_ISA=SSE41" in note and "hidden" in note for note in here.notes), here.notes
    assert Topology.detect(captured_root("xeon_amx_2vcpu")).isa == amx.isa


_CONV = "import tensorflow as tf; tf.nn.conv2d(tf.ones((1, 16, 16, 8)), tf.ones((3, 3, 8, 8)), 1, 'SAME')"
_OV_CONV = """
import numpy as np, openvino as ov
from openvino import opset13 as ops
p = ops.parameter([1, 8, 16, 16], np.float32)
w = ops.constant(np.ones((8, 8, 3, 3), np.float32))
m = ov.Model([ops.convolution(p, w, [1, 1], [1, 1], [1, 1], [1, 1])], [p])
cm = ov.Core().compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
print(" ".join(sorted({n.get_rt_info()["primitiveType"].astype(str) for n in cm.get_runtime_model().get_ops()})))
"""


def _child(code: str, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env={**os.environ, **env}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_isa_cap_is_honoured_by_tensorflows_and_openvinos_onednn() -> None:
    """ONEDNN_MAX_CPU_ISA reaches both oneDNN builds: SSE4.1 is below every x86-64 CPU TensorFlow runs on,
    so the cap shows on any machine; under the capped leg, the leg's own cap must show too."""
    verbose = {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_VERBOSE": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    assert "isa:Intel SSE4.1" in _child(_CONV, {**verbose, "ONEDNN_MAX_CPU_ISA": "SSE41"})
    kinds = _child(_OV_CONV, {"ONEDNN_MAX_CPU_ISA": "SSE41"}).split()
    assert any("sse42" in k for k in kinds) and not any("avx" in k for k in kinds), kinds
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    if cap:  # the capped leg: nothing above its level runs
        line = next(x for x in _child(_CONV, verbose).splitlines() if "info,cpu,isa:" in x)
        assert "AVX-512" not in line and "AMX" not in line and "VNNI" not in line, line
        kinds = _child(_OV_CONV, {}).split()
        assert not any("avx512" in k or "amx" in k for k in kinds), kinds


def test_ci_and_nox_run_the_capped_leg_on_existing_tests() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "ONEDNN_MAX_CPU_ISA=AVX2 python -m pytest -m capped_isa" in ci
    assert '"$(python -m tests.onednn capped)"' in ci
    assert onednn.CAP == {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    nox = (ROOT / "noxfile.py").read_text()
    assert re.search(r'name="capped-isa".*\ndef capped_isa\(session', nox) and '"-m", "capped_isa"' in nox
    for prefix in onednn.CAPPED:
        assert (ROOT / prefix.split("::")[0]).is_file(), prefix
    hidden = subprocess.run(
        [sys.executable, "-m", "tests.onednn", "capped"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert hidden.returncode == 0 and hidden.stdout.split() == list(onednn.capped_hides())
