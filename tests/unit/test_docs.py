"""The docs that are generated from code are current, and every page in the nav exists."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _gen_cli():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_cli", ROOT / "docs" / "gen_cli.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
