"""`import tfcpu` is cheap and side-effect free (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = r"""
import json, os, sys
before = dict(os.environ)
aff = sorted(os.sched_getaffinity(0))
import tfcpu
import tfcpu.topology, tfcpu.errors, tfcpu.cli
tfcpu.Topology.detect()
print(json.dumps({
    "heavy": sorted(m for m in ("tensorflow", "neural_compressor", "keras", "tf_keras") if m in sys.modules),
    "env_changed": sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)),
    "affinity_changed": sorted(os.sched_getaffinity(0)) != aff,
}))
"""


def test_import_is_light_and_pure() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"heavy": [], "env_changed": [], "affinity_changed": False}


def test_error_tree_has_one_root() -> None:
    import tfcpu
    from tfcpu import errors

    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, tfcpu.TfcpuError), name
    err = tfcpu.ConfigError("bad threads", where="intra_op", why="must be >= 1", hint="use 1 or more")
    assert str(err) == "bad threads [intra_op]: must be >= 1\n  hint: use 1 or more"
    assert isinstance(err, ValueError)
    missing = tfcpu.MissingDependencyError("openvino", extra="bench")
    assert 'pip install "tfcpu[bench]"' in str(missing)


def test_did_you_mean() -> None:
    from tfcpu.errors import did_you_mean

    assert (did_you_mean("inputt", ["input", "output"]) or "").startswith("did you mean 'input'")
    assert did_you_mean("zzz", ["input"]) is None


def test_library_never_prints(capsys: object) -> None:
    import pathlib

    import tfcpu

    root = pathlib.Path(tfcpu.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if "cli" in path.parts:
            continue
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip().startswith("print("):
                offenders.append(f"{path}:{lineno}")
    assert offenders == []
