"""What values each model input expects, read from the graph (issue 27).

Random inputs must be *valid* inputs, or a numerical check fails for the wrong reason (an id outside
its embedding table makes TensorFlow's ``GatherV2`` fail) and a synthetic calibration measures ranges
no real input has. `input_ranges()` follows each input forward through the ops that keep its values
(`PASS_THROUGH`: Identity, Cast, Reshape, ExpandDims, the value operands of Select ...) and decides:

==========  ===============================================================================
kind        when, and what is drawn
==========  ===============================================================================
``index``   an integer input reaching the indices of ``Gather``/``GatherV2``/``ResourceGather``
            (the table's rows along the gather axis: the size of the params ``Const``) or of
            ``OneHot`` (its depth): uniform in ``[0, smallest table)``. Token, segment
            (token-type) and position ids are all indices of their tables.
``mask``    an integer or boolean input named ``*mask*`` or reaching the condition of a
            ``Select``/``SelectV2`` or (cast to float) a ``Mul``: 0/1, a run of ones from the
            start of each row (what a padding mask holds) for rank-2 inputs, coin flips otherwise.
``pixels``  (``floats=True``) a float input whose first ops scale it by a constant of at most
            1/50 (Keras ``Rescaling(1/255)``, ``1/127.5``) or subtract a constant above 10 (caffe
            means): uniform integers 0..255 as floats.
``normalized``  (``floats=True``) a float input followed by a constant affine chain
            ``y = a * x + b`` (Keras ``Normalization``): ``x = (z - b) / a`` with ``z ~ N(0, 1)``,
            so what the model sees after its own preprocessing is standard normal.
``normal``  any other float input: N(0, 1). ``integer``: any other integer input: ``[0,
            INTEGER_HIGH)``, marked ``derived=False`` (a guess a failed check names).
==========  ===============================================================================

Constant chains are read from ``Const`` nodes (through Identity) and small constant subgraphs
(Sqrt, Maximum, Reciprocal, ... of constants, as Keras's Normalization leaves them), in numpy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfcpu.graph._graphdef import GraphIndex, data_inputs, parse_input

__all__ = ["INTEGER_HIGH", "InputRange", "describe", "draw", "input_ranges"]

#: Integers reaching no table are drawn from ``[0, INTEGER_HIGH)``.
INTEGER_HIGH = 8

#: Ops whose output holds the values of their first input (for a Select: of its value operands).
PASS_THROUGH = frozenset(
    {"Identity", "IdentityN", "Cast", "Reshape", "ExpandDims", "Squeeze", "StopGradient", "Transpose",
     "StridedSlice", "Slice", "Tile", "BroadcastTo", "Pack", "ConcatV2", "Snapshot", "CheckNumerics"}
)  # fmt: skip
_SELECT = frozenset({"Select", "SelectV2"})
_GATHER = frozenset({"Gather", "GatherV2", "ResourceGather"})
_AFFINE = frozenset({"Mul", "RealDiv", "Sub", "Add", "AddV2"})
_MAX_DEPTH = 12


@dataclass(frozen=True)
class InputRange:
    """The values one input expects.

    Attributes:
        name: the input tensor (``x:0``).
        kind: ``index``, ``mask``, ``pixels``, ``normalized``, ``normal``, ``integer`` or ``bool``.
        high: the exclusive upper bound of an ``index``/``integer`` (0 otherwise).
        why: where the range comes from (a node and a size), for reports.
        derived: read from the graph (False: a default guess).
        scale: ``normalized``: ``a`` of ``y = a * x + b`` (broadcasts over the input).
        shift: ``normalized``: ``b``.
    """

    name: str
    kind: str
    high: int = 0
    why: str = ""
    derived: bool = True
    scale: Any = None
    shift: Any = None

    def line(self) -> str:
        """``token_ids:0: ids in [0, 1000) — indexes token_embedding/GatherV2 (1000 rows)``."""
        what = {
            "index": f"ids in [0, {self.high})",
            "integer": f"integers in [0, {self.high})",
            "mask": "0/1 mask",
            "bool": "booleans",
            "pixels": "pixels 0..255",
            "normalized": "values the model's own normalisation maps to N(0, 1)",
            "normal": "N(0, 1)",
        }[self.kind]
        return f"{self.name}: {what}" + (f" — {self.why}" if self.why else "")


def describe(ranges: Mapping[str, InputRange]) -> list[str]:
    """One line per input (`InputRange.line`)."""
    return [r.line() for r in ranges.values()]


def draw(item: InputRange, shape: Sequence[int], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    """Seeded values of ``item``'s kind, shape and dtype (one draw from ``rng``)."""
    shape = tuple(int(d) for d in shape)
    if item.kind in ("mask", "bool"):
        if item.kind == "mask" and len(shape) == 2 and shape[1] > 0:
            lengths = rng.integers(1, shape[1] + 1, size=shape[0])
            values = (np.arange(shape[1])[None, :] < lengths[:, None]).astype(np.int64)
        else:
            values = rng.integers(0, 2, size=shape)
        return values.astype(bool) if dtype.kind == "b" else values.astype(dtype)
    if item.kind in ("index", "integer"):
        return rng.integers(0, max(1, item.high), size=shape).astype(dtype)
    if item.kind == "pixels":
        return rng.integers(0, 256, size=shape).astype(dtype)
    z = rng.standard_normal(shape)
    if item.kind == "normalized":
        with contextlib.suppress(ValueError):  # constants that do not broadcast to the input: standard normal
            z = np.broadcast_to(
                (z - np.asarray(item.shift, dtype=np.float64)) / np.asarray(item.scale, dtype=np.float64), shape
            )
    return np.asarray(z).astype(dtype)


