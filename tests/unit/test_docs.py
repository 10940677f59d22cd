"""The docs that are generated from code are current, and every page in the nav exists."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

from tests.children import load_script

ROOT = Path(__file__).resolve().parents[2]


def _gen_cli() -> ModuleType:
    return load_script("docs/gen_cli.py")


def test_cli_reference_is_current() -> None:
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert committed == _gen_cli().render(), "docs/cli.md is stale: run python docs/gen_cli.py"


def test_every_subcommand_is_documented() -> None:
    from tfcpu.cli.main import _SUBCOMMANDS

    text = (ROOT / "docs" / "cli.md").read_text()
    for module in _SUBCOMMANDS:
        assert f"## tfcpu {module.rsplit('.', 1)[1]}" in text


def test_nav_pages_exist() -> None:
    nav = re.findall(r":\s*([\w-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert nav
    missing = [p for p in nav if not (ROOT / "docs" / p).exists()]
    assert missing == []
