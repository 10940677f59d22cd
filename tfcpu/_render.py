"""Shared helpers to render tables in the terminal (rich) and in Jupyter (HTML)."""

from __future__ import annotations

import html as _html
from collections.abc import Sequence
from typing import Any

__all__ = [
    "TextTable",
    "drop_empty_last_column",
    "fit_widths",
    "folds_a_word",
    "html_table",
    "print_rich",
    "render_text",
    "rich_table",
]

_PROSE_FLOOR = 8  # narrowest a prose column gets when the names need the room


def _words(text: str) -> list[str]:
    return text.split() or [""]


def _shrink(widths: list[int], floors: list[int], excess: int, movable: Sequence[int]) -> int:
    """Take ``excess`` columns of width from the widest of ``movable``, never below ``floors``."""
    while excess > 0:
        room = [i for i in movable if widths[i] > floors[i]]
        if not room:
            break
        widest = max(room, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    return excess


_SHORT_HEADER = 14
_LONG_TOKEN = 24  # a token longer than this (a path, a long value) may fold before a short header wraps


def _header_floor(header: str) -> int:
    return len(header) if len(header) <= _SHORT_HEADER else 0


def fit_widths(columns: Sequence[Sequence[str]], available: int) -> list[int] | None:
    """Content widths for table columns that never split a word, or ``None`` when everything fits as is.

    Each column is its header and cells. Columns narrow, widest first, down to their longest word. When
    even that does not fit, the first column (setting, variable or op names) keeps its longest word and
    the other columns give way one at a time, the one with the longest word (a path, a long value) first.

    Args:
        columns: per column, the header followed by every cell, as text.
        available: the width for the columns' content (borders and padding taken off).
    """
    natural = [max(len(line) for cell in col for line in (cell.splitlines() or [""])) for col in columns]
    if sum(natural) <= available:
        return None
    longest_word = [max(len(w) for cell in col for w in _words(cell)) for col in columns]
    prose = [longest_word[0]] + [
        max(min(_PROSE_FLOOR, longest_word[i]), *(len(w) for w in _words(col[0])))
        for i, col in enumerate(columns[1:], 1)
    ]
    headers = [0] + [_header_floor(col[0]) for col in columns[1:]]

    def whole_headers(floors: list[int]) -> list[int]:
        return [max(f, h) for f, h in zip(floors, headers, strict=True)]

    # Tried in order, first that fits wins: (1) short headers ("takes effect") on one line and every word
    # whole; (2) short headers whole while a long token (a path, "granularity=fine,verbose,...") gives way;
    # (3) headers wrap between their words, then one column at a time gives way, the longest word first.
    long_tokens = [i for i in range(1, len(columns)) if longest_word[i] > _LONG_TOKEN]
    attempts = (
        (whole_headers(longest_word), whole_headers(prose), long_tokens),
        (longest_word, prose, list(range(1, len(columns)))),
    )
    widths = list(natural)
    for words, values, movable in attempts:
        widths = list(natural)
        excess = _shrink(widths, words, sum(widths) - available, range(len(widths)))
        for index in sorted(movable, key=lambda i: -longest_word[i]):
            if excess <= 0:
                break
            excess = _shrink(widths, values, excess, (index,))
        if excess <= 0:
            return widths
    return widths


def folds_a_word(columns: Sequence[Sequence[str]], widths: Sequence[int]) -> bool:
    """Whether ``widths`` (from `fit_widths`) split a word of some column (a number, a name) in two."""
    return any(
        w < max(len(word) for cell in col for word in _words(cell)) for col, w in zip(columns, widths, strict=True)
    )


def _spill_lines(columns: Sequence[Sequence[str]], spill: Sequence[int]) -> list[str]:
    """The spilled columns as lines under the table: ``<first cell>: <header> <value>; ...`` per row."""
    lines = []
    for row in range(1, len(columns[0])):
        parts = [f"{columns[i][0]}: {columns[i][row]}" for i in spill if columns[i][row] not in ("", "-")]
        if parts:
            lines.append(f"{columns[0][row]} — " + "; ".join(parts))
    return lines


def _fitted_table_class() -> Any:
    from rich.table import Table
    from rich.text import Text

    class FittedTable(Table):
        """A rich Table whose column widths come from `fit_widths` at the width it is drawn at.

        Columns listed in ``spill`` (long prose: notes, kernels) leave the table when keeping them
        would split a word of some column (a number folded over two lines); their cells are then
        printed under the table, one line per row.
        """

        spill: tuple[int, ...] = ()

        def __rich_console__(self, console: Any, options: Any) -> Any:
            ncols = len(self.columns)
            available = options.max_width - (ncols + 1) - 2 * ncols  # borders, one space each side
            cells = [[str(col.header), *(str(c) for c in col._cells)] for col in self.columns]
            widths = fit_widths(cells, available) if ncols else None
            if widths is not None and self.spill and folds_a_word(cells, widths):
                kept = [i for i in range(ncols) if i not in self.spill]
                rows = [[cells[i][r] for i in kept] for r in range(1, len(cells[0]))]
                yield rich_table(None if self.title is None else str(self.title), [cells[i][0] for i in kept], rows)
                for line in _spill_lines(cells, self.spill):
                    yield Text(line, overflow="fold")
                return
            for index, col in enumerate(self.columns):
                col.width = None if widths is None else widths[index]
            yield from super().__rich_console__(console, options)

    return FittedTable


def rich_table(
    title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, spill: Sequence[str] = ()
) -> Any:
    """Build a ``rich.table.Table`` (imported lazily) that never splits a word it has room for.

    Args:
        title: shown above the table, left-aligned.
        columns: the column headers.
        rows: one sequence of cells per row (each shown with ``str``).
        spill: headers of prose columns that move under the table, one line per row, when the
            terminal is too narrow to keep every word of every column whole.
    """
    table = _fitted_table_class()(title=title, title_justify="left", header_style="bold")
    table.spill = tuple(i for i, col in enumerate(columns) if col in spill)
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