def input_ranges(model: Any, *, floats: bool = False) -> dict[str, InputRange]:
    """The expected values of every input of ``model``, keyed by tensor name.

    Args:
        model: a `tfcpu.Model` (a model without a GraphDef gets the defaults).
        floats: also read float inputs' preprocessing (pixels / normalised); otherwise N(0, 1).
    """
    graph_def = getattr(model, "graph_def", None)
    index = GraphIndex(graph_def) if graph_def is not None else None
    out: dict[str, InputRange] = {}
    for spec in model.inputs:
        try:
            dtype = np.dtype(spec.dtype)
        except TypeError:
            dtype = np.dtype(object)
        out[spec.name] = _range_for(index, spec, dtype, floats)
    return out


def _range_for(index: GraphIndex | None, spec: Any, dtype: np.dtype, floats: bool) -> InputRange:
    name = spec.name
    masky = "mask" in spec.node.lower()
    if dtype.kind == "b":
        return InputRange(name, "bool", why="", derived=True)
    if dtype.kind in "iu":
        if index is None:
            return _guess(name, masky)
        tables, mask_use = _follow(index, spec.node)
        known = [t for t in tables if t[1] is not None]
        if known and not masky:
            node, size = min(known, key=lambda t: t[1] or 0)
            rows = int(size or 0)
            return InputRange(name, "index", rows, why=f"indexes {node} ({rows} rows)")
        if masky or mask_use:
            why = f"used as a mask at {mask_use}" if mask_use else "named as a mask"
            return InputRange(name, "mask", 2, why=why)
        if tables:
            return InputRange(
                name,
                "integer",
                INTEGER_HIGH,
                why=f"indexes {tables[0][0]}, whose size is not a constant",
                derived=False,
            )
        return _guess(name, False)
    if dtype.kind == "f" and floats and index is not None:
        return _float_range(index, spec)
    return InputRange(name, "normal", derived=dtype.kind == "f")


def _guess(name: str, masky: bool) -> InputRange:
    if masky:
        return InputRange(name, "mask", 2, why="named as a mask")
    return InputRange(name, "integer", INTEGER_HIGH, why="no embedding table found behind it", derived=False)


