"""Calibration data: every accepted form turned into a list of checked feed batches.

Accepted forms (see `tfcpu.Quantizer.calibrate()`):

* a numpy array (or a dict of arrays by input name) — cut into batches of ``batch_size``;
* a sequence or an iterator of batches, each an array, a dict by input name, a tuple of
  arrays in input order, or an ``(inputs, labels)`` pair (labels are ignored);
* a ``tf.data.Dataset`` yielding any of those batch forms;
* a callable taking no argument and returning any of the forms above (e.g. a generator function);
* ``"synthetic"`` — seeded random batches in the range each input expects, read from the graph
  (token ids below the vocabulary size, 0/1 masks, pixels 0..255 for a model with a built-in
  ``Rescaling``, values a built-in ``Normalization`` maps to N(0, 1); `Calibration.assumed` says
  which); fine for speed tests, no substitute for real data;
* a path (``str`` or ``os.PathLike``) to a ``.npy`` file (samples along axis 0, cut into batches)
  or to a directory of ``.npy`` files (one batch each, sorted by name); for a model with several
  inputs, a ``.npz`` file keyed by input name (``numpy.savez(path, input_ids=..., attention_mask=...)``,
  samples along axis 0) or a directory of ``.npz`` files (one batch each) — read by
  `load_files()`, the one loader ``Quantizer.calibrate`` and ``tfcpu quantize --calibration``
  share. The files are read when `tfcpu.Quantizer.run()` starts, not when the plan is built.

Every batch is checked against the model's input signature (dtype, rank, fixed dimensions)
with `tfcpu.runtime.feeds.check_array()` *before* Intel Neural Compressor starts, so a bad
shape is a one-line `ConfigError` naming the batch, not an INC traceback. NaN or inf in a float
input is refused the same way, naming the input: INC's min/max calibration would otherwise fail
deep inside with an unrelated error. Inputs of one batch must have the same batch size.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tfcpu.errors import ConfigError
from tfcpu.graph.model import Model, tensor_name
from tfcpu.runtime.feeds import check_array

__all__ = [
    "SYNTHETIC",
    "SYNTHETIC_UNKNOWN_DIM",
    "Calibration",
    "check_source",
    "describe_source",
    "is_file_source",
    "load_files",
    "materialise",
    "resolve_path",
    "synthetic_shapes",
]

SYNTHETIC = "synthetic"
#: The size synthetic calibration gives an unknown dimension after the batch of an integer or boolean
#: input (a text model's dynamic sequence length: token ids, segment ids, masks): short enough for any
#: position-embedding table, long enough for attention and layer-norm ranges to be those of real
#: sentences. Said in ``Calibration.assumed``.
SYNTHETIC_UNKNOWN_DIM = 16
_SUFFIXES = (".npy", ".npz")
_FILE_HINT = (
    "give 'synthetic', FILE.npy (samples along axis 0), FILE.npz keyed by input name (several inputs), "
    "or a directory of .npy or .npz files (one batch each)"
)

log = logging.getLogger(__name__)

Batch = dict[str, np.ndarray]


@dataclass(frozen=True)
class Calibration:
    """What the calibration actually used (part of `QuantizationResult`).

    ``assumed``: for synthetic data, what each input was assumed to hold, read from the graph
    (`tfcpu.graph._input_ranges`): ids below their table's size, 0/1 masks, pixels 0..255 behind a
    built-in rescaling, values a built-in normalisation maps to N(0, 1), else N(0, 1).
    """

    source: str
    batches: int
    batch_size: int
    samples: int
    synthetic: bool
    assumed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "batches": self.batches,
            "batch_size": self.batch_size,
            "samples": self.samples,
            "synthetic": self.synthetic,
            "assumed": list(self.assumed),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        try:
            return cls(
                source=str(data["source"]),
                batches=int(data["batches"]),
                batch_size=int(data["batch_size"]),
                samples=int(data["samples"]),
                synthetic=bool(data["synthetic"]),
                assumed=tuple(str(a) for a in data.get("assumed", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError("not a Calibration record", why=f"{type(exc).__name__}: {exc}") from exc


def is_file_source(data: Any) -> bool:
    """A path naming calibration files (anything os.PathLike, or a string other than "synthetic")."""
    return isinstance(data, os.PathLike) or (isinstance(data, str) and data != SYNTHETIC)


def check_source(data: str | os.PathLike[str], *, where: str) -> None:
    """Refuse, without reading any file, a string that names neither a ``.npy``/``.npz`` file nor a directory.

    Only ``os.path.isdir`` is asked (a directory has no suffix to tell it by); whether a file
    exists and holds what the model takes is checked when the files are read.
    """
    text = os.fspath(data)
    if isinstance(data, os.PathLike) or text.lower().endswith(_SUFFIXES) or os.path.isdir(text):
        return
    raise ConfigError(f"unknown calibration source {text!r}", where=where, hint=_FILE_HINT + ", or pass the data")


def resolve_path(spec: str | os.PathLike[str]) -> Path:
    """The existing ``.npy``/``.npz`` file or directory ``spec`` names, or a ConfigError saying what is wrong."""
    path = Path(spec)
    if path.is_dir():
        _files_in(path)
        return path
    if path.is_file():
        if path.suffix.lower() not in _SUFFIXES:
            raise ConfigError(
                "calibration files must be .npy or .npz files or a directory of them", where=str(path), hint=_FILE_HINT
            )
        return path
    raise ConfigError("calibration data not found", where=str(path), hint=_FILE_HINT)


def _files_in(path: Path) -> list[Path]:
    """The ``.npy`` or the ``.npz`` files of a calibration directory, sorted by name (not both kinds)."""
    npy, npz = sorted(path.glob("*.npy")), sorted(path.glob("*.npz"))
    if npy and npz:
        raise ConfigError(
            "the calibration directory mixes .npy and .npz files",
            where=str(path),
            hint="use .npy files for a one-input model or .npz files keyed by input name, not both",
        )
    if not npy and not npz:
        raise ConfigError("no .npy or .npz files in the calibration directory", where=str(path), hint=_FILE_HINT)
    return npy or npz


#: What `load_files` returns: an array or a dict by input name (one file), or a list of them (a directory).
Loaded = np.ndarray | dict[str, np.ndarray] | list[np.ndarray] | list[dict[str, np.ndarray]]


def load_files(spec: str | os.PathLike[str]) -> Loaded:
    """Read calibration data from ``spec``: one array from a ``.npy`` file, a dict (input name ->
    array, samples along axis 0) from a ``.npz`` file, or a list (one batch per file, sorted by
    name) from a directory of either. Pickled arrays are refused.

    Raises:
        ConfigError: the path does not exist, holds no ``.npy``/``.npz`` file, or a file is not readable.
    """
    path = resolve_path(spec)
    files = _files_in(path) if path.is_dir() else [path]
    loaded: list[Any] = [_read(file) for file in files]
    return loaded if path.is_dir() else loaded[0]


def _read(file: Path) -> np.ndarray | dict[str, np.ndarray]:
    try:
        if file.suffix.lower() == ".npz":
            with np.load(file, allow_pickle=False) as archive:
                return {key: archive[key] for key in archive.files}
        array: np.ndarray = np.load(file, allow_pickle=False)
        return array
    except (OSError, ValueError, EOFError) as exc:
        raise ConfigError(
            "cannot read the calibration file",
            where=str(file),
            why=f"{type(exc).__name__}: {exc}",
            hint="save it with numpy.save(path, array) or numpy.savez(path, name=array, ...) (no pickled objects)",
        ) from exc


def _check_keys(model: Model, data: Loaded, spec: str | os.PathLike[str]) -> None:
    """``.npz`` keys must be the model's inputs, each once: refuse missing and unknown keys, naming the file."""
    from tfcpu.errors import did_you_mean

    path = Path(spec)
    files = _files_in(path) if path.is_dir() else [path]
    items = data if isinstance(data, list) else [data]
    names = [s.name for s in model.inputs]
    for file, item in zip(files, items, strict=True):
        if not isinstance(item, Mapping):
            continue
        given = [tensor_name(k) for k in item]
        unknown = [k for k, n in zip(item, given, strict=True) if n not in names]
        if unknown:
            raise ConfigError(
                f"the calibration file has a key that names no input: {unknown[0]!r}",
                where=str(file),
                why=f"the model's inputs are {[s.node for s in model.inputs]}",
                hint=did_you_mean(unknown[0], [s.node for s in model.inputs]) or "key each array by input name",
            )
        missing = [s.node for s in model.inputs if s.name not in given]
        if missing:
            raise ConfigError(
                f"the calibration file has no array for input(s) {missing}",
                where=str(file),
                why=f"its keys are {list(item)}",
                hint="save one array per model input: numpy.savez(path, "
                + ", ".join(f"{m}=..." for m in missing)
                + ")",
            )


