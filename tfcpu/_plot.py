"""PNG charts with matplotlib (a base dependency of tfcpu), written atomically.

The drawing functions raise a `TfcpuError` when they cannot write the chart
(`MissingDependencyError` without matplotlib, `OutputError` when the file cannot be written);
`try_chart` turns that into a `Chart` value whose ``reason`` a caller reports instead of
claiming a file it did not write.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfcpu._io import atomic_write_bytes
from tfcpu._lazy import import_optional
from tfcpu.errors import TfcpuError

__all__ = ["Chart", "bar_or_line_png", "bars_png", "try_chart"]


@dataclass(frozen=True)
class Chart:
    """What became of a chart: the file written, or why there is none.

    Args:
        path: the PNG written, or ``None``.
        reason: why no chart was written (one line), or ``None``.
    """

    path: Path | None
    reason: str | None = None

    @property
    def written(self) -> bool:
        """Whether the PNG exists."""
        return self.path is not None

    def describe(self) -> str:
        """``"wrote demo.png"`` or ``"no chart: <reason>"``, for a last line or a note."""
        return f"wrote {self.path}" if self.path is not None else f"no chart: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"path": None if self.path is None else str(self.path), "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Chart:
        """The inverse of `to_dict`.

        Args:
            data: what `to_dict` returned.
        """
        path = data.get("path")
        return cls(path=None if path is None else Path(path), reason=data.get("reason"))


def try_chart(draw: Callable[[], Path]) -> Chart:
    """Run ``draw`` (e.g. ``lambda: bars_png(...)``) and say what became of the chart.

    Args:
        draw: a call that writes a PNG and returns its path, raising a `TfcpuError` when it cannot.

    Returns:
        ``Chart(path)`` when the file was written, else ``Chart(None, reason)`` with the error's
        first line and hint (e.g. how to install matplotlib); other exceptions propagate.
    """
    try:
        path = Path(draw())
    except TfcpuError as exc:
        reason = exc.what + (f": {exc.why}" if exc.why else "") + (f" ({exc.hint})" if exc.hint else "")
        return Chart(path=None, reason=reason)
    if not path.is_file():  # never claim a file that is not there
        return Chart(path=None, reason=f"{path} was not written")
    return Chart(path=path)


def _pyplot() -> Any:
    mpl = import_optional(
        "matplotlib", purpose="charts are drawn with matplotlib, a dependency of tfcpu that is missing here"
    )
    mpl.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def bar_or_line_png(
    path: str | Path,
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
) -> Path:
    """One line per series of (x, y) points.

    Args:
        path: the PNG to write.
        series: label → (x, y) points.
        title: the chart's title.
        xlabel: the x axis label.
        ylabel: the y axis label.

    Raises:
        MissingDependencyError: matplotlib is not installed.
        OutputError: the file cannot be written.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, points in series.items():
        xs, ys = zip(*sorted(points), strict=True) if points else ((), ())
        ax.plot(xs, ys, marker="o", label=label)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def bars_png(
    path: str | Path,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    ylabel: str,
    annotations: Sequence[str] | None = None,
) -> Path:
    """Horizontal bars, one per label, in the style of the white paper's Figure 1.

    Args:
        path: the PNG to write.
        labels: one label per bar, top to bottom.
        values: one value per bar.
        title: the chart's title.
        ylabel: the value axis label.
        annotations: text at the end of each bar (default: the value).

    Raises:
        MissingDependencyError: matplotlib is not installed.
        OutputError: the file cannot be written.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(labels) + 1.5))
    ypos = list(range(len(labels)))[::-1]
    bars = ax.barh(ypos, values, color="#0068b5")
    ax.set_yticks(ypos, labels)
    ax.set_title(title)
    ax.set_xlabel(ylabel)
    for bar, text in zip(bars, annotations or [f"{v:.1f}" for v in values], strict=True):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {text}", va="center")
    ax.margins(x=0.15)
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)
