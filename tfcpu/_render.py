"""Shared helpers to render tables in the terminal (rich) and in Jupyter (HTML)."""

from __future__ import annotations

import html as _html
from collections.abc import Sequence
from typing import Any

__all__ = ["TextTable", "drop_empty_last_column", "html_table", "print_rich", "render_text", "rich_table"]


def rich_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Any:
    """Build a ``rich.table.Table`` (imported lazily)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    return table


def drop_empty_last_column(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[list[str], list[list[Any]]]:
    """Leave out a trailing column (e.g. "note") that is empty in every row."""
    if rows and not any(row[-1] for row in rows):
        return list(columns[:-1]), [list(row[:-1]) for row in rows]
    return list(columns), [list(row) for row in rows]


def html_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A small, dependency-free HTML table for ``_repr_html_``."""
    esc = _html.escape
    parts = ['<table class="tfcpu">']
    if title:
        parts.append(f'<caption style="text-align:left;font-weight:bold">{esc(title)}</caption>')
    parts.append("<thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr></thead>")
    parts.append("<tbody>")
    for row in rows:
        parts.append("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def print_rich(*renderables: Any, stderr: bool = False) -> None:
    """Print rich renderables (used by the CLI only; the library never prints)."""
    from rich.console import Console

    Console(stderr=stderr).print(*renderables)


def render_text(renderable: Any, width: int = 120) -> str:
    """A rich renderable as plain text (no colour codes), for ``str()`` and logs."""
    import io

    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None, force_terminal=False, soft_wrap=False).print(renderable)
    return buf.getvalue().rstrip("\n")


class TextTable:
    """Mixin for result objects: ``print(result)`` shows the same table as the terminal, as plain
    text (``repr`` stays the dataclass's own)."""

    def __str__(self) -> str:
        rich = getattr(self, "__rich__", None)
        return render_text(rich()) if rich is not None else object.__repr__(self)
