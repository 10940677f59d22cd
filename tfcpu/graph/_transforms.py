"""Parsing a TensorFlow ``graph_transforms`` string into (pass name, parameters) pairs.

``remove_nodes(op=A, op=B)`` becomes ``("remove_nodes", {"ops": ("A", "B")})``;
``true``/``false`` are booleans, integers are ints, anything else a string (quotes
stripped); ``strip_unused_nodes(type=..., shape=..., name=...)`` is accepted and its
arguments ignored (a tfcpu Model carries its own signature). Unknown transform names are a
ConfigError with "did you mean"; the parameters themselves are validated by
``GraphOptimizer.add``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from typing import Any

from tfcpu.errors import ConfigError, did_you_mean

logger = logging.getLogger(__name__)

__all__ = ["parse_transforms"]

# graph_transforms arguments that tfcpu accepts but does not need (the Model carries the
# signature), mapped per pass.
_IGNORED_TRANSFORM_ARGS = {"strip_unused_nodes": {"type", "shape", "name"}}
_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(\(([^)]*)\))?\s*")


def parse_transforms(transforms: str, known: Collection[str]) -> list[tuple[str, dict[str, Any]]]:
    """Split ``transforms`` into ``[(name, params), ...]`` in order.

    Args:
        transforms: the transform string, optionally quoted as a whole.
        known: the registered pass names.
    """
    text = transforms.strip().strip("'\"")
    pos = 0
    steps: list[tuple[str, dict[str, Any]]] = []
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ConfigError(
                "cannot parse the transform string", where=text[pos : pos + 40], hint="expected name(arg=v, ...)"
            )
        pos = match.end()
        name, args = match.group(1), match.group(3)
        if name not in known:
            raise ConfigError(
                f"unknown transform {name!r}",
                why=did_you_mean(name, known),
                hint="tfcpu implements: " + ", ".join(sorted(known)),
            )
        steps.append((name, _params(name, args or "")))
    if not steps:
        raise ConfigError("the transform string is empty", hint="e.g. 'fold_constants fold_batch_norms'")
    return steps


def _params(name: str, args: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for raw in _split_args(args):
        key, sep, value = raw.partition("=")
        key, value = key.strip(), value.strip().strip("'\"")
        if not sep or not key:
            raise ConfigError(f"transform argument {raw!r} is not key=value", where=name)
        if key in _IGNORED_TRANSFORM_ARGS.get(name, set()):
            logger.info("transform %s: argument %s ignored (the Model carries its signature)", name, key)
            continue
        if name == "remove_nodes" and key == "op":
            params["ops"] = (*params.get("ops", ()), value)
            continue
        params[key] = _convert(value)
    return params


def _split_args(text: str) -> list[str]:
    """Split ``a=1, b="1,2"`` at commas outside quotes."""
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == ",":
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [a for a in (p.strip() for p in parts) if a]


def _convert(value: str) -> Any:
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    return value
