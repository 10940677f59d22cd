"""The API pages are rendered by mkdocstrings from Markdown docstrings: no Sphinx roles (they show as
literal ``:class:`` text), and no script from docs/ published as a page."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

from tests.children import load_script

ROOT = Path(__file__).resolve().parents[2]
SPHINX_ROLE = re.compile(r":(?:py:)?(?:class|data|func|meth|attr|mod|exc|obj|const|ref|any|term):`")


def _roles_script() -> ModuleType:
    return load_script("scripts/sphinx_roles.py")


def test_no_sphinx_role_is_left_in_the_package() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "tfcpu").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if SPHINX_ROLE.search(line)
    ]
    assert found == [], "Sphinx roles render as literal text in mkdocs; run python scripts/sphinx_roles.py:\n" + (
        "\n".join(found)
    )


def test_the_rewrite_touches_only_docstrings_and_writes_markdown_code() -> None:
    source = '''"""Module: see :class:`~tfcpu.Topology` and :func:`tfcpu.load`."""

HELP = "not a docstring: :class:`Kept`"  # nor this :meth:`kept`


def f() -> None:
    """Call :meth:`Quantizer.run`, read :mod:`tfcpu.plan.layout`,
    or :class:`the plan <tfcpu.InstancePlan>`."""
'''
    new, count = _roles_script().rewrite(source)
    assert count == 5
    assert '"""Module: see `Topology` and `tfcpu.load()`."""' in new
    assert "Call `Quantizer.run()`, read `tfcpu.plan.layout`," in new
    assert "or the plan (`tfcpu.InstancePlan`)." in new
    assert 'HELP = "not a docstring: :class:`Kept`"  # nor this :meth:`kept`' in new


def test_scripts_in_docs_are_not_published() -> None:
    block = re.search(r"^exclude_docs: \|\n((?:[ \t]+\S.*\n)+)", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert block, "mkdocs.yml needs an exclude_docs block"
    patterns = block[1].split()
    scripts = sorted(p.name for p in (ROOT / "docs").glob("*.py"))
    assert "gen_cli.py" in scripts
    for name in scripts:
        assert any(Path(name).match(pattern) for pattern in patterns), f"docs/{name} would be published"
