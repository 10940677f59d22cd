"""Latency and throughput statistics over timed batches (pure numpy-free Python)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tfcpu._codec import Serializable

__all__ = ["LatencyStats", "percentile", "relative_spread", "round_throughputs"]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100) of already sorted values."""
    if not sorted_values:
        return math.nan
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return float(sorted_values[lo] * (1 - frac) + sorted_values[hi] * frac)


@dataclass(frozen=True)
class LatencyStats(Serializable):
    """Per-batch latency in milliseconds."""

    count: int
    mean: float
    min: float
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def from_seconds(cls, seconds: Sequence[float]) -> LatencyStats:
        ms = sorted(s * 1000.0 for s in seconds)
        if not ms:
            nan = math.nan
            return cls(0, nan, nan, nan, nan, nan, nan)
        return cls(
            count=len(ms),
            mean=sum(ms) / len(ms),
            min=ms[0],
            p50=percentile(ms, 50),
            p90=percentile(ms, 90),
            p99=percentile(ms, 99),
            max=ms[-1],
        )


def round_throughputs(batches: Sequence[tuple[float, float, int]], rounds: int = 3) -> tuple[float, ...]:
    """Throughput of each of ``rounds`` consecutive, equal-count parts of a timed region.

    ``batches`` are ``(start, end, items)`` in time order. Each part's throughput is its items over
    its own span (first start to last end); fewer than ``rounds`` batches give fewer parts. The
    spread of these values says how noisy the measurement is.
    """
    n = len(batches)
    parts = min(rounds, n)
    out = []
    for k in range(parts):
        chunk = batches[k * n // parts : (k + 1) * n // parts]
        span = chunk[-1][1] - chunk[0][0]
        if span > 0:
            out.append(sum(b[2] for b in chunk) / span)
    return tuple(out)


def relative_spread(values: Sequence[float]) -> float:
    """(max - min) / median of ``values``; NaN for fewer than two values or a zero median."""
    vals = sorted(v for v in values if not math.isnan(v))
    if len(vals) < 2:
        return math.nan
    mid = percentile(vals, 50)
    return (vals[-1] - vals[0]) / mid if mid > 0 else math.nan
