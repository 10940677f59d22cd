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
from collections.abc import Mapping
from dataclasses import dataclass
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
    "load_savedmodel_signatures",
    "read_export_metadata",
    "save_savedmodel",
    "save_signatures",
    "signature_fingerprint",
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
    from tfcpu.graph.load import _from_saved_model

    return _with_export_record(path, _from_saved_model(path, inputs, outputs, signature))


def load_savedmodel_signatures(path: Path) -> dict[str, Model]:
    """Scan and load the SavedModel at ``path`` once; every signature frozen, by name."""
    from tfcpu.graph.load import saved_model_signatures

    return {key: _with_export_record(path, model) for key, model in saved_model_signatures(path).items()}


def _with_export_record(path: Path, model: Model) -> Model:
    """``model`` with what a tfcpu export recorded for its signature (passes, precision, ...)."""
    from dataclasses import replace

    record = read_export_metadata(path)
    if record is None:
        return model
    entry = (record.get("signatures") or {}).get(model.metadata.get("signature")) or record
    carried: dict[str, Any] = {
        k: entry[k] for k in ("optimized_with", "precision", "remainder", "fp32_nodes") if k in entry
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


def signature_fingerprint(model: Model) -> bytes:
    """Equal for two Models with the same graph, tensors and signature keys (Keras exports ``serve``
    and ``serving_default`` as two such signatures): they can share one function in a SavedModel."""
    import hashlib

    digest = hashlib.sha256(model.graph_def.SerializeToString(deterministic=True))
    for part in (model.inputs, model.outputs, signature_keys(model)[1:]):
        digest.update(repr(part).encode())
    return digest.digest()


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


def _tensors(specs: Any, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"key": k, **s.to_dict()} for s, k in zip(specs, keys, strict=True)]


def _signature_record(entry: _Entry) -> dict[str, Any]:
    """What one signature's graph is: its tensors, precision, passes, what it needs from the runtime."""
    model, meta = entry.model, entry.model.metadata
    record: dict[str, Any] = {
        "inputs": _tensors(model.inputs, entry.in_keys),
        "outputs": _tensors(model.outputs, entry.out_keys),
        "precision": meta.get("precision", "fp32"),
        "needs_onednn": model.needs_onednn,
    }
    for key in ("optimized_with", "remainder", "fp32_nodes"):
        if key in meta:
            record[key] = _plain(meta[key])
    return record


def _record(entries: list[_Entry]) -> dict[str, Any]:
    """``tfcpu.json``: the first signature's record at the top (as a single-signature export has it)
    and every signature's under ``"signatures"``."""
    from tfcpu import __version__

    first = entries[0]
    signatures = {e.name: _signature_record(e) for e in entries}
    top = signatures[first.name]
    record: dict[str, Any] = {
        "tfcpu": __version__,
        "source": first.model.source,
        "signature": {"name": first.name, "inputs": top["inputs"], "outputs": top["outputs"]},
        **{k: v for k, v in top.items() if k not in ("inputs", "outputs")},
        "needs_onednn": any(e.model.needs_onednn for e in entries),
    }
    if "weights" in first.model.metadata:
        record["weights"] = _plain(first.model.metadata["weights"])
    record["signatures"] = signatures
    if record["needs_onednn"]:
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


@dataclass(frozen=True)
class _Entry:
    """One signature to write: its name, Model and keys."""

    name: str
    model: Model
    in_keys: tuple[str, ...]
    out_keys: tuple[str, ...]


def _entries(models: Model | Mapping[str, Model], where: Path) -> list[_Entry]:
    from tfcpu.graph.model import Model as ModelType

    by_name = {signature_keys(models)[0]: models} if isinstance(models, ModelType) else dict(models)
    if not by_name:
        raise ModelError("no signature to write", where=str(where), hint="give at least one Model")
    entries = []
    for name, model in by_name.items():
        if not isinstance(model, ModelType) or model.graph_def is None:
            raise ModelError(f"signature {name!r} has no graph to export", where=getattr(model, "source", str(where)),
                             hint="load the model file with tfcpu.load(path) first")  # fmt: skip
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-/]*", name) or name.startswith("__"):
            raise ModelError(f"{name!r} is not a signature name TensorFlow accepts", where=str(where),
                             hint="letters, digits, '_', '.', '-', '/', not starting with '__'")  # fmt: skip
        _, in_keys, out_keys = signature_keys(model)
        entries.append(_Entry(name, model, in_keys, out_keys))
    return sorted(entries, key=lambda e: e.name != "serving_default")  # the default first, else as given


def save_savedmodel(model: Model | Mapping[str, Model], path: Path, *, serving: bool = False) -> Path:
    """Write ``model`` (or several Models, by signature name) as a SavedModel directory (see the module
    docstring).

    Args:
        model: a Model holding a GraphDef, written under its own signature name; or a mapping of
            signature names to Models, each written as one signature (``serving_default`` first).
            Signatures whose graphs are equal share one function and its weights.
        path: the SavedModel directory; with ``serving``, TF Serving's model base directory.
        serving: write ``path/<version>/`` (1, or one past the highest version there).

    Returns:
        The SavedModel directory written.

    Raises:
        ModelError: a model has no graph, a bad signature name, the target is a file or a foreign
            directory, or TensorFlow cannot save the graph (the cause kept).
    """
    from tfcpu._io import output_error
    from tfcpu._lazy import import_tensorflow

    target = _next_version(path) if serving else path
    entries = _entries(model, target)
    _check_target(target)
    tf = import_tensorflow()
    if any(e.model.needs_onednn for e in entries):
        logger.warning("%s: %s", target, ONEDNN_NOTE)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise output_error(exc, target) from exc
    try:
        module = tf.Module()
        shared: dict[bytes, Any] = {}
        signatures = {}
        for i, entry in enumerate(entries):
            key = signature_fingerprint(entry.model)
            if key not in shared:
                shared[key] = _functions(entry.model, entry.in_keys, entry.out_keys)
                setattr(module, f"signature_{len(shared) - 1}", shared[key][0])
            if i == 0:
                module.serve = shared[key][1]  # TFSMLayer's endpoint: the first (default) signature
            signatures[entry.name] = shared[key][0]
        try:
            tf.saved_model.save(module, str(staging / "model"), signatures=signatures)
        except (ValueError, TypeError, tf.errors.OpError) as exc:
            raise ModelError("TensorFlow cannot save the graph as a SavedModel", where=str(target),
                             why=f"{type(exc).__name__}: {exc}") from exc  # fmt: skip
        extra = staging / "model" / METADATA_FILE
        extra.parent.mkdir(parents=True, exist_ok=True)
        extra.write_text(json.dumps(_record(entries), indent=2) + "\n", encoding="utf-8")
        _replace_dir(staging / "model", target)
    except OSError as exc:
        raise output_error(exc, target) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def save_signatures(models: Mapping[str, Model], path: str | os.PathLike[str], *, serving: bool = False) -> Path:
    """Write several Models as the signatures of one SavedModel (``tfcpu.save_signatures``).

    ``models`` maps signature names to Models, as `tfcpu.load_signatures` returns them (after
    optimising or quantising each): ``tfcpu.save_signatures({k: opt.run(m).model for k, m in
    tfcpu.load_signatures(src).items()}, out)``. ``serving=True`` writes TF Serving's ``path/<version>/``.
    The directory is written atomically; an input is never overwritten (see `tfcpu.Model.save`).
    """
    from tfcpu._io import check_not_input

    target = Path(path)
    check_not_input(target, [Path(m.source) for m in models.values()], what="path")
    return save_savedmodel(models, target, serving=serving)


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
