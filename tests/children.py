"""Helpers of tests that run code outside the pytest process: a script loaded as a module, a fresh
interpreter running a snippet and the JSON line it printed last."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def load_script(relative: str) -> ModuleType:
    """The repository script ``relative`` (``"docs/gen_cli.py"``) imported as a module, without running
    its ``__main__`` block."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_snippet(code: str, *args: str, env: Mapping[str, str], timeout: float = 300) -> Any:
    """Run ``python -c code args...`` from the repository root with ``env`` added to this process's
    environment; assert it exited 0 and return the JSON of the last line it printed."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def marked_processes(variable: str, value: str) -> list[Any]:
    """Every process on the machine whose environment has ``variable=value`` (descendants inherit it)."""
    import psutil

    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(variable) == value:
                found.append(proc)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found