def describe_source(data: Any) -> str:
    """A short label for a calibration source (for messages and the result)."""
    if isinstance(data, str | os.PathLike):
        return os.fspath(data)
    if isinstance(data, np.ndarray):
        return f"array{tuple(data.shape)} {data.dtype}"
    if isinstance(data, Mapping):
        return "dict of arrays"
    module = type(data).__module__ or ""
    if module.startswith("tensorflow") and "Dataset" in type(data).__name__:
        return "tf.data.Dataset"
    if callable(data):
        return f"callable {getattr(data, '__name__', type(data).__name__)}"
    return type(data).__name__


def synthetic_shapes(model: Model, batch_size: int) -> dict[str, tuple[int, ...]]:
    """Shapes for the integer and boolean inputs (token ids, segment ids, masks) with an unknown
    dimension after the batch: `SYNTHETIC_UNKNOWN_DIM` there. A float input with one (an image of
    any size) gets none: no size is a safe guess for it, and drawing it refuses, asking for data."""
    shapes = {}
    for spec in model.inputs:
        dims = tuple(spec.shape) if spec.shape is not None else ()
        if not any(d is None or d < 0 for d in dims[1:]):
            continue
        try:
            kind = np.dtype(spec.dtype).kind
        except TypeError:
            continue
        if kind in "iub":
            shapes[spec.name] = tuple(
                batch_size if axis == 0 else SYNTHETIC_UNKNOWN_DIM if d is None or d < 0 else int(d)
                for axis, d in enumerate(dims)
            )
    return shapes