def _follow(index: GraphIndex, start: str) -> tuple[list[tuple[str, int | None]], str]:
    """Tables (node, rows or None) the values of ``start`` index, and a node using them as a mask."""
    tables: list[tuple[str, int | None]] = []
    mask_use = ""
    seen: set[str] = set()
    frontier: list[tuple[str, int, bool]] = [(start, 0, False)]
    while frontier:
        name, depth, cast_to_float = frontier.pop()
        if name in seen or depth > _MAX_DEPTH:
            continue
        seen.add(name)
        for node, ref in index.data_consumers(name):
            position = _position(node, ref)
            if node.op in _GATHER and position == 1:
                tables.append((node.name, _gather_rows(index, node)))
            elif node.op == "OneHot" and position == 0:
                tables.append((node.name, _const_int(index, data_inputs(node)[1])))
            elif node.op in _SELECT:
                if position == 0:
                    mask_use = mask_use or node.name
                else:
                    frontier.append((node.name, depth + 1, cast_to_float))
            elif node.op == "Mul" and cast_to_float:
                mask_use = mask_use or node.name
            elif node.op in PASS_THROUGH:
                floaty = cast_to_float or (node.op == "Cast" and _is_float(node.attr["DstT"].type))
                frontier.append((node.name, depth + 1, floaty))
    return tables, mask_use


def _position(node: Any, ref: Any) -> int:
    """Which data input of ``node`` reads ``ref`` (the first such)."""
    for i, text in enumerate(data_inputs(node)):
        got = parse_input(text)
        if got.node == ref.node and got.index == ref.index:
            return i
    return -1


def _is_float(enum: int) -> bool:
    return enum in (1, 2, 14, 19)  # DT_FLOAT, DT_DOUBLE, DT_BFLOAT16, DT_HALF


def _gather_rows(index: GraphIndex, node: Any) -> int | None:
    inputs = data_inputs(node)
    axis = 0
    if node.op == "GatherV2" and len(inputs) > 2:
        value = _const_int(index, inputs[2])
        if value is None:
            return None
        axis = value
    shape = _const_shape(index, inputs[0])
    if shape is None or not -len(shape) <= axis < len(shape):
        return None
    return int(shape[axis])


def _const_node(index: GraphIndex, text: str) -> Any | None:
    node = index.producer(text)
    for _ in range(_MAX_DEPTH):
        if node is None or node.op == "Const":
            return node
        if node.op not in ("Identity", "ReadVariableOp", "Snapshot") or not data_inputs(node):
            return None
        node = index.producer(data_inputs(node)[0])
    return None


def _const_shape(index: GraphIndex, text: str) -> tuple[int, ...] | None:
    node = _const_node(index, text)
    if node is None or "value" not in node.attr:
        return None
    dims = node.attr["value"].tensor.tensor_shape.dim
    return tuple(int(d.size) for d in dims)


def _const_int(index: GraphIndex, text: str) -> int | None:
    value = _const_value(index, text)
    if value is None or value.size != 1:
        return None
    return int(value.reshape(()))


# -- constant values (small subgraphs of constants, evaluated in numpy) -----------------------
_UNARY: dict[str, Callable[[np.ndarray], Any]] = {
    "Sqrt": np.sqrt,
    "Rsqrt": lambda v: 1.0 / np.sqrt(v),
    "Reciprocal": lambda v: 1.0 / v,
    "Neg": np.negative,
}
_BINARY: dict[str, Callable[[np.ndarray, np.ndarray], Any]] = {
    "Maximum": np.maximum, "Minimum": np.minimum, "Mul": np.multiply, "RealDiv": np.divide,
    "Sub": np.subtract, "Add": np.add, "AddV2": np.add,
}  # fmt: skip
_MAX_CONST = 1 << 20


