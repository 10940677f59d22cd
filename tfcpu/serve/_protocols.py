"""The wire formats: KServe v2 (Open Inference Protocol) REST and TF Serving REST, decoded to arrays and back.

Both protocols name tensors by the model's *signature keys* (`tfcpu.formats.savedmodel.signature_keys`:
the source SavedModel's keys, or the tensor names without ``:0``), so a client written for the
SavedModel under TF Serving or KServe talks to tfcpu unchanged. Decoding checks each tensor against
the signature before anything runs (`tfcpu.runtime.feeds.check_array`): an unknown or missing name, a
datatype that cannot be cast, a wrong rank or fixed dimension is a `BadRequest` naming the input.

KServe v2: ``{"inputs": [{"name", "shape", "datatype", "data"}], "outputs": [{"name"}]}``; ``data`` flat
in row-major order (nested lists are accepted too). The binary tensor extension (a JSON header of
``Inference-Header-Content-Length`` bytes, then each input's raw bytes in order, sized by its
``parameters.binary_data_size``) is accepted, as tritonclient sends it by default; outputs come back
the same way when the request asks (``parameters.binary_data_output`` for all, or an output's
``parameters.binary_data``), as tritonclient asks by default: a JSON header, then each binary output's raw
little-endian bytes in order (BYTES elements each prefixed by their length as a 4-byte integer).

TF Serving: ``{"instances": [...]}`` (row format: one entry per example; for several inputs each entry
is an object by key) answered with ``{"predictions": [...]}``, or ``{"inputs": ...}`` (columnar: a
tensor, or an object by key) answered with ``{"outputs": ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfcpu.errors import ConfigError, did_you_mean
from tfcpu.graph.model import Model, TensorSpec

__all__ = [
    "BadRequest",
    "KServeRequest",
    "Reply",
    "Signature",
    "TFServingRequest",
    "decode_kserve",
    "decode_tfserving",
    "encode_kserve",
    "encode_tfserving",
]

KSERVE_DTYPES: dict[str, str] = {
    "BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64", "INT8": "int8",
    "INT16": "int16", "INT32": "int32", "INT64": "int64", "FP16": "float16", "FP32": "float32", "FP64": "float64",
    "BYTES": "object",
}  # fmt: skip
_TO_KSERVE = {v: k for k, v in KSERVE_DTYPES.items()} | {"string": "BYTES", "bfloat16": "BF16"}


class BadRequest(Exception):
    """A request that does not fit the model's signature (answered with 400 and this message)."""


@dataclass(frozen=True)
class KServeRequest:
    """A decoded KServe v2 infer request."""

    feeds: dict[str, np.ndarray]  # arrays by tensor name, checked against the signature
    outputs: tuple[str, ...]  # the output keys asked for (all when none named)
    id: Any = None
    binary: frozenset[str] = frozenset()  # output keys to answer with the binary tensor extension


@dataclass(frozen=True)
class TFServingRequest:
    """A decoded TF Serving predict request."""

    feeds: dict[str, np.ndarray]  # arrays by tensor name, checked against the signature
    form: str  # "row" (instances) or "columnar" (inputs)


@dataclass(frozen=True)
class Reply:
    """An answer body: JSON, then (KServe's binary extension) raw tensor bytes after it."""

    body: dict[str, Any]
    binary: bytes = b""

    def content(self) -> tuple[bytes, dict[str, str]]:
        """The bytes to send and their headers (``Inference-Header-Content-Length`` when binary)."""
        head = json.dumps(self.body, separators=(",", ":")).encode()
        if not self.binary:
            return head, {"content-type": "application/json"}
        return head + self.binary, {
            "content-type": "application/octet-stream",
            "inference-header-content-length": str(len(head)),
        }

    def response(self) -> Any:
        """The Starlette response."""
        from starlette.responses import Response

        content, headers = self.content()
        return Response(content, headers={k: v for k, v in headers.items() if k != "content-type"},
                        media_type=headers["content-type"])  # fmt: skip