def materialise(model: Model, data: Any, *, batches: int, batch_size: int | None, seed: int = 0) -> list[Batch]:
    """Return up to ``batches`` checked batches (dict by input tensor name) for ``model``."""
    if isinstance(data, str) and data == SYNTHETIC:
        from tfcpu.graph._input_ranges import input_ranges
        from tfcpu.graph.compare import random_inputs

        size = batch_size or 8
        ranges = input_ranges(model, floats=True)  # what the model's own preprocessing expects
        shapes = synthetic_shapes(model, size)
        return [random_inputs(model, size, seed=seed + i, ranges=ranges, shapes=shapes) for i in range(batches)]
    source = describe_source(data)
    if is_file_source(data):
        spec = data
        data = load_files(spec)
        _check_keys(model, data, spec)
    out: list[Batch] = []
    for index, raw in enumerate(_iterate(model, data, batch_size or 32)):
        if index >= batches:
            break
        out.append(_check_batch(model, raw, index))
    if not out:
        raise ConfigError(
            "the calibration data yielded no batch",
            where=source,
            hint="pass at least one batch (an exhausted iterator yields nothing the second time)",
        )
    return out


def _iterate(model: Model, data: Any, batch_size: int) -> Iterator[Any]:
    if isinstance(data, np.ndarray) or (isinstance(data, Mapping) and _all_arrays(data) and data):
        yield from _chunks(data, batch_size)
        return
    module = type(data).__module__ or ""
    if module.startswith("tensorflow") and hasattr(data, "as_numpy_iterator"):
        yield from data.as_numpy_iterator()
        return
    if callable(data) and not isinstance(data, Iterable):
        produced = data()
        if isinstance(produced, np.ndarray | Mapping) or hasattr(produced, "as_numpy_iterator"):
            yield from _iterate(model, produced, batch_size)
        elif isinstance(produced, Iterable):
            yield from produced
        else:
            raise ConfigError(
                "the calibration callable returned neither batches nor an array",
                where=describe_source(data),
                why=f"it returned {type(produced).__name__}",
                hint="return an iterable of batches, e.g. make it a generator function",
            )
        return
    if isinstance(data, Iterable):
        yield from data
        return
    raise ConfigError(
        f"cannot calibrate with a {type(data).__name__}",
        hint='pass a numpy array, batches, a tf.data.Dataset, a callable returning batches, or "synthetic"',
    )


