"""Helpers shared by subcommands: model arguments, shapes, layouts, progress bars."""

from __future__ import annotations

import argparse
import contextlib
import json
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
    "run_signatures",
    "save_output",
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
    p.add_argument(
        "--trust-code",
        action="store_true",
        help="let a Keras file run the Python it carries (Lambda layers, legacy .h5): it runs with your "
        "rights, so only for files you trust as you trust code you run (see docs/security.md)",
    )


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
        trust_code=bool(getattr(args, "trust_code", False)),
    )


def add_check_inputs(p: argparse.ArgumentParser) -> None:
    """``--check-inputs FILE.npz``: the user's sample inputs for the numerical check (issue 27)."""
    p.add_argument(
        "--check-inputs",
        metavar="FILE",
        help="sample inputs for the numerical check instead of generated ones: FILE.npz keyed by input name "
        "(numpy.savez(FILE, input_ids=..., ...); .npy for one input). Without it ids are drawn below the "
        "size of the embedding table they index and masks are 0/1",
    )


def check_inputs_path(args: argparse.Namespace) -> str | None:
    """The existing ``--check-inputs`` file (checked now, read by the check), or None."""
    spec = getattr(args, "check_inputs", None)
    if spec is None:
        return None
    from tfcpu.quantize.calibration import resolve_path

    path = resolve_path(spec)
    if path.is_dir():
        raise ConfigError(
            "--check-inputs takes one file, not a directory",
            where=str(path),
            hint="save one .npz keyed by input name: numpy.savez(path, name=array, ...)",
        )
    return str(path)


def add_output_args(p: argparse.ArgumentParser) -> None:
    """``-o OUT`` (a file, or a directory for a SavedModel), ``--format``, ``--serving DIR``."""
    from tfcpu.formats import FORMATS

    p.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="where to write the model: a .pb/.pbtxt file (frozen GraphDef), a directory (SavedModel that "
        "tf.saved_model.load, TFSMLayer and TF Serving read) or a .xml file (OpenVINO IR)",
    )
    p.add_argument("--format", choices=tuple(FORMATS), help="the output format when OUT does not say it")
    p.add_argument(
        "--serving",
        metavar="DIR",
        help="write a SavedModel in TF Serving's layout instead of -o: DIR/<version>/, one past the highest there",
    )


def check_output(
    args: argparse.Namespace, suffixes: tuple[str, ...], *, why: str = "", directories: bool = True
) -> Path:
    """Refuse the output before the work: none or two named, a wrong suffix, an output that is, is
    inside, or links to the input (the input file itself only with ``--overwrite``), a place that
    cannot be written.

    Args:
        args: the parsed arguments (``model``, ``output``, ``format``, ``serving``, ``overwrite``).
        suffixes: the file suffixes the output may end in.
        why: what the suffixes depend on, appended to the message (``"for --backend openvino"``).
        directories: whether a directory (a SavedModel) is a valid output here.

    Raises:
        ConfigError: one of those (exit 2); `tfcpu.errors.OutputError` when it cannot be written.
    """
    from tfcpu._io import check_not_input, check_writable

    serving = getattr(args, "serving", None)
    if serving and args.output:
        raise ConfigError("-o and --serving both name the output", hint="give one of them")
    if not serving and not args.output:
        raise ConfigError("no output named", hint="give -o OUT (a file or a directory) or --serving DIR")
    out = Path(serving or args.output)
    directory = _directory_output(args, out)
    if directory and not directories:
        raise ConfigError(f"the output must be a {' or '.join(suffixes)} file" + (f" {why}" if why else ""),
                          where=str(out))  # fmt: skip
    if not directory and out.suffix.lower() not in suffixes:
        also = ", or be a directory for a SavedModel" if directories else ""
        raise ConfigError(f"-o must end in {' or '.join(suffixes)}" + (f" {why}" if why else "") + also, where=str(out))
    source = Path(args.model)
    inputs = [source, source.with_suffix(".bin")] if source.suffix.lower() == ".xml" else [source]
    overwrite = bool(getattr(args, "overwrite", False))
    check_not_input(out, inputs, overwrite=overwrite)
    if out.suffix.lower() == ".xml":  # an OpenVINO IR is written as model.xml and model.bin
        check_not_input(out.with_suffix(".bin"), inputs, overwrite=overwrite)
    if directory and not serving and out.is_dir() and any(out.iterdir()) and not (out / "saved_model.pb").is_file():
        raise ConfigError(
            "the output directory is not empty and holds no SavedModel",
            where=str(out),
            why="tfcpu replaces a SavedModel it finds there, never other files",
            hint="write to a new or empty directory",
        )
    check_writable(out, directory=directory)  # before the work: a read-only directory is a user error
    return out