def _const_value(index: GraphIndex, text: str, depth: int = 0) -> np.ndarray | None:
    """The value of a small constant subgraph ending at ``text`` (None when not constant or too big)."""
    node = index.producer(text)
    if node is None or depth > _MAX_DEPTH:
        return None
    inputs = data_inputs(node)
    if node.op == "Const":
        from tfcpu.graph._graphdef import const_elements

        if const_elements(node) > _MAX_CONST:
            return None
        from tfcpu.graph._graphdef import const_array

        return np.asarray(const_array(node))
    args = [_const_value(index, i, depth + 1) for i in inputs]
    if not args or any(a is None for a in args):
        return None
    values: list[np.ndarray] = [a for a in args if a is not None]
    with np.errstate(all="ignore"):
        if node.op in ("Identity", "Snapshot", "StopGradient", "ReadVariableOp") or node.op == "Cast":
            return values[0]
        if node.op in _UNARY:
            return np.asarray(_UNARY[node.op](values[0].astype(np.float64)))
        if node.op in _BINARY and len(values) == 2:
            return np.asarray(_BINARY[node.op](values[0], values[1]))
        if node.op == "Reshape" and len(values) == 2:
            return values[0].reshape(tuple(int(d) for d in values[1].ravel()))
    return None


# -- float inputs: the model's own preprocessing ----------------------------------------------
Step = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]


def _affine_step(op: str, mine: int, c: np.ndarray, a: np.ndarray, b: np.ndarray) -> Step | None:
    """``y = a * x + b`` followed by ``op`` with the constant ``c`` (the input at position ``mine``):
    the new ``(a, b)`` and this step's own scale and shift (None when it has none)."""
    if op == "Mul":
        return a * c, b * c, c, None
    if op == "RealDiv" and mine == 0:
        return a / c, b / c, 1.0 / c, None
    if op == "Sub" and mine == 0:
        return a, b - c, None, -c
    if op == "Sub":
        return -a, c - b, -np.ones(()), c
    if op in ("Add", "AddV2"):
        return a, b + c, None, c
    return None


def _float_range(index: GraphIndex, spec: Any) -> InputRange:
    """Compose the constant affine chain right after the input: ``y = a * x + b``."""
    name = spec.node
    a: np.ndarray = np.ones(())
    b: np.ndarray = np.zeros(())
    first = ""
    first_scale: np.ndarray | None = None
    first_shift: np.ndarray | None = None
    for _ in range(_MAX_DEPTH):
        consumers = index.data_consumers(name)
        if len(consumers) != 1:
            break
        node, ref = consumers[0]
        inputs = data_inputs(node)
        if node.op in ("Identity", "Cast", "Snapshot"):
            name = node.name
            continue
        if node.op not in _AFFINE or len(inputs) != 2:
            break
        mine = 0 if parse_input(inputs[0]).node == ref.node else 1
        c = _const_value(index, inputs[1 - mine])
        if c is None or not np.issubdtype(c.dtype, np.number) or c.size > 4096:
            break
        step = _affine_step(node.op, mine, c.astype(np.float64), a, b)
        if step is None:
            break
        a, b, scale, shift = step
        if not first:
            first, first_scale, first_shift = node.name, scale, shift
        name = node.name
    if not first:
        return InputRange(spec.name, "normal", why="no preprocessing found right after it")
    if first_scale is not None and float(np.max(np.abs(first_scale))) <= 1 / 50:
        factor = float(np.max(np.abs(first_scale)))
        return InputRange(
            spec.name, "pixels", why=f"the graph scales it by {factor:.4g} (~1/{1 / factor:.4g}) at {first}"
        )
    if first_shift is not None and float(np.max(np.abs(first_shift))) > 10:
        return InputRange(
            spec.name,
            "pixels",
            why=f"the graph subtracts means up to {float(np.max(np.abs(first_shift))):.4g} at {first}",
        )
    if np.all(np.abs(a) > 0) and np.all(np.isfinite(a)) and np.all(np.isfinite(b)):
        return InputRange(
            spec.name, "normalized", why=f"the graph normalises it from {first} to {name}", scale=a, shift=b
        )
    return InputRange(spec.name, "normal", why=f"the constants after it at {first} cannot be inverted")
