"""Outputs: checked before the work (exit 2, one line + hint), written with the user's umask, and any
write failure (permissions, no space, a parent that is a file) is an OutputError naming the path."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TOPOLOGIES
from tests.graphs import dense_softmax
from tfcpu._io import atomic_write_bytes, atomic_write_text, check_writable
from tfcpu.cli.main import main
from tfcpu.errors import ConfigError, OutputError

XEON = str(TOPOLOGIES / "xeon_gold_6252_2s.json")


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def under_a_file(tmp_path: Path) -> Path:
    """A directory path whose parent is a regular file: unwritable even for root."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    return blocker / "sub"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _one_line_error(err: str, command: str) -> list[str]:
    lines = [line for line in err.strip().splitlines() if line.startswith(("tfcpu ", "  hint: "))]
    assert lines and lines[0].startswith(f"tfcpu {command}: error: "), err
    assert len(lines) == 2 and lines[1].startswith("  hint: "), err
    assert "Traceback" not in err and "internal error" not in err
    return lines


@pytest.mark.usefixtures("umask")
def test_new_files_get_the_umask_and_replaced_files_keep_their_mode(tmp_path: Path) -> None:
    new = atomic_write_text(tmp_path / "new.json", "{}\n")
    assert _mode(new) == 0o644
    os.umask(0o077)
    assert _mode(atomic_write_text(tmp_path / "private.json", "{}\n")) == 0o600
    os.umask(0o022)
    script = tmp_path / "run.sh"
    script.write_text("old\n")
    script.chmod(0o750)
    atomic_write_text(script, "new\n")
    assert _mode(script) == 0o750 and script.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.json", "private.json", "run.sh"]


@pytest.mark.usefixtures("umask")
def test_a_saved_graph_is_0644_under_umask_022(tmp_path: Path) -> None:
    pb = dense_softmax().save(tmp_path / "model.pb")
    assert _mode(pb) == 0o644
    assert _mode(dense_softmax().save(tmp_path / "model.pbtxt")) == 0o644


@pytest.mark.usefixtures("umask")
def test_the_cli_writes_0644_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pb = dense_softmax().save(tmp_path / "model.pb")
    out = tmp_path / "opt.pb"
    assert main(["optimize", str(pb), "-o", str(out), "--no-check"]) == 0
    assert _mode(out) == 0o644
    script = tmp_path / "launch.sh"
    assert main(["plan", "--root", XEON, "--instances", "2", "-o", str(script), "--script", "python", "x.py"]) == 0
    assert _mode(script) == 0o755  # 0644 plus the executable bits plan adds
    capture = tmp_path / "topo.json"
    assert main(["topology", "--capture", str(capture)]) == 0
    assert _mode(capture) == 0o644
    capsys.readouterr()


def test_a_path_under_a_file_is_refused_by_the_check_and_by_the_writer(under_a_file: Path) -> None:
    with pytest.raises(OutputError) as info:
        check_writable(under_a_file / "x.pb")
    assert isinstance(info.value, ConfigError) and info.value.exit_code == 2
    assert "a-file is a file" in str(info.value) and "hint:" in str(info.value)
    with pytest.raises(OutputError) as info:
        atomic_write_bytes(under_a_file / "x.pb", b"data")
    assert str(under_a_file / "x.pb") in str(info.value) and info.value.hint
    with pytest.raises(OutputError):
        check_writable(under_a_file.parent, directory=True)  # a file where a directory is wanted
    with pytest.raises(OutputError):
        check_writable(under_a_file.parent.parent)  # a directory where a file is wanted
    assert check_writable(under_a_file.parent.parent / "new" / "deeper" / "x.pb").name == "x.pb"
    assert not (under_a_file.parent.parent / "new").exists()  # the check creates nothing


def test_model_save_raises_an_output_error_not_a_bare_oserror(under_a_file: Path) -> None:
    with pytest.raises(OutputError) as info:
        dense_softmax().save(under_a_file / "model.pb")
    assert str(under_a_file / "model.pb") in str(info.value)


def test_a_read_only_directory_is_named_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # root ignores mode bits: the real denial case is the file parent above; here the access check is denied
    monkeypatch.setattr("tfcpu._io.os.access", lambda path, mode: Path(path) != tmp_path)
    with pytest.raises(OutputError) as info:
        check_writable(tmp_path / "out.pb")
    assert "not writable" in str(info.value) and str(tmp_path) in str(info.value)
    assert "-o/--output" in str(info.value)


@pytest.mark.parametrize(
    ("code", "words"), [(errno.ENOSPC, "no space left"), (errno.EDQUOT, "no space left"), (errno.EACCES, "writable")]
)
def test_write_time_failures_are_output_errors_and_leave_no_temporary_file(
    code: int, words: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "demo.json"
    target.write_text("old\n")

    def failing_fsync(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr("tfcpu._io.os.fsync", failing_fsync)
    with pytest.raises(OutputError) as info:
        atomic_write_text(target, "new\n")
    assert words in str(info.value) and str(target) in str(info.value)
    assert [p.name for p in tmp_path.iterdir()] == ["demo.json"] and target.read_text() == "old\n"


def _no_work(*args: object, **kwargs: object) -> object:
    raise AssertionError("the output should have been refused before the work")


@pytest.mark.parametrize("command", ["optimize", "quantize"])
def test_model_commands_refuse_an_unwritable_output_before_loading(
    command: str,
    under_a_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pb = dense_softmax().save(tmp_path / "model.pb")
    monkeypatch.setattr("tfcpu.graph.load.load", _no_work)
    assert main([command, str(pb), "-o", str(under_a_file / "out.pb")]) == 2
    lines = _one_line_error(capsys.readouterr().err, command)
    assert "output path is not usable" in lines[0]


def test_plan_script_tune_plot_and_topology_capture_refuse_an_unwritable_output(
    under_a_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["plan", "--root", XEON, "--instances", "2", "-o", str(under_a_file / "x.sh"), "--script", "python"]
    assert main(argv) == 2
    _one_line_error(capsys.readouterr().err, "plan")
    monkeypatch.setattr("tfcpu.graph.load.load", _no_work)
    assert main(["tune", "model.pb", "--cores-per-instance", "1", "--plot", str(under_a_file / "t.png")]) == 2
    _one_line_error(capsys.readouterr().err, "tune")
    monkeypatch.setattr("tfcpu.cli.topology.capture", _no_work)
    assert main(["topology", "--capture", str(under_a_file / "topo.json")]) == 2
    _one_line_error(capsys.readouterr().err, "topology")