def _all_arrays(data: Mapping[Any, Any]) -> bool:
    return all(isinstance(v, np.ndarray) for v in data.values())


def _chunks(data: np.ndarray | Mapping[str, np.ndarray], batch_size: int) -> Iterator[Any]:
    if isinstance(data, np.ndarray):
        if data.ndim == 0:
            raise ConfigError("calibration array is a scalar", hint="pass samples stacked along axis 0")
        for start in range(0, len(data), batch_size):
            yield data[start : start + batch_size]
        return
    lengths = {len(v) for v in data.values()}
    if len(lengths) != 1:
        raise ConfigError("calibration arrays have different lengths", why=str(sorted(lengths)))
    (n,) = lengths
    for start in range(0, n, batch_size):
        yield {k: v[start : start + batch_size] for k, v in data.items()}


def _check_batch(model: Model, raw: Any, index: int) -> Batch:
    """One batch, checked against the inputs (`check_array`), the same batch size everywhere, no NaN/inf."""
    from tfcpu.runtime.feeds import check_batch

    batch = _checked(model, raw, index)
    where = f"calibration batch {index}"
    check_batch(model, batch, where=where)
    for spec in model.inputs:
        value = batch[spec.name]
        if value.dtype.kind in "fc" and not np.isfinite(value).all():
            bad = np.count_nonzero(~np.isfinite(value))
            kinds = sorted({"NaN" if np.isnan(v) else "inf" for v in value[~np.isfinite(value)].ravel()[:1000]})
            raise ConfigError(
                f"calibration input {spec.node!r} holds {' and '.join(kinds)}",
                where=where,
                why=f"{bad} of {value.size} values are not finite; quantisation ranges cannot be computed from them",
                hint="clean the data first (e.g. numpy.nan_to_num) or drop those samples",
            )
    return batch


def _checked(model: Model, raw: Any, index: int) -> Batch:
    where = f"calibration batch {index}"
    specs = model.inputs
    if isinstance(raw, Mapping):
        by_name = {tensor_name(str(k)): v for k, v in raw.items()}
        unknown = [k for k in by_name if k not in {s.name for s in specs}]
        if unknown:
            raise ConfigError(
                f"unknown input {unknown[0]!r}", where=where, why=f"the model's inputs are {list(model.input_names)}"
            )
        missing = [s.name for s in specs if s.name not in by_name]
        if missing:
            raise ConfigError(f"missing inputs {missing}", where=where, hint="give every model input")
        return {s.name: check_array(s, by_name[s.name], where=where) for s in specs}
    values: list[Any]
    if isinstance(raw, tuple | list):
        items = list(raw)
        # (inputs, labels): for one input, a pair whose first item is a batch and second a label array.
        if len(specs) == 1 and len(items) == 2 and not _same_shape(items):
            items = [items[0]]
        elif len(specs) > 1 and len(items) == 2 and isinstance(items[0], tuple | list | Mapping):
            return _checked(model, items[0], index)
        if len(specs) == 1 and len(items) == 1 and isinstance(items[0], Mapping):
            return _checked(model, items[0], index)
        values = items
    else:
        values = [raw]
    if len(values) != len(specs):
        raise ConfigError(
            f"the model has {len(specs)} inputs, the batch gives {len(values)}",
            where=where,
            hint=f"give {list(model.input_names)} in this order, a dict by name, or (inputs, labels)",
        )
    return {s.name: check_array(s, v, where=where) for s, v in zip(specs, values, strict=True)}


def _same_shape(items: list[Any]) -> bool:
    shapes = [np.shape(i) for i in items]
    return len(set(shapes)) == 1


def batch_size_of(batches: list[Batch]) -> int:
    first = next(iter(batches[0].values()))
    return int(first.shape[0]) if first.ndim else 1


Evaluator = Callable[[Model], float]