@dataclass(frozen=True)
class Signature:
    """The model's tensors under the names clients use (its signature keys)."""

    name: str
    inputs: tuple[tuple[str, TensorSpec], ...]
    outputs: tuple[tuple[str, TensorSpec], ...]

    @classmethod
    def of(cls, model: Model) -> Signature:
        from tfcpu.formats.savedmodel import signature_keys

        name, in_keys, out_keys = signature_keys(model)
        return cls(
            name, tuple(zip(in_keys, model.inputs, strict=True)), tuple(zip(out_keys, model.outputs, strict=True))
        )

    def describe(self, which: str) -> list[dict[str, Any]]:
        """KServe metadata: ``[{"name", "datatype", "shape"}]`` for ``"inputs"`` or ``"outputs"``."""
        return [
            {"name": key, "datatype": _TO_KSERVE.get(spec.dtype, spec.dtype.upper()),
             "shape": [-1 if d is None else d for d in (spec.shape or ())]}
            for key, spec in getattr(self, which)
        ]  # fmt: skip

    def check(self, given: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Arrays by client key -> arrays by tensor name, each checked and cast; BadRequest otherwise."""
        from tfcpu.runtime.feeds import check_array

        keys = dict(self.inputs)
        for key in given:
            if key not in keys:
                hint = did_you_mean(key, keys)
                raise BadRequest(f"unknown input {key!r}" + (f": {hint}" if hint else "") + f"; inputs: {sorted(keys)}")
        missing = [k for k in keys if k not in given]
        if missing:
            raise BadRequest(f"missing input {missing[0]!r}; the model takes {sorted(keys)}")
        out: dict[str, np.ndarray] = {}
        for key, spec in self.inputs:
            try:
                out[spec.name] = check_array(spec, given[key], where=f"input {key!r}")
            except ConfigError as exc:
                raise BadRequest(f"input {key!r}: {exc.what}" + (f" ({exc.why})" if exc.why else "")) from None
        rows = {arr.shape[0] for arr in out.values() if arr.ndim}
        if len(rows) > 1:
            raise BadRequest(f"the inputs have different batch sizes: {sorted(rows)}")
        return out


def _array(data: Any, shape: Sequence[int] | None, dtype: str, where: str) -> np.ndarray:
    try:
        arr = np.asarray(data, dtype=dtype if dtype != "object" else object)
        if shape is not None:
            arr = arr.reshape([int(d) for d in shape])
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"{where}: the data does not fit shape {list(shape or [])} as {dtype}: {exc}") from None
    return arr


def decode_kserve(body: bytes, header_length: int | None, sig: Signature) -> KServeRequest:
    """A KServe v2 infer request (JSON, or the binary tensor extension) -> `KServeRequest`."""
    head, binary = (body[:header_length], body[header_length:]) if header_length else (body, b"")
    try:
        request = json.loads(head)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise BadRequest('the body must be an object with an "inputs" list')
    given: dict[str, np.ndarray] = {}
    offset = 0
    for i, item in enumerate(request["inputs"]):
        if not isinstance(item, dict) or not {"name", "shape", "datatype"} <= set(item):
            raise BadRequest(f"inputs[{i}] needs name, shape and datatype")
        name, datatype = str(item["name"]), str(item["datatype"])
        if datatype not in KSERVE_DTYPES:
            raise BadRequest(f"input {name!r}: unknown datatype {datatype!r}; one of {sorted(KSERVE_DTYPES)}")
        dtype = KSERVE_DTYPES[datatype]
        size = (item.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if dtype == "object":
                raise BadRequest(f"input {name!r}: binary BYTES tensors are not supported; send them as JSON")
            chunk = binary[offset : offset + int(size)]
            offset += int(size)
            if len(chunk) != int(size):
                raise BadRequest(f"input {name!r}: {size} binary bytes announced, {len(chunk)} sent")
            given[name] = _array(np.frombuffer(chunk, dtype=dtype), item["shape"], dtype, f"input {name!r}")
        elif "data" in item:
            given[name] = _array(item["data"], item["shape"], dtype, f"input {name!r}")
        else:
            raise BadRequest(f"input {name!r} has no data")
    if offset != len(binary):
        raise BadRequest(f"{len(binary)} bytes follow the JSON header, the inputs announce {offset}")
    asked = [o for o in request.get("outputs") or [] if isinstance(o, dict)]
    known = [k for k, _ in sig.outputs]
    for item in asked:
        if str(item.get("name")) not in known:
            raise BadRequest(f"unknown output {item.get('name')!r}; outputs: {known}")
    everything = bool(_parameters(request).get("binary_data_output", False))
    as_binary = {k for k in known if everything}
    for item in asked:
        flag = _parameters(item).get("binary_data")
        if flag is not None:
            (as_binary.add if flag else as_binary.discard)(str(item["name"]))
    wanted = tuple(str(o["name"]) for o in asked) or tuple(known)
    return KServeRequest(sig.check(given), wanted, request.get("id"), frozenset(as_binary & set(wanted)))


def _parameters(item: Mapping[str, Any]) -> Mapping[str, Any]:
    params = item.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise BadRequest('"parameters" must be an object')
    return params


def encode_kserve(model_name: str, sig: Signature, outputs: Mapping[str, np.ndarray],
                  request: KServeRequest) -> Reply:  # fmt: skip
    """Outputs by tensor name -> a KServe v2 infer response (binary outputs where the request asked)."""
    by_key = {key: np.asarray(outputs[spec.name]) for key, spec in sig.outputs}
    items: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for key in request.outputs:
        arr = by_key[key]
        datatype = _TO_KSERVE.get(arr.dtype.name, "BYTES")
        item: dict[str, Any] = {"name": key, "shape": list(arr.shape), "datatype": datatype}
        if key in request.binary:
            raw = _raw(arr)
            item["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            item["data"] = _plain(arr.reshape(-1))
        items.append(item)
    body: dict[str, Any] = {"model_name": model_name, "model_version": "1", "outputs": items}
    if request.id is not None:
        body["id"] = request.id
    return Reply(body, b"".join(chunks))


def _raw(arr: np.ndarray) -> bytes:
    """A tensor's bytes for the binary extension: little-endian row-major; BYTES length-prefixed."""
    if arr.dtype == object or arr.dtype.kind in "SU":
        parts = []
        for value in arr.reshape(-1).tolist():
            data = value if isinstance(value, bytes) else str(value).encode()
            parts.append(len(data).to_bytes(4, "little") + data)
        return b"".join(parts)
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


def _plain(arr: np.ndarray) -> Any:
    if arr.dtype == object or arr.dtype.kind in "SU":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in arr.tolist()]
    return arr.tolist()


