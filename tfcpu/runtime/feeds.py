"""Feeds: check user inputs against a Model's signature before TensorFlow sees them, and
make synthetic batches.

Errors name the input, the expected and the given shape/dtype, and how to fix it, instead
of TensorFlow's "Cannot feed value of shape ..." from deep inside a session.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfcpu.errors import ConfigError, did_you_mean
from tfcpu.graph.model import Model, TensorSpec, tensor_name

__all__ = ["normalise_feed", "resolve_shape", "synthetic_batch"]


def _spec_for(model: Model, key: str) -> TensorSpec:
    wanted = tensor_name(key)
    for spec in model.inputs:
        if spec.name == wanted:
            return spec
    hint = did_you_mean(key, [s.name for s in model.inputs] + [s.node for s in model.inputs])
    raise ConfigError(
        f"unknown input {key!r}",
        where=model.source,
        why=f"the model's inputs are {[s.name for s in model.inputs]}",
        hint=hint or "feed by input name or by position",
    )


def check_array(spec: TensorSpec, value: Any, *, where: str) -> np.ndarray:
    """Return ``value`` as an array of the input's dtype, or raise ConfigError."""
    arr = np.asarray(value)
    want = np.dtype(spec.dtype) if spec.dtype not in ("string", "resource") else None
    if want is not None and arr.dtype != want:
        if not np.can_cast(arr.dtype, want, casting="same_kind"):
            raise ConfigError(
                f"input {spec.name!r} expects {want.name}, got {arr.dtype.name}",
                where=where,
                hint=f"convert it first, e.g. array.astype(np.{want.name})",
            )
        arr = arr.astype(want)
    if spec.shape is not None:
        if arr.ndim != len(spec.shape):
            raise ConfigError(
                f"input {spec.name!r} expects rank {len(spec.shape)} {_fmt(spec.shape)}, got shape {tuple(arr.shape)}",
                where=where,
                hint="add or remove the batch dimension (np.expand_dims / squeeze)",
            )
        for axis, (want_dim, got) in enumerate(zip(spec.shape, arr.shape, strict=True)):
            if want_dim is not None and want_dim != got:
                raise ConfigError(
                    f"input {spec.name!r} expects shape {_fmt(spec.shape)}, got {tuple(arr.shape)}",
                    where=where,
                    why=f"dimension {axis} must be {want_dim}",
                )
    return arr


def normalise_feed(model: Model, feed: Any) -> dict[str, np.ndarray]:
    """Accept a dict by name, a sequence by position, or one array for one input."""
    if isinstance(feed, Mapping):
        out = {}
        for key, value in feed.items():
            spec = _spec_for(model, str(key))
            out[spec.name] = check_array(spec, value, where=model.source)
        missing = [s.name for s in model.inputs if s.name not in out]
        if missing:
            raise ConfigError(f"missing inputs {missing}", where=model.source, hint="feed every model input")
        return out
    values: Sequence[Any]
    if len(model.inputs) == 1:
        single = isinstance(feed, (list, tuple)) and len(feed) == 1 and isinstance(feed[0], np.ndarray)
        values = [feed[0] if single else feed]
    elif isinstance(feed, (list, tuple)):
        values = feed
    else:
        values = [feed]
    if len(values) != len(model.inputs):
        raise ConfigError(
            f"the model has {len(model.inputs)} inputs, {len(values)} were given",
            where=model.source,
            hint=f"feed {[s.name for s in model.inputs]} in this order, or a dict by name",
        )
    return {
        spec.name: check_array(spec, value, where=model.source)
        for spec, value in zip(model.inputs, values, strict=True)
    }


def resolve_shape(
    spec: TensorSpec, batch_size: int, overrides: Mapping[str, Sequence[int]] | None = None
) -> tuple[int, ...]:
    """A concrete shape for ``spec``: batch dimension ``batch_size``; other unknowns need overrides."""
    if overrides:
        for key, shape in overrides.items():
            if tensor_name(key) == spec.name:
                return tuple(int(d) for d in shape)
    if spec.shape is None:
        raise ConfigError(
            f"input {spec.name!r} has unknown rank",
            hint="give its shape, e.g. --shape name:1,224,224,3 or shapes={'name': (1, 224, 224, 3)}",
        )
    dims = []
    for axis, dim in enumerate(spec.shape):
        if dim is None and axis == 0:
            dims.append(batch_size)
        elif dim is None:
            raise ConfigError(
                f"input {spec.name!r} has an unknown dimension {axis} in {_fmt(spec.shape)}",
                hint="give its shape explicitly (shapes= / --shape)",
            )
        else:
            dims.append(dim)
    return tuple(dims)


def synthetic_batch(
    model: Model,
    batch_size: int,
    *,
    seed: int = 0,
    shapes: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, np.ndarray]:
    """Seeded random inputs for every model input (floats ~ N(0,1), integers in [0, 10))."""
    rng = np.random.default_rng(seed)
    out = {}
    for spec in model.inputs:
        shape = resolve_shape(spec, batch_size, shapes)
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f":
            out[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            out[spec.name] = rng.integers(0, 10, size=shape).astype(dtype)
        elif dtype.kind == "b":
            out[spec.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            raise ConfigError(f"cannot make synthetic data for input {spec.name!r} of dtype {spec.dtype}")
    return out


def _fmt(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"
