"""Helpers shared by subcommands: model arguments, shapes, layouts, progress bars."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tfcpu.errors import ConfigError

__all__ = [
    "add_allow_unsafe_arg",
    "add_layout_args",
    "add_model_args",
    "add_output_args",
    "check_output",
    "load_model",
    "parse_shapes",
    "plan_from_args",
    "print_written",
    "progress_bar",
]


def add_model_args(p: argparse.ArgumentParser) -> None:
    """MODEL and how to read it: ``--inputs``, ``--outputs``, ``--signature``, ``--allow-unsafe-ops``."""
    p.add_argument(
        "model",
        metavar="MODEL",
        help="a .pb/.pbtxt/.keras/.h5 file, a SavedModel directory, or a Keras application "
        "(ResNet50, keras:MobileNetV2)",
    )
    p.add_argument("--inputs", nargs="+", help="input tensor names (default: the Placeholders)")
    p.add_argument("--outputs", nargs="+", help="output tensor names (default: the sink nodes)")
    p.add_argument("--signature", help="SavedModel signature key (default: serving_default)")
    add_allow_unsafe_arg(p)


def add_allow_unsafe_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-unsafe-ops",
        metavar="OP[,OP...]",
        help="let these op types through the safety scan (ops that touch files, the network or Python; "
        "see docs/security.md), e.g. ReadFile,PyFunc",
    )


def load_model(args: argparse.Namespace) -> Any:
    """`tfcpu.load()` of the model the arguments of `add_model_args` (or a subset of them) name."""
    from tfcpu.graph.load import load

    return load(
        args.model,
        inputs=args.inputs,
        outputs=args.outputs,
        signature=getattr(args, "signature", None),
        allow_unsafe_ops=args.allow_unsafe_ops,
    )


def add_output_args(p: argparse.ArgumentParser) -> None:
    """``-o OUT``: where a command writes its frozen graph."""
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write the graph (.pb or .pbtxt)")


def check_output(args: argparse.Namespace, suffixes: tuple[str, ...], *, why: str = "") -> Path:
    """Refuse ``-o`` before the work: a wrong suffix, the input file itself (without ``--overwrite``),
    a place that cannot be written.

    Args:
        args: the parsed arguments (``model``, ``output``, ``overwrite``).
        suffixes: the suffixes ``-o`` may end in.
        why: what the suffixes depend on, appended to the message (``"for --backend openvino"``).

    Raises:
        ConfigError: one of those (exit 2); `tfcpu.errors.OutputError` when it cannot be written.
    """
    from tfcpu._io import check_writable

    out = Path(args.output)
    if out.suffix.lower() not in suffixes:
        raise ConfigError(f"-o must end in {' or '.join(suffixes)}" + (f" {why}" if why else ""), where=str(out))
    source = Path(args.model)
    if source.exists() and out.exists() and os.path.samefile(source, out) and not args.overwrite:
        raise ConfigError(
            "-o is the input file", where=str(out), hint="write elsewhere, or pass --overwrite to replace it"
        )
    check_writable(out)  # before the work: a read-only directory is a user error, not a failure later
    return out


def print_written(result: Any, out: Path, *, as_json: bool) -> None:
    """The result of a command that wrote ``out``: as JSON (with ``"output"``) or as its table."""
    from tfcpu._render import print_rich

    if as_json:
        data = result.to_dict()
        data["output"] = str(out)
        print(json.dumps(data, indent=2))
    else:
        print_rich(result)


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