def decode_tfserving(body: bytes, sig: Signature) -> TFServingRequest:
    """A TF Serving predict request (row or columnar form) -> `TFServingRequest`."""
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(request, dict) or ("instances" in request) == ("inputs" in request):
        raise BadRequest('the body must be an object with either "instances" (row format) or "inputs" (columnar)')
    wanted_sig = request.get("signature_name")
    if wanted_sig not in (None, sig.name):
        raise BadRequest(f"unknown signature_name {wanted_sig!r}; this model serves {sig.name!r}")
    keys = [k for k, _ in sig.inputs]
    dtypes = {k: s.dtype for k, s in sig.inputs}
    if "instances" in request:
        rows = request["instances"]
        if not isinstance(rows, list) or not rows:
            raise BadRequest('"instances" must be a non-empty list')
        if all(isinstance(r, dict) for r in rows):
            names = set().union(*(r.keys() for r in rows))
            given = {n: _array([r.get(n) for r in rows], None, _np_dtype(dtypes.get(n)), f"input {n!r}") for n in names}
        elif len(keys) == 1:
            given = {keys[0]: _array(rows, None, _np_dtype(dtypes[keys[0]]), f"input {keys[0]!r}")}
        else:
            raise BadRequest(f"the model has several inputs {keys}: each instance must be an object by input name")
        return TFServingRequest(sig.check(given), "row")
    columns = request["inputs"]
    if isinstance(columns, dict):
        given = {n: _array(v, None, _np_dtype(dtypes.get(n)), f"input {n!r}") for n, v in columns.items()}
    elif len(keys) == 1:
        given = {keys[0]: _array(columns, None, _np_dtype(dtypes[keys[0]]), f"input {keys[0]!r}")}
    else:
        raise BadRequest(f'the model has several inputs {keys}: "inputs" must be an object by input name')
    return TFServingRequest(sig.check(given), "columnar")


def _np_dtype(dtype: str | None) -> str:
    if dtype is None:
        return "float64"  # an unknown name: sig.check refuses it with a did-you-mean
    return "object" if dtype == "string" else dtype


def encode_tfserving(sig: Signature, outputs: Mapping[str, np.ndarray], form: str) -> Reply:
    """Outputs by tensor name -> ``{"predictions": rows}`` (row format) or ``{"outputs": ...}`` (columnar)."""
    by_key = {key: np.asarray(outputs[spec.name]) for key, spec in sig.outputs}
    if form == "columnar":
        if len(by_key) == 1:
            return Reply({"outputs": _nested(next(iter(by_key.values())))})
        return Reply({"outputs": {k: _nested(v) for k, v in by_key.items()}})
    if len(by_key) == 1:
        return Reply({"predictions": _nested(next(iter(by_key.values())))})
    n = min(len(v) for v in by_key.values())
    return Reply({"predictions": [{k: _nested(v[i]) for k, v in by_key.items()} for i in range(n)]})


def _nested(arr: np.ndarray) -> Any:
    if arr.dtype == object or arr.dtype.kind in "SU":
        return np.vectorize(lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v),
                            otypes=[object])(arr).tolist()  # fmt: skip
    return arr.tolist()
