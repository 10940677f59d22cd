"""Helpers shared by subcommands: model arguments, shapes, layouts, progress bars."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

from tfcpu.errors import ConfigError

__all__ = ["add_layout_args", "parse_shapes", "plan_from_args", "progress_bar"]


def parse_shapes(values: list[str] | None) -> dict[str, tuple[int, ...]]:
    """``["input:1,224,224,3"]`` → ``{"input": (1, 224, 224, 3)}``."""
    out: dict[str, tuple[int, ...]] = {}
    for item in values or []:
        name, sep, dims = item.rpartition(":")
        try:
            if not sep or not name:
                raise ValueError
            out[name] = tuple(int(d) for d in dims.split(","))
        except ValueError:
            raise ConfigError(
                f"bad --shape {item!r}", hint="write NAME:D1,D2,..., e.g. --shape input_1:16,224,224,3"
            ) from None
    return out


def add_layout_args(p: argparse.ArgumentParser, *, auto: bool = False) -> None:
    group = p.add_mutually_exclusive_group(required=not auto)
    group.add_argument("--instances", type=int, metavar="N", help="number of pinned instances")
    group.add_argument("--cores-per-instance", type=int, metavar="K", help="physical cores per instance")
    if auto:
        group.add_argument("--auto", action="store_true", help="measure layouts and use the best")
    p.add_argument("--no-smt", action="store_true", help="one logical CPU per core")


def plan_from_args(args: argparse.Namespace) -> Any:
    from tfcpu.plan import InstancePlan
    from tfcpu.topology import Topology

    return InstancePlan.for_topology(
        Topology.detect(),
        instances=args.instances,
        cores_per_instance=args.cores_per_instance,
        smt=not args.no_smt,
    )


@contextlib.contextmanager
def progress_bar(description: str, *, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """A rich progress bar on stderr; yields ``update(done, total, label=None)``."""
    if not enabled or not sys.stderr.isatty():
        yield lambda *a, **k: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        transient=True,
    ) as prog:
        task = prog.add_task(description, total=None)

        def update(done: int, total: int, label: str | None = None) -> None:
            prog.update(
                task,
                completed=done,
                total=total or None,
                description=f"{description}: {label}" if label else description,
            )

        yield update
