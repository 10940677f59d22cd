"""CLI hardening: bad inputs give exit 2, one line and a hint, no traceback; unsafe models are refused;
``-o`` never clobbers the input; a failed run leaves no output."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.graphs import dense_softmax, reads_file
from tfcpu.cli.main import main

MODEL_COMMANDS = {
    "inspect": [],
    "optimize": ["-o", "{out}"],
    "quantize": ["-o", "{out}"],
    "bench": ["--steps", "1", "--warmup", "0", "--batch-size", "1"],
    "tune": ["--duration", "0.1", "--cores-per-instance", "1"],
}


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    if argv[0] in ("bench", "tune"):
        # one-process bench/tune set the environment before TensorFlow starts: a fresh process each
        proc = subprocess.run(["tfcpu", *argv], capture_output=True, text=True, timeout=600)
        return proc.returncode, proc.stdout, proc.stderr
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _assert_clean_error(err: str, command: str) -> None:
    # TensorFlow's native logging (absl) may print start-up lines of its own; tfcpu's are the rest
    lines = [line for line in err.strip().splitlines() if not re.match(r"^([IWE]\d{4} |WARNING: All log)", line)]
    assert "Traceback" not in err
    assert lines[0].startswith(f"tfcpu {command}: error: "), err
    assert len(lines) <= 2 and all(line.startswith("  hint: ") for line in lines[1:]), err


def _inputs(tmp_path: Path) -> dict[str, Path]:
    files = {
        "missing": tmp_path / "nope.pb",
        "empty": tmp_path / "empty.pb",
        "garbage": tmp_path / "garbage.pb",
        "truncated": tmp_path / "truncated.pb",
    }
    files["empty"].write_bytes(b"")
    files["garbage"].write_bytes(os.urandom(64) + b"\xff" * 64)
    data = dense_softmax().graph_def.SerializeToString()
    files["truncated"].write_bytes(data[: len(data) // 2])
    return files


@pytest.mark.parametrize("command", list(MODEL_COMMANDS))
def test_bad_model_inputs_exit_2_with_one_line_and_leave_files_untouched(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "out.pb"
    extra = [a.format(out=out) for a in MODEL_COMMANDS[command]]
    expected = {"missing": "not found", "empty": "empty", "garbage": "not a GraphDef", "truncated": "GraphDef"}
    for kind, path in _inputs(tmp_path).items():
        if command in ("bench", "tune") and kind in ("empty", "truncated"):
            continue  # the same load path as inspect; spare two TensorFlow start-ups
        before = path.read_bytes() if path.exists() else None
        code, _, err = _run([command, str(path), *extra], capsys)
        assert code == 2 and expected[kind] in err, (kind, err)
        _assert_clean_error(err, command)
        assert (path.read_bytes() if path.exists() else None) == before
        assert not out.exists()
    code, _, err = _run([command, "ResNet5O", *extra], capsys)  # a mistyped application name
    assert code == 2 and "did you mean 'ResNet50'" in err
    _assert_clean_error(err, command)


@pytest.mark.parametrize(
    "argv",
    [
        ["topology", "--root", "/no/such/tree.json"],
        ["config", "--root", "/no/such/tree.json"],
        ["plan", "--root", "/no/such/tree.json", "--instances", "1"],
        ["plan", "--instances", "0"],
        ["demo", "--model", "ResNet5O"],
        ["demo", "--output", __file__],  # an existing file, not a directory: refused before any work
        ["demo", "--duration", "0"],
        ["inspect", "dense.pb", "--allow-unsafe-ops", "ReadFil"],
    ],
)
def test_other_commands_exit_2_on_bad_input(argv: list[str], capsys: pytest.CaptureFixture[str]):
    code, _, err = _run(argv, capsys)
    assert code == 2, err
    _assert_clean_error(err, argv[0])


def test_unexpected_exceptions_are_one_line_internal_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    import tfcpu.cli.inspect as inspect_cli

    def broken(args: object) -> int:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(inspect_cli, "run", broken)
    code, _, err = _run(["inspect", "x.pb"], capsys)
    assert code == 1 and "internal error: RuntimeError: boom" in err and "--debug" in err
    assert "Traceback" not in err and "second line" not in err
    with pytest.raises(RuntimeError):
        main(["--debug", "inspect", "x.pb"])


@pytest.mark.parametrize("in_function", [False, True])
def test_read_file_models_are_refused_unless_allowed(
    in_function: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    secret = tmp_path / "secret.txt"
    secret.write_text("abc")
    model = reads_file(str(secret), in_function=in_function)
    pb = tmp_path / "reads.pb"
    model.save(pb)
    out = tmp_path / "out.pb"
    for command, extra in MODEL_COMMANDS.items():
        if command == "tune":
            continue
        code, stdout, err = _run([command, str(pb), *[a.format(out=out) for a in extra]], capsys)
        assert code == 2, (command, err)
        _assert_clean_error(err, command)
        assert "ReadFile" in err and "--allow-unsafe-ops ReadFile" in err
        assert not out.exists()
    # inspect runs in report mode: it prints what the scan found before failing
    code, stdout, err = _run(["inspect", str(pb), "--json"], capsys)
    assert code == 2 and json.loads(stdout)["safety"]["findings"][0]["op"] == "ReadFile"

    allow = ["--allow-unsafe-ops", "ReadFile"]
    code, stdout, err = _run(["inspect", str(pb), "--json", *allow], capsys)
    assert code == 0, err
    assert json.loads(stdout)["safety"]["findings"][0]["allowed"] is True
    code, stdout, err = _run(["optimize", str(pb), "-o", str(out), "--json", *allow], capsys)
    assert code == 0, err
    assert out.exists()
    code, stdout, err = _run(["bench", str(pb), "--steps", "2", "--warmup", "0", "--json", *allow], capsys)
    assert code == 0, err
    assert json.loads(stdout)["throughput"] > 0
    if in_function:  # quantize too (its own process: it sets oneDNN up before TensorFlow starts)
        quantized = tmp_path / "q.pb"
        proc = subprocess.run(
            ["tfcpu", "quantize", str(pb), "-o", str(quantized), "--json", *allow],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr
        assert quantized.exists()


def test_output_equal_to_input_is_refused_without_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    pb = tmp_path / "model.pb"
    dense_softmax().save(pb)
    before, inode = pb.read_bytes(), pb.stat().st_ino
    for command in ("optimize", "quantize"):
        code, _, err = _run([command, str(pb), "-o", str(pb)], capsys)
        assert code == 2 and "--overwrite" in err
        _assert_clean_error(err, command)
        assert pb.read_bytes() == before
    code, _, err = _run(["optimize", str(pb), "-o", str(pb), "--overwrite"], capsys)
    assert code == 0, err
    # replaced by a rename (a new inode), no temporary file left behind
    assert pb.stat().st_ino != inode and [p.name for p in tmp_path.iterdir()] == ["model.pb"]


def test_a_failed_optimize_leaves_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    from tfcpu.errors import PassError
    from tfcpu.graph.optimizer import GraphOptimizer

    def failing(self: object, *args: object, **kwargs: object) -> object:
        raise PassError("a pass broke the graph", where="fold_constants")

    pb = tmp_path / "model.pb"
    dense_softmax().save(pb)
    monkeypatch.setattr(GraphOptimizer, "run", failing)
    code, _, err = _run(["optimize", str(pb), "-o", str(tmp_path / "out.pb")], capsys)
    assert code == 1 and "a pass broke the graph" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pb"]  # no output, no temporary file
