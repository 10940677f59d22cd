"""Rewrite Sphinx roles in tfcpu's docstrings as Markdown code, which mkdocstrings renders.

``:class:`~tfcpu.Topology``` → ```Topology```, ``:func:`tfcpu.load``` → ```tfcpu.load()```,
``:meth:`Quantizer.run``` → ```Quantizer.run()```, ``:mod:`tfcpu.plan.layout``` → ```tfcpu.plan.layout```.
Only docstrings change (module, class and function docstrings found with ``ast``); comments and other
strings are left alone. Run it again after merging branches that add docstrings::

    python scripts/sphinx_roles.py            # rewrite tfcpu/ in place, print what changed
    python scripts/sphinx_roles.py --check    # exit 1 and list the roles left (no rewrite)
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROLE = re.compile(r":(?:py:)?(?P<role>[a-z]+):`(?P<target>[^`]+)`")
CALLABLE = {"func", "meth"}


def _markdown(match: re.Match[str]) -> str:
    role, target = match["role"], match["target"].strip()
    title = re.fullmatch(r"(?P<title>.+?)\s*<(?P<ref>[^>]+)>", target)  # :class:`the plan <InstancePlan>`
    if title:
        return f"{title['title']} (`{title['ref'].lstrip('~')}`)"
    if target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    if role in CALLABLE and not target.endswith(")"):
        target += "()"
    return f"`{target}`"


def docstring_lines(source: str) -> set[int]:
    """1-based line numbers that belong to a docstring of the module, a class or a function.

    Args:
        source: Python source text.
    """
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def rewrite(source: str) -> tuple[str, int]:
    """``source`` with the roles in its docstrings rewritten, and how many were.

    Args:
        source: Python source text.
    """
    keep = docstring_lines(source)
    out, count = [], 0
    for number, line in enumerate(source.splitlines(keepends=True), 1):
        if number in keep:
            line, n = ROLE.subn(_markdown, line)
            count += n
        out.append(line)
    return "".join(out), count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["tfcpu"], help="files or directories (default: tfcpu)")
    parser.add_argument("--check", action="store_true", help="list the roles left and exit 1 if any")
    args = parser.parse_args(argv)
    files = sorted(f for p in map(Path, args.paths) for f in ([p] if p.is_file() else p.rglob("*.py")))
    total = 0
    for path in files:
        text = path.read_text()
        if args.check:
            for number, line in enumerate(text.splitlines(), 1):
                for match in ROLE.finditer(line):
                    print(f"{path}:{number}: {match[0]}")
                    total += 1
            continue
        new, count = rewrite(text)
        if count:
            path.write_text(new)
            print(f"{path}: {count} role(s)")
            total += count
    print(f"{total} Sphinx role(s) {'left' if args.check else 'rewritten'}", file=sys.stderr)
    return 1 if args.check and total else 0


if __name__ == "__main__":
    sys.exit(main())