def _directory_output(args: argparse.Namespace, out: Path) -> bool:
    """Whether the output is a directory (a SavedModel): ``--serving``, ``--format savedmodel``, or a
    path that is a directory or has no suffix."""
    fmt = getattr(args, "format", None)
    return (
        bool(getattr(args, "serving", None))
        or fmt == "savedmodel"
        or (fmt is None and (out.is_dir() or out.suffix == ""))
    )


def run_signatures(args: argparse.Namespace, out: Path, work: Callable[[Any], Any]) -> tuple[dict[str, Any], Path]:
    """Load MODEL, run ``work(model) -> result`` (a result with ``.model``), write and print what it gave.

    A SavedModel with several signatures written to a directory (no ``--signature``, ``--inputs`` or
    ``--outputs``) is done signature by signature (`tfcpu.load_signatures`; signatures with the same
    graph, like Keras's ``serve`` and ``serving_default``, once) and written back as one SavedModel
    with all of them (`tfcpu.save_signatures`). Anything else is one model, as `load_model` reads it.

    Returns:
        The results by signature name (one entry, named ``""``, for a single model) and the path written.
    """
    source = Path(args.model)
    several = (
        _directory_output(args, out)
        and source.is_dir()
        and not any(getattr(args, k, None) for k in ("signature", "inputs", "outputs"))
    )
    if not several:
        result = work(load_model(args))
        written = save_output(result.model, out, args)
        print_written(result, written, as_json=args.json)
        return {"": result}, written
    from tfcpu.formats.savedmodel import save_signatures, signature_fingerprint
    from tfcpu.graph.load import load_signatures

    models = load_signatures(source, allow_unsafe_ops=args.allow_unsafe_ops)
    results: dict[str, Any] = {}
    done: dict[bytes, Any] = {}
    for name, model in models.items():
        key = signature_fingerprint(model)
        if key not in done:
            done[key] = work(model)
        results[name] = done[key]
    if len(results) == 1:
        written = save_output(next(iter(results.values())).model, out, args)
    else:
        written = save_signatures({k: r.model for k, r in results.items()}, out, serving=bool(args.serving))
        _onednn_note(any(r.model.needs_onednn for r in results.values()))
    if args.json:
        data = {"signatures": {k: r.to_dict() for k, r in results.items()}, "output": str(written)}
        print(json.dumps(data, indent=2))
    else:
        from tfcpu._render import print_rich

        for name, result in results.items():
            print(f"signature {name!r}:")
            print_rich(result)
    return results, written


def _onednn_note(needed: bool) -> None:
    if needed:
        from tfcpu.formats.savedmodel import ONEDNN_NOTE

        print(f"note: {ONEDNN_NOTE}", file=sys.stderr)


def save_output(model: Any, out: Path, args: argparse.Namespace) -> Path:
    """Write ``model`` where `check_output` said, in the format the arguments ask; what was written."""
    written: Path = model.save(out, format=getattr(args, "format", None), serving=bool(getattr(args, "serving", None)))
    _onednn_note(model.needs_onednn and written.is_dir())
    return written


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
