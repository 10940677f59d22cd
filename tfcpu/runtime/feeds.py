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

__all__ = ["check_array", "check_batch", "normalise_feed", "resolve_shape", "synthetic_batch"]


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
        _check_integer_cast(spec, arr, want, where=where)
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


def _check_integer_cast(spec: TensorSpec, arr: np.ndarray, want: np.dtype, *, where: str) -> None:
    """Refuse an integer cast that would change a value (int64 token ids >= 2**31 wrap in int32)."""
    if arr.dtype.kind not in "iu" or want.kind not in "iu" or np.can_cast(arr.dtype, want, casting="safe"):
        return
    if arr.size == 0:
        return
    info = np.iinfo(want)
    low, high = int(arr.min()), int(arr.max())
    if low < info.min or high > info.max:
        bad = high if high > info.max else low
        raise ConfigError(
            f"input {spec.name!r} expects {want.name}, and {arr.dtype.name} value {bad} does not fit",
            where=where,
            why=f"{want.name} holds [{info.min}, {info.max}]; the cast would change the value",
            hint="check the data (ids larger than the model's vocabulary?) or feed values in range",
        )


def check_batch(model: Model, feed: Mapping[str, np.ndarray], *, where: str) -> None:
    """Refuse feeds whose batch dimensions differ: inputs with a dynamic dimension 0 must agree.

    TensorFlow would broadcast a batch of 1 against a batch of 8, or fail deep inside a kernel.
    """
    sizes = {
        spec.name: int(feed[spec.name].shape[0])
        for spec in model.inputs
        if spec.name in feed
        and spec.shape is not None
        and len(spec.shape) > 0
        and spec.shape[0] is None
        and feed[spec.name].ndim > 0
    }
    if len(set(sizes.values())) > 1:
        raise ConfigError(
            "the inputs have different batch sizes",
            where=where,
            why=", ".join(f"{name}: {size}" for name, size in sizes.items()),
            hint="give every input the same dimension 0 (one row per item)",
        )


def normalise_feed(model: Model, feed: Any) -> dict[str, np.ndarray]:
    """Accept a dict by name, a sequence by position, or one array for one input.

    Each value is checked against its input (`check_array`), and inputs with a dynamic batch
    dimension must have the same batch size (`check_batch`).
    """
    out = _normalise(model, feed)
    check_batch(model, out, where=model.source)
    return out


def _normalise(model: Model, feed: Any) -> dict[str, np.ndarray]:
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
    from tfcpu.graph._inputs import shape_for

    return shape_for(spec, batch_size, overrides, None)


def synthetic_batch(
    model: Model,
    batch_size: int,
    *,
    seed: int = 0,
    shapes: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, np.ndarray]:
    """Seeded random inputs for every model input: `tfcpu.graph.compare.random_inputs()`.

    Kept as the runtime's name for the one generator (floats ~ N(0,1); integers below the size of
    the embedding table they index, masks 0/1, read from the graph; unknown dimensions other than
    the batch need ``shapes``).
    """
    from tfcpu.graph.compare import random_inputs

    return random_inputs(model, batch_size, seed=seed, shapes=shapes)


def _fmt(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"
