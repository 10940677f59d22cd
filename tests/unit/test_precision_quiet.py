"""One place silences TensorFlow's start-up chatter (issue 19, item 3): tfcpu's commands print none of
absl's pre-init notice, "oneDNN custom operations are on" or the CUDA probe lines; ``--debug`` shows them;
a CUDA_VISIBLE_DEVICES the user chose is never overridden."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.graphs import dense_softmax
from tfcpu.session import precision

CHATTER_GREP = ("absl", "cuda", "oneDNN custom")  # the acceptance test's grep, case-sensitive like grep


def _inspect(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    model = dense_softmax().save(tmp_path / "tiny.pb")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES")}
    return subprocess.run(
        [sys.executable, "-m", "tfcpu", *flags, "inspect", str(model)],
        env=env, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[2],
    )  # fmt: skip


def test_tfcpu_inspect_prints_no_tensorflow_start_up_chatter(tmp_path: Path) -> None:
    proc = _inspect(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    both = proc.stdout + proc.stderr
    assert [line for line in both.splitlines() if any(w in line for w in CHATTER_GREP)] == []
    assert "Placeholder" in proc.stdout  # it did import TensorFlow and inspect the graph


def test_debug_lets_the_start_up_lines_through(tmp_path: Path) -> None:
    proc = _inspect(tmp_path, "--debug")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # absl's pre-init notice or the CUDA driver probe appear on every CPU-only host TensorFlow 2.21 runs on
    assert "absl::InitializeLog" in proc.stderr or "cuda" in proc.stderr


def test_filtered_stderr_drops_chatter_and_keeps_everything_else(capfd: pytest.CaptureFixture[str]) -> None:
    with precision.filtered_stderr():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on. You may see ...\n")
        os.write(2, b"a real problem the user must see\n")
    err = capfd.readouterr().err
    assert err == "a real problem the user must see\n"


def test_cuda_visible_devices_is_hidden_only_when_the_user_did_not_choose() -> None:
    assert precision.child_env(base={})["CUDA_VISIBLE_DEVICES"] == ""
    for debug in (False, True):
        env = precision.child_env(base={"CUDA_VISIBLE_DEVICES": "0", "TF_CPP_MIN_LOG_LEVEL": "1"}, debug=debug)
        assert env["CUDA_VISIBLE_DEVICES"] == "0"
        assert env["TF_CPP_MIN_LOG_LEVEL"] == ("0" if debug else "1")


def test_quiet_tensorflow_in_a_fresh_interpreter_keeps_user_values_and_filters_the_import() -> None:
    code = (
        "import os, sys; from tfcpu.session.precision import quiet_tensorflow; quiet_tensorflow();"
        "print(os.environ['CUDA_VISIBLE_DEVICES'], os.environ['TF_CPP_MIN_LOG_LEVEL']);"
        "import tensorflow; print(type(sys.meta_path[0]).__name__)"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "1", "TF_CPP_MIN_LOG_LEVEL": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, second = proc.stdout.split("\n")[:2]
    assert first == "1 1"
    assert second != "_QuietImport"  # the import hook removed itself
    assert "oneDNN custom" not in proc.stderr and "absl::InitializeLog" not in proc.stderr


def test_a_library_call_sets_log_levels_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # as if not imported yet: prepare_process may set
    monkeypatch.delitem(sys.modules, "tensorflow")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    before = list(sys.meta_path)
    precision.prepare_process(precision.decide_onednn(needs_onednn=False, environ={}), where="test")
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ  # the user's GPUs are theirs
    assert sys.meta_path == before  # no import hook from a library call
