"""The one seeded random-input generator (re-exported by `tfcpu.graph.compare`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from tfcpu.errors import ConfigError
from tfcpu.graph._input_ranges import INTEGER_HIGH  # integers that index no table found in the graph

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.graph._input_ranges import InputRange
    from tfcpu.graph.model import Model, TensorSpec

__all__ = ["INTEGER_HIGH", "check_inputs", "random_inputs", "shape_for"]


def shape_for(
    spec: TensorSpec, batch_size: int, shapes: Mapping[str, Sequence[int]] | None, unknown_dims: int | None
) -> tuple[int, ...]:
    from tfcpu.graph.model import tensor_name

    for key, shape in (shapes or {}).items():
        if tensor_name(key) == spec.name:
            return tuple(int(d) for d in shape)
    if spec.shape is None:
        raise ConfigError(
            f"input {spec.name!r} has unknown rank",
            hint="give its shape, e.g. --shape name:1,224,224,3 or shapes={'name': (1, 224, 224, 3)}",
        )
    dims = []
    for axis, dim in enumerate(spec.shape):
        if dim is not None and dim >= 0:
            dims.append(int(dim))
        elif axis == 0:
            dims.append(batch_size)
        elif unknown_dims is not None:
            dims.append(unknown_dims)
        else:
            shown = "(" + ", ".join("?" if d is None else str(d) for d in spec.shape) + ")"
            raise ConfigError(
                f"input {spec.name!r} has an unknown dimension {axis} in {shown}",
                hint="give its shape explicitly (shapes= / --shape)",
            )
    return tuple(dims)


def _dtype(spec: TensorSpec) -> np.dtype | None:
    try:
        return np.dtype(spec.dtype)
    except TypeError:
        return None


def check_inputs(
    model: Model,
    batch_size: int,
    shapes: Mapping[str, Sequence[int]] | None,
    *,
    unknown_dims: int | None = 1,
) -> list[tuple[tuple[int, ...], np.dtype | None]]:
    """The shape and dtype of every input at ``batch_size``, refused before anything is allocated.

    Refuses a ``shapes`` key that names no input (with "did you mean"), and a batch whose inputs
    need more memory than the machine has (`psutil.virtual_memory().total`), with the estimate.

    Args:
        model: the Model whose input signature is followed.
        batch_size: the size of an unknown dimension 0.
        shapes: explicit shapes by input name (``"x"`` or ``"x:0"``).
        unknown_dims: the size of other unknown dimensions (None: refused, see `random_inputs`).
    """
    from tfcpu.errors import did_you_mean
    from tfcpu.graph.model import tensor_name

    known = [s.name for s in model.inputs]
    for key in shapes or {}:
        if tensor_name(key) not in known:
            names = known + [s.node for s in model.inputs]
            raise ConfigError(
                f"--shape / shapes= names no input: {key!r}",
                where=model.source,
                why=f"the model's inputs are {[s.node for s in model.inputs]}",
                hint=did_you_mean(key.partition(":")[0], names) or "name one of the model's inputs",
            )
    planned = [(shape_for(spec, batch_size, shapes, unknown_dims), _dtype(spec)) for spec in model.inputs]
    # the generator draws float64/int64 and then casts: both copies live at once while an input is made
    need = sum(math.prod(shape) * (8 + (dtype.itemsize if dtype is not None else 8)) for shape, dtype in planned)
    import psutil

    total = psutil.virtual_memory().total
    if need > total:
        raise ConfigError(
            f"a batch of {batch_size} needs about {_bytes(need)} to make its inputs alone, more than this "
            f"machine's {_bytes(total)} of memory",
            where=model.source,
            why=", ".join(f"{s.node}{list(shape)}" for s, (shape, _) in zip(model.inputs, planned, strict=True)),
            hint="use a smaller --batch-size / batch_size",
        )
    return planned


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def random_inputs(
    model: Model,
    batch_size: int,
    *,
    seed: int = 0,
    shapes: Mapping[str, Sequence[int]] | None = None,
    unknown_dims: int | None = None,
    ranges: Mapping[str, InputRange] | None = None,
) -> dict[str, np.ndarray]:
    """Seeded random values for every input of ``model``, keyed by tensor name (``x:0``).

    Valid values, read from the graph (`tfcpu.graph._input_ranges.input_ranges`): an integer
    input that indexes an embedding table (Gather, OneHot) is uniform in ``[0, rows)``, a mask
    is 0/1, other integers are in ``[0, INTEGER_HIGH)``; floats are standard normal (``ranges``
    from ``input_ranges(model, floats=True)`` give pixels or normalised values instead, as
    synthetic calibration does), booleans fair coins.
    One ``numpy.random.default_rng(seed)`` stream is drawn in signature order, so the same
    model, batch size and seed give the same arrays wherever they are made.

    Args:
        model: the Model whose input signature is followed.
        batch_size: the size of an unknown dimension 0.
        seed: the random seed.
        shapes: explicit shapes by input name (``"x"`` or ``"x:0"``); they win over the signature.
        unknown_dims: the size of other unknown dimensions; ``None`` (default) refuses them with
            a ConfigError that asks for ``shapes=`` (a benchmark must not silently pick a size).
        ranges: what each input expects, by tensor name (default: read from the graph, floats N(0, 1)).
    """
    if batch_size < 1:
        raise ConfigError("batch_size must be at least 1", where=repr(batch_size))
    from tfcpu.graph._input_ranges import draw, input_ranges

    planned = check_inputs(model, batch_size, shapes, unknown_dims=unknown_dims)
    known = ranges if ranges is not None else input_ranges(model)
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for spec, (shape, dtype) in zip(model.inputs, planned, strict=True):
        if dtype is None or dtype.kind not in "fiub":
            raise ConfigError(
                f"cannot make random data for input {spec.name!r} of dtype {spec.dtype}",
                where=model.source,
                hint="feed real data for this input",
            )
        item = known.get(spec.name)
        if item is None:
            from tfcpu.graph._input_ranges import InputRange

            kind = {"f": "normal", "b": "bool"}.get(dtype.kind, "integer")
            item = InputRange(spec.name, kind, INTEGER_HIGH, derived=False)
        out[spec.name] = draw(item, shape, dtype, rng)
    return out
