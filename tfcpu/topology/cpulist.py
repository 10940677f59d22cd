"""Parse and format Linux CPU lists such as ``0-23,48-71``.

The kernel writes CPU sets in "list" form (``cpulist``, ``shared_cpu_list``,
``thread_siblings_list``, ``Cpus_allowed_list``). These helpers are pure: they take and
return strings and tuples, never touch the file system.
"""

from __future__ import annotations

from collections.abc import Iterable

from tfcpu.errors import ConfigError

__all__ = ["format_cpulist", "parse_cpulist"]


def parse_cpulist(text: str) -> tuple[int, ...]:
    """Parse a kernel CPU list (``"0-3,8,10-11"``) into a sorted tuple of CPU ids.

    Empty text gives an empty tuple. Ranges with a stride (``0-7:2``) are accepted.

    Raises:
        ConfigError: the text is not a CPU list (a ValueError too).
    """
    try:
        return _parse(text)
    except ValueError as exc:
        raise ConfigError(
            f"not a CPU list: {text!r}",
            why=str(exc),
            hint="write CPU ids and ranges separated by commas, e.g. 0-3,8 or 0-7:2 (a stride)",
        ) from None


def _parse(text: str) -> tuple[int, ...]:
    cpus: set[int] = set()
    text = text.strip()
    if not text:
        return ()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        stride = 1
        if ":" in part:
            part, stride_text = part.split(":", 1)
            stride = int(stride_text)
            if stride < 1:
                raise ValueError(f"invalid stride {stride}")
        if "-" in part:
            lo_text, hi_text = part.split("-", 1)
            lo, hi = int(lo_text), int(hi_text)
            if hi < lo or lo < 0:
                raise ValueError(f"invalid range {part!r}")
            cpus.update(range(lo, hi + 1, stride))
        else:
            cpu = int(part)
            if cpu < 0:
                raise ValueError(f"negative CPU {cpu}")
            cpus.add(cpu)
    return tuple(sorted(cpus))


def format_cpulist(cpus: Iterable[int]) -> str:
    """Format CPU ids as a compact kernel-style list: ``(0, 1, 2, 3, 48)`` → ``"0-3,48"``."""
    ordered = sorted(set(cpus))
    if not ordered:
        return ""
    parts: list[str] = []
    start = prev = ordered[0]
    for cpu in ordered[1:]:
        if cpu == prev + 1:
            prev = cpu
            continue
        parts.append(f"{start}-{prev}" if prev > start else str(start))
        start = prev = cpu
    parts.append(f"{start}-{prev}" if prev > start else str(start))
    return ",".join(parts)
