"""Shared fixtures: captured topologies and an environment that every test leaves as it found it; the
oneDNN setting of the run in pytest's header and the ``onednn`` marker on the tests of both CI legs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import onednn
from tfcpu.topology import Topology, materialise

DATA = Path(__file__).parent / "data"
TOPOLOGIES = DATA / "topologies"


ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    onednn.start_as_capped()  # the capped-ISA leg only: TensorFlow starts as on the capped CPU


def pytest_report_header(config: pytest.Config) -> str:
    return onednn.header()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    sensitive = {(ROOT / name).resolve() for name in onednn.SENSITIVE}
    for item in items:
        if Path(str(item.path)).resolve() in sensitive:
            item.add_marker(onednn.MARKER)
        if item.nodeid.startswith(onednn.CAPPED):
            item.add_marker(onednn.CAPPED_MARKER)


@pytest.fixture(autouse=True)
def _restore_environ() -> Iterator[None]:
    """Tests may set variables freely; the process environment is restored afterwards."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def captured_root(tmp_path: Path) -> Callable[[str], Path]:
    """Lay out ``tests/data/topologies/<name>.json`` as a file tree; return its root."""

    def make(name: str) -> Path:
        root = tmp_path / name
        materialise(TOPOLOGIES / f"{name}.json", root)
        return root

    return make


@pytest.fixture
def topology(captured_root: Callable[[str], Path]) -> Callable[[str], Topology]:
    """Detect the Topology of a captured machine by name."""

    def make(name: str) -> Topology:
        return Topology.detect(captured_root(name))

    return make
