"""The ``savedmodel`` format: what ``tf.saved_model.load``, ``keras.layers.TFSMLayer`` and TF Serving read.

**Writing** (`save_savedmodel`). The Model's graph goes into the SavedModel as it is — optimised,
INT8 ops, BF16 casts — inside one ``tf.function`` whose input signature is the Model's: the same
signature name (``serving_default`` unless the source had another), the same input and output keys
(the source SavedModel's keys, or the tensor names without ``:0``), dtypes and shapes, dynamic
dimensions kept. The function imports the frozen graph with each input Placeholder replaced by the
function's argument, so nothing else changes. A ``serve`` endpoint takes the inputs as one argument
(the tensor, or a dict by key), the way ``keras.layers.TFSMLayer(path, call_endpoint="serve")``
calls it. What tfcpu did travels in
``assets.extra/tfcpu.json`` (the place TF Serving leaves to tools): the passes, the precision, the
nodes kept in FP32, whether the graph needs oneDNN, the signature. ``serving=True`` writes TF
Serving's layout, ``DIR/<version>/``, the next version when some exist.

The directory is written under a temporary name beside the target and renamed into place, so a
reader never sees half a SavedModel and a failure leaves nothing; an existing SavedModel at the
target is replaced the same way, and a non-empty directory that is not one is refused.

**The runtime an INT8 SavedModel needs.** INC's INT8 kernels (``*Quantized*`` ops) exist only when
TensorFlow runs with oneDNN on, and stock TensorFlow turns oneDNN on by itself only on CPUs with
AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX. So the export warns, the JSON says so, ``tfcpu inspect``
shows it, and a process that loads the model elsewhere must set ``TF_ENABLE_ONEDNN_OPTS=1`` before
it imports TensorFlow (docs/deploy.md).

**Reading** (`load_savedmodel`): `tfcpu.graph.load` scans the protobuf before TensorFlow loads it,
freezes the chosen signature, and records the signature's keys (``SIGNATURE_KEYS``) so a later
export keeps them; a ``tfcpu.json`` beside it comes back as the ``exported_by_tfcpu`` metadata.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfcpu.errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.graph.model import Model

logger = logging.getLogger(__name__)

__all__ = [
    "METADATA_FILE",
    "ONEDNN_NOTE",
    "load_savedmodel",
    "read_export_metadata",
    "save_savedmodel",
    "signature_keys",
]

#: Where the export's record lives, relative to the SavedModel directory.
METADATA_FILE = "assets.extra/tfcpu.json"
ONEDNN_NOTE = (
    "this graph holds oneDNN-only kernels (INT8/BF16): the process that loads it must run TensorFlow with "
    "oneDNN on — set TF_ENABLE_ONEDNN_OPTS=1 before importing TensorFlow (it is on by default only on CPUs "
    "with AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX)"
)


def load_savedmodel(
    path: Path, inputs: tuple[str, ...] | None, outputs: tuple[str, ...] | None, signature: str | None
) -> Model:
    """Scan, load and freeze one signature of the SavedModel at ``path`` (see `tfcpu.graph.load`)."""
    from dataclasses import replace

    from tfcpu.graph.load import _from_saved_model

    model = _from_saved_model(path, inputs, outputs, signature)
    record = read_export_metadata(path)
    if record is None:
        return model
    carried: dict[str, Any] = {
        k: record[k] for k in ("optimized_with", "precision", "remainder", "fp32_nodes") if k in record
    }
    return replace(model, metadata={**carried, **model.metadata, "exported_by_tfcpu": record})


def read_export_metadata(path: Path) -> dict[str, Any] | None:
    """The ``tfcpu.json`` a tfcpu export left in the SavedModel at ``path``, or None."""
    file = path / METADATA_FILE
    if not file.is_file() or file.stat().st_size > 16 * 1024 * 1024:
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        logger.warning("ignoring an unreadable %s", file)
        return None
    return data if isinstance(data, dict) else None


# -- signature keys ---------------------------------------------------------------------------
def _key(name: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_]", "_", name.rsplit(":", 1)[0] if name.endswith(":0") else name)
    return text if re.match(r"[A-Za-z]", text) else f"t_{text}"


def signature_keys(model: Model) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """The signature name and the input and output keys a SavedModel of ``model`` gets.

    The keys recorded when the model was loaded from a SavedModel (``SIGNATURE_KEYS``) where they
    cover the tensor; otherwise the tensor name without ``:0``, made an identifier.
    """
    from tfcpu.graph.model import SIGNATURE_KEYS

    recorded = model.metadata.get(SIGNATURE_KEYS) or {}
    name = str(model.metadata.get("signature") or "serving_default")

    def keys(specs: Any, known: Any) -> tuple[str, ...]:
        out: list[str] = []
        for spec in specs:
            key = str(known.get(spec.name) or _key(spec.name))
            base, n = key, 1
            while key in out:
                n += 1
                key = f"{base}_{n}"
            out.append(key)
        return tuple(out)

    return name, keys(model.inputs, recorded.get("inputs") or {}), keys(model.outputs, recorded.get("outputs") or {})


# -- writing ----------------------------------------------------------------------------------
def _functions(model: Model, in_keys: tuple[str, ...], out_keys: tuple[str, ...]) -> tuple[Any, Any]:
    """The signature function (one keyword argument per input key) and the ``serve`` endpoint (one
    argument: the tensor, or a dict by key for several inputs, as ``keras.layers.TFSMLayer`` calls it).

    Both call one traced function that imports the Model's graph as it is, so the weights are stored once.
    """
    from tfcpu._lazy import import_tensorflow

    tf = import_tensorflow()
    feeds = {spec.node for spec in model.inputs}
    graph = tf.compat.v1.GraphDef()
    graph.versions.CopyFrom(model.graph_def.versions)
    graph.library.CopyFrom(model.graph_def.library)
    graph.node.extend(node for node in model.graph_def.node if node.name not in feeds)
    specs = [
        tf.TensorSpec(None if s.shape is None else list(s.shape), tf.as_dtype(s.dtype), name=key)
        for s, key in zip(model.inputs, in_keys, strict=True)
    ]
    fetches = [s.name for s in model.outputs]
    names = [s.name for s in model.inputs]

    @tf.function(input_signature=specs, autograph=False)  # type: ignore[untyped-decorator]
    def signature(*args: Any) -> dict[str, Any]:
        values = tf.compat.v1.import_graph_def(
            graph, input_map=dict(zip(names, args, strict=True)), return_elements=fetches, name=""
        )
        return {key: tf.identity(value, name=key) for key, value in zip(out_keys, values, strict=True)}

    structured = specs[0] if len(specs) == 1 else {key: spec for key, spec in zip(in_keys, specs, strict=True)}

    @tf.function(input_signature=[structured], autograph=False)  # type: ignore[untyped-decorator]
    def serve(inputs: Any) -> dict[str, Any]:
        args = [inputs] if len(specs) == 1 else [inputs[key] for key in in_keys]
        result: dict[str, Any] = signature(*args)
        return result

    return signature, serve


def _record(model: Model, name: str, in_keys: tuple[str, ...], out_keys: tuple[str, ...]) -> dict[str, Any]:
    from tfcpu import __version__

    meta = model.metadata

    def tensors(specs: Any, keys: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{"key": k, **s.to_dict()} for s, k in zip(specs, keys, strict=True)]

    record: dict[str, Any] = {
        "tfcpu": __version__,
        "source": model.source,
        "signature": {
            "name": name,
            "inputs": tensors(model.inputs, in_keys),
            "outputs": tensors(model.outputs, out_keys),
        },
        "precision": meta.get("precision", "fp32"),
        "needs_onednn": model.needs_onednn,
    }
    for key in ("optimized_with", "remainder", "fp32_nodes", "weights"):
        if key in meta:
            record[key] = _plain(meta[key])
    if model.needs_onednn:
        record["runtime"] = ONEDNN_NOTE
    return record


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list | frozenset | set):
        return [_plain(v) for v in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


def _next_version(base: Path) -> Path:
    versions = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()] if base.is_dir() else []
    return base / str(max(versions, default=0) + 1)


def _check_target(target: Path) -> None:
    if target.is_file():
        raise ModelError("a SavedModel is a directory, and this path is a file", where=str(target),
                         hint="write to a new directory, or to a .pb file for a frozen GraphDef")  # fmt: skip
    if target.is_dir() and any(target.iterdir()) and not (target / "saved_model.pb").is_file():
        raise ModelError(
            "the output directory is not empty and holds no SavedModel",
            where=str(target),
            why="tfcpu replaces a SavedModel it finds there, never other files",
            hint="write to a new or empty directory",
        )


def save_savedmodel(model: Model, path: Path, *, serving: bool = False) -> Path:
    """Write ``model`` as a SavedModel directory (see the module docstring).

    Args:
        model: a Model holding a GraphDef.
        path: the SavedModel directory; with ``serving``, TF Serving's model base directory.
        serving: write ``path/<version>/`` (1, or one past the highest version there).

    Returns:
        The SavedModel directory written.

    Raises:
        ModelError: the model has no graph, the target is a file or a foreign directory, or
            TensorFlow cannot save the graph (the cause kept).
    """
    from tfcpu._io import output_error
    from tfcpu._lazy import import_tensorflow

    if model.graph_def is None:
        raise ModelError("this model has no graph to export", where=model.source,
                         hint="load the model file with tfcpu.load(path) first")  # fmt: skip
    target = _next_version(path) if serving else path
    _check_target(target)
    name, in_keys, out_keys = signature_keys(model)
    tf = import_tensorflow()
    if model.needs_onednn:
        logger.warning("%s: %s", target, ONEDNN_NOTE)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise output_error(exc, target) from exc
    try:
        module = tf.Module()
        module.signature, module.serve = _functions(model, in_keys, out_keys)
        try:
            tf.saved_model.save(module, str(staging / "model"), signatures={name: module.signature})
        except (ValueError, TypeError, tf.errors.OpError) as exc:
            raise ModelError("TensorFlow cannot save the graph as a SavedModel", where=str(target),
                             why=f"{type(exc).__name__}: {exc}") from exc  # fmt: skip
        extra = staging / "model" / METADATA_FILE
        extra.parent.mkdir(parents=True, exist_ok=True)
        extra.write_text(json.dumps(_record(model, name, in_keys, out_keys), indent=2) + "\n", encoding="utf-8")
        _replace_dir(staging / "model", target)
    except OSError as exc:
        raise output_error(exc, target) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _replace_dir(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``; an existing ``target`` is moved aside first and removed after."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    try:
        os.replace(new, target)
    except OSError:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        with contextlib.suppress(OSError):
            shutil.rmtree(old)
