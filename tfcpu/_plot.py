"""PNG charts with matplotlib (optional: ``pip install "tfcpu[plot]"``), written atomically."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from tfcpu._io import atomic_write_bytes
from tfcpu._lazy import import_optional

__all__ = ["bar_or_line_png", "bars_png"]


def _pyplot():  # type: ignore[no-untyped-def]
    mpl = import_optional("matplotlib", extra="plot", purpose="charts are drawn with matplotlib")
    mpl.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:  # type: ignore[no-untyped-def]
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
    """One line per series of (x, y) points."""
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
    """Horizontal bars, one per label, in the style of the white paper's Figure 1."""
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
