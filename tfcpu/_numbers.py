"""Every number a user types is checked here: NaN, inf, negative and absurd values are refused.

One rule for the API builders (`check_number`); the command line passes what the user typed to
the same builders, so ``--duration nan`` and ``BenchmarkOptions(duration=float("nan"))`` give
the same `ConfigError` (exit 2) before any work starts. A NaN compares false with everything, so
``nan <= 0`` lets it through a naive check and ``while elapsed < nan`` never ends: finiteness is
checked first.

Limits of "absurd" (a week of timing, a billion steps) are far beyond any real run and far
below what makes a loop never end or a clock overflow.
"""

from __future__ import annotations

import math
from typing import Any

from tfcpu.errors import ConfigError

__all__ = ["MAX_COUNT", "MAX_SECONDS", "check_number"]

#: The longest timed region, timeout or duration accepted: one week, in seconds.
MAX_SECONDS = 7 * 24 * 3600.0
#: The largest step, warm-up, batch or trial count accepted.
MAX_COUNT = 1_000_000_000


def _problem(
    value: Any, *, integer: bool, minimum: float | None, maximum: float | None, above: float | None
) -> str | None:
    """Why ``value`` is refused, or None when it is fine."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            import numpy as np

            if isinstance(value, np.integer | np.floating) and not isinstance(value, np.bool_):
                value = value.item()
            else:
                return f"expected a number, got {type(value).__name__}"
        except ImportError:  # pragma: no cover - numpy is a dependency
            return f"expected a number, got {type(value).__name__}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r} is not a finite number"
    if integer and not (isinstance(value, int) or float(value).is_integer()):
        return f"expected a whole number, got {value!r}"
    if above is not None and not value > above:
        return f"must be > {above:g}, got {value!r}"
    if minimum is not None and value < minimum:
        return f"must be >= {minimum:g}, got {value!r}"
    if maximum is not None and value > maximum:
        return f"must be <= {maximum:g}, got {value!r}"
    return None


def check_number(
    value: Any,
    name: str,
    *,
    where: str,
    integer: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    hint: str | None = None,
) -> Any:
    """Return ``value`` when it is a finite number in range, else raise `ConfigError`.

    Args:
        value: what the caller gave.
        name: the parameter, as the caller spells it (``"duration"``).
        where: the builder or flag (``"BenchmarkOptions"``).
        integer: a whole number is required.
        minimum: the smallest accepted value (inclusive).
        maximum: the largest accepted value (inclusive).
        above: values must be strictly greater than this.
        hint: how to fix it (default: the accepted range).
    """
    problem = _problem(value, integer=integer, minimum=minimum, maximum=maximum, above=above)
    if problem is None:
        return value
    raise ConfigError(f"bad {name}", where=where, why=problem, hint=hint or _range(minimum, maximum, above))


def _range(minimum: float | None, maximum: float | None, above: float | None) -> str:
    low = f"> {above:g}" if above is not None else f">= {minimum:g}" if minimum is not None else ""
    high = f"<= {maximum:g}" if maximum is not None else ""
    return "give a finite number " + " and ".join(p for p in (low, high) if p)
