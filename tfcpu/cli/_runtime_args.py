"""``--allocator`` and ``--frozen-weights`` for the commands that start instance children (bench, launch)."""

from __future__ import annotations

import argparse

from tfcpu.errors import ConfigError

__all__ = ["add_runtime_args", "runtime_env"]


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    """Add ``--allocator`` and ``--frozen-weights`` to ``p``.

    Args:
        p: the command's parser.
    """
    from tfcpu.session.xeon import ALLOCATORS

    p.add_argument(
        "--allocator",
        choices=tuple(ALLOCATORS),
        help="preload this allocator (LD_PRELOAD) into every instance child; refused if the OS has no such library",
    )
    p.add_argument(
        "--frozen-weights",
        action="store_true",
        help="TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1 in the children (oneDNN caches reordered filters)",
    )


def runtime_env(args: argparse.Namespace, *, children: bool) -> tuple[dict[str, str], str | None]:
    """The frozen-weights variable and the allocator from ``args``, refused without children.

    Args:
        args: the parsed command line.
        children: the command starts instance children (False: a single in-process run).
    """
    from tfcpu.session.xeon import FROZEN_WEIGHTS

    allocator = getattr(args, "allocator", None)
    if allocator is not None and not children:
        raise ConfigError(
            "--allocator needs instance children",
            where="tfcpu bench --allocator",
            why="an allocator is preloaded when a process starts; the single-process bench runs in this one",
            hint="add --instances N (or --cores-per-instance K)",
        )
    env = {FROZEN_WEIGHTS: "1"} if getattr(args, "frozen_weights", False) else {}
    return env, allocator
