"""The one seeded random-input generator (re-exported by `tfcpu.graph.compare`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from tfcpu.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.graph.model import Model, TensorSpec

__all__ = ["INTEGER_HIGH", "random_inputs", "shape_for"]

#: Random integer inputs are drawn from ``[0, INTEGER_HIGH)``: small enough to index any
#: embedding, Gather or one-hot of at least that many rows.
INTEGER_HIGH = 8


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


def random_inputs(
    model: Model,
    batch_size: int,
    *,
    seed: int = 0,
    shapes: Mapping[str, Sequence[int]] | None = None,
    unknown_dims: int | None = None,
) -> dict[str, np.ndarray]:
    """Seeded random values for every input of ``model``, keyed by tensor name (``x:0``).

    Floats are standard normal, integers uniform in ``[0, INTEGER_HIGH)``, booleans fair coins.
    One ``numpy.random.default_rng(seed)`` stream is drawn in signature order, so the same
    model, batch size and seed give the same arrays wherever they are made.

    Args:
        model: the Model whose input signature is followed.
        batch_size: the size of an unknown dimension 0.
        seed: the random seed.
        shapes: explicit shapes by input name (``"x"`` or ``"x:0"``); they win over the signature.
        unknown_dims: the size of other unknown dimensions; ``None`` (default) refuses them with
            a ConfigError that asks for ``shapes=`` (a benchmark must not silently pick a size).
    """
    if batch_size < 1:
        raise ConfigError("batch_size must be at least 1", where=repr(batch_size))
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for spec in model.inputs:
        shape = shape_for(spec, batch_size, shapes, unknown_dims)
        try:
            dtype = np.dtype(spec.dtype)
        except TypeError:
            dtype = None
        if dtype is None or dtype.kind not in "fiub":
            raise ConfigError(
                f"cannot make random data for input {spec.name!r} of dtype {spec.dtype}",
                where=model.source,
                hint="feed real data for this input",
            )
        if dtype.kind == "f":
            out[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            out[spec.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            out[spec.name] = rng.integers(0, INTEGER_HIGH, size=shape).astype(dtype)
    return out
