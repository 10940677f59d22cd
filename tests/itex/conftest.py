"""Fixtures for the ITEX tests (run only by ``nox -s itex``; see docs/itex.md).

The graphs come from tests/itex/make_fixtures.py, run by the main environment's (newer)
TensorFlow before this suite; their directory is $TFCPU_ITEX_FIXTURES. A missing directory is a
failure, not a skip.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

# Every test here needs ITEX: mark them so `-m itex` selects exactly this folder.
pytestmark = pytest.mark.itex


def pytest_collection_modifyitems(items: list[Any]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.itex)


@pytest.fixture(scope="session")
def fixtures() -> Path:
    path = Path(os.environ.get("TFCPU_ITEX_FIXTURES", ".nox/itex-fixtures"))
    if not (path / "meta.json").exists():
        pytest.fail(
            f"no ITEX fixtures in {path}: run `python tests/itex/make_fixtures.py {path}` with the main "
            "environment's Python first (nox -s itex does)"
        )
    return path


@pytest.fixture(scope="session")
def meta(fixtures: Path) -> dict[str, Any]:
    return json.loads((fixtures / "meta.json").read_text())
