"""``tfcpu.load``: any TensorFlow model as a frozen `Model`.

Sources accepted by `load()`:

* a binary GraphDef ``.pb`` or a text ``.pbtxt`` file;
* a SavedModel directory (``signature=`` chooses the signature, default ``serving_default``);
* a Keras ``.keras`` / ``.h5`` file, or an in-memory Keras model (Keras 3 or ``tf_keras``);
* a ``tf.function`` with an ``input_signature``, or a ConcreteFunction;
* a ``GraphDef`` object (copied);
* an OpenVINO IR ``model.xml`` (with ``model.bin`` beside it): an
  `OpenVinoModel` for the OpenVINO backend (needs ``tfcpu[openvino]``);
* ``"keras:<Application>"`` — e.g. ``"keras:ResNet50"`` — or a bare application name such as
  ``"MobileNetV2"`` when no file of that name exists: ``tf.keras.applications.<Name>(weights=None)``
  (random weights: benchmarks and tests need no download). `resolve_application()` is
  reused by ``tfcpu demo``/``bench``. Batch norms and biases get seeded trained-like values by
  default (``realistic_weights``, `tfcpu.graph._keras_weights`); ``metadata["weights"]`` says so.

Files are checked *before* parsing (missing, empty, a directory that is not a SavedModel,
larger than protobuf's 2 GiB limit) and after (protobuf decode errors, bytes the parser
dropped, a missing ``versions`` field — how a file truncated at a node boundary shows —
duplicate node names, inputs naming missing nodes, cycles, unknown ops). The source file is
only ever read.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tfcpu._lazy import import_tensorflow
from tfcpu.errors import ConfigError, GraphError, ModelError, did_you_mean, runtime_reason
from tfcpu.graph._graphdef import parse_input, topological_order
from tfcpu.graph.encoder import BUILTIN_MODELS, build_encoder
from tfcpu.graph.model import SIGNATURE_KEYS, Model, TensorSpec, tensor_name
from tfcpu.graph.safety_io import check_proto_size

logger = logging.getLogger(__name__)

__all__ = ["APPLICATIONS", "load", "resolve_application", "validate_graph_def"]

APPLICATIONS = (
    "ConvNeXtTiny", "DenseNet121", "EfficientNetB0", "EfficientNetV2B0", "InceptionResNetV2", "InceptionV3",
    "MobileNet", "MobileNetV2", "MobileNetV3Large", "MobileNetV3Small", "NASNetMobile", "ResNet101",
    "ResNet101V2", "ResNet152", "ResNet50", "ResNet50V2", "VGG16", "VGG19", "Xception",
)  # fmt: skip
_KNOWN_MODELS = (*APPLICATIONS, *BUILTIN_MODELS)  # what "keras:<name>" may name
_VARIABLE_OPS = ("VariableV2", "Variable", "VarHandleOp", "AutoReloadVariable", "TemporaryVariable")
_NOT_OUTPUTS = ("Const", "Placeholder", "PlaceholderWithDefault", "NoOp", "Assert", "SaveV2", "RestoreV2")

Names = str | Sequence[str] | None


def load(
    source: Any,
    inputs: Names = None,
    outputs: Names = None,
    *,
    signature: str | None = None,
    allow_unsafe_ops: Sequence[str] | str | None = None,
    realistic_weights: bool = True,
    trust_code: bool = False,
) -> Model:
    """Load ``source`` as a frozen Model. See the module docstring for the accepted sources.

    Args:
        inputs: input tensor names (``"x"`` or ``"x:0"``); default: every Placeholder.
        outputs: output tensor names; default: the sinks (nodes nobody reads).
        signature: SavedModel signature key (default ``serving_default`` or the only one).
        allow_unsafe_ops: op types the safety scan (`tfcpu.graph.safety`) may let through,
            e.g. ``["ReadFile"]``; by default a graph that touches files, the network or Python
            is refused with UnsafeModelError before TensorFlow imports it.
        realistic_weights: for ``"keras:<Application>"`` only: randomise batch norms and biases to
            trained-like values (default); False keeps Keras's initial identity batch norms and zero biases.
        trust_code: let a Keras file run the Python it carries: ``Lambda`` layers (Keras's safe mode
            off) and the legacy ``.h5`` format (which has no safe mode, loaded by Keras 3 and then
            ``tf_keras``). Only for files you trust as you trust code you run: without it ``.keras``
            files load in safe mode and ``.h5`` files are refused.
    """
    from tfcpu.graph import safety

    with safety.allowing(allow_unsafe_ops):
        return _load(source, inputs, outputs, signature, realistic_weights, trust_code)


def load_signatures(
    path: str | os.PathLike[str], *, allow_unsafe_ops: Sequence[str] | str | None = None
) -> dict[str, Model]:
    """Every signature of a SavedModel directory, each frozen as its own Model, by signature name.

    ``serving_default`` comes first when there is one. The safety scan runs once, before TensorFlow
    reads the SavedModel; the model is loaded once. Write them back together with
    `tfcpu.save_signatures` (what ``tfcpu optimize|quantize`` do for a SavedModel with several
    signatures).

    Raises:
        ModelError: ``path`` is not a SavedModel directory, or it has no signatures.
        UnsafeModelError: the scan refused it (see `load`).
    """
    from tfcpu import formats
    from tfcpu.graph import safety

    where = Path(path)
    _check_path(where)
    fmt = formats.for_path(where)
    if fmt is None or not fmt.directory:
        raise ModelError("load_signatures reads a SavedModel directory", where=str(where),
                         hint="use tfcpu.load(path) for a single-graph file")  # fmt: skip
    from tfcpu.formats.savedmodel import load_savedmodel_signatures

    with safety.allowing(allow_unsafe_ops):
        return load_savedmodel_signatures(where)


def _load(
    source: Any,
    inputs: Names,
    outputs: Names,
    signature: str | None,
    realistic: bool = True,
    trust_code: bool = False,
) -> Model:
    in_names = _names(inputs, "inputs")
    out_names = _names(outputs, "outputs")
    tf = None
    if isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        app = _application_name(text)
        if app is not None:
            keras_model = resolve_application(app, realistic_weights=realistic)
            model = _from_keras(keras_model, in_names, out_names, f"keras:{app}")
            weights = "random, norms and biases randomised (seed 0)" if realistic else "random (Keras init)"
            return replace(model, metadata={**model.metadata, "weights": weights})
        path = Path(text)
        _check_path(path)
        if path.suffix.lower() in (".keras", ".h5", ".hdf5"):  # a Keras source, frozen here
            return _from_keras(_load_keras_file(path, trust_code), in_names, out_names, str(path))
        from tfcpu import formats

        fmt = formats.for_path(path) or formats.get("graphdef")  # any other file is read as a GraphDef
        return fmt.load(path, in_names, out_names, signature)
    tf = import_tensorflow()
    if isinstance(source, tf.compat.v1.GraphDef):
        copy = tf.compat.v1.GraphDef()
        copy.CopyFrom(source)
        return _from_graph_def(copy, in_names, out_names, "<GraphDef>", check_versions=False)
    if _is_keras_model(source):
        return _from_keras(source, in_names, out_names, f"<keras {getattr(source, 'name', 'model')}>")
    if hasattr(source, "get_concrete_function") or hasattr(source, "structured_outputs"):
        return _from_function(source, in_names, out_names, f"<function {getattr(source, '__name__', '')}>")
    raise ConfigError(
        f"tfcpu.load cannot load a {type(source).__name__}",
        hint="pass a .pb/.pbtxt/.keras/.h5 path, a SavedModel directory, a Keras model, a tf.function "
        "with an input_signature, a ConcreteFunction, a GraphDef or 'keras:ResNet50'",
    )


# -- names and applications ------------------------------------------------------------------
def _names(value: Names, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        out.extend(p.strip() for p in str(item).split(",") if p.strip())
    if not out:
        raise ConfigError(f"{what} is empty", hint="give tensor names such as 'input:0', or None to infer")
    return tuple(out)


def _application_name(text: str) -> str | None:
    if text.startswith("keras:"):
        name = text.split(":", 1)[1]
        if name not in _KNOWN_MODELS:
            raise ConfigError(
                f"unknown Keras application {name!r}",
                why=did_you_mean(name, _KNOWN_MODELS),
                hint="known: " + ", ".join(_KNOWN_MODELS),
            )
        return name
    if text in _KNOWN_MODELS and not os.path.exists(text):
        return text
    return None


def resolve_application(name: str, *, weights: str | None = None, realistic_weights: bool = True) -> Any:
    """Build ``tf.keras.applications.<name>(weights=weights)`` (random weights by default), or
    tfcpu's built-in ``encoder`` (`tfcpu.graph.encoder.build_encoder()`, its default sizes).

    Args:
        name: the application, with or without the ``keras:`` prefix.
        weights: Keras's ``weights=`` (None: random, no download; ``"imagenet"``: download).
        realistic_weights: with random weights, give batch norms and biases trained-like seeded values
            (`tfcpu.graph._keras_weights.realistic_weights()`, seed 0).
    """
    if name.startswith("keras:"):
        name = name.split(":", 1)[1]
    if name in BUILTIN_MODELS:
        if weights is not None:
            raise ConfigError(f"the built-in {name!r} has no pretrained weights", where=f"weights={weights!r}")
        return build_encoder(seed=0, realistic=realistic_weights)
    if name not in APPLICATIONS:
        raise ConfigError(f"unknown Keras application {name!r}", why=did_you_mean(name, _KNOWN_MODELS))
    tf = import_tensorflow()
    logger.info("building tf.keras.applications.%s(weights=%s)", name, weights)
    model = getattr(tf.keras.applications, name)(weights=weights)
    if weights is None and realistic_weights:
        from tfcpu.graph._keras_weights import realistic_weights as randomise

        randomise(model, seed=0)
    return model


# -- files ------------------------------------------------------------------------------------
def _check_path(path: Path) -> None:
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ModelError(
                "the model path is a symlink loop",
                where=str(path),
                why="following its symbolic links leads back to a link already followed",
                hint="point the link at the model file or directory itself (ls -l shows where each link points)",
            ) from None
    if not path.exists():
        near = did_you_mean(path.name, os.listdir(path.parent)) if path.parent.is_dir() else None
        if os.sep not in str(path) and "." not in path.name:
            near = did_you_mean(path.name, APPLICATIONS) or near  # meant a Keras application?
        raise ModelError(
            "model file not found",
            where=str(path),
            why=near,
            hint="give a .pb/.pbtxt/.keras/.h5 file, a SavedModel directory or keras:ResNet50",
        )
    if path.is_dir():
        if not ((path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file()):
            raise ModelError(
                "directory is not a SavedModel",
                where=str(path),
                why="it has no saved_model.pb or saved_model.pbtxt",
                hint="point at the SavedModel directory itself (the one holding saved_model.pb)",
            )
        return
    check_proto_size(
        path,
        "model file",
        large_why=", so this is not a single GraphDef",
        large_hint="save large models as a SavedModel (weights live in variables files) and load the directory",
    )


def _read_graph_def(path: Path) -> Any:
    tf = import_tensorflow()
    from google.protobuf import message, text_format

    data = path.read_bytes()
    graph_def = tf.compat.v1.GraphDef()
    if path.suffix.lower() in (".pbtxt", ".txt", ".prototxt"):
        try:
            text_format.Parse(data.decode("utf-8"), graph_def)
        except (text_format.ParseError, UnicodeDecodeError) as exc:
            raise ModelError("not a text GraphDef", where=str(path), why=runtime_reason(exc)) from exc
        return graph_def
    try:
        graph_def.ParseFromString(data)
    except message.DecodeError as exc:
        raise ModelError(
            "not a GraphDef: the protobuf does not decode",
            where=str(path),
            why=f"{exc} (truncated or not a .pb?)",
            hint="re-export the frozen graph; a SavedModel directory or .keras file also works",
        ) from exc
    written = len(graph_def.SerializeToString())
    if written != len(data):
        raise ModelError(
            "not a GraphDef: parsing dropped or changed bytes",
            where=str(path),
            why=f"file has {len(data)} bytes, the parsed graph {written} (garbage, or another message type)",
        )
    return graph_def


def _load_keras_file(path: Path, trust_code: bool = False) -> Any:
    """A Keras model file: ``.keras`` in Keras's safe mode; ``.h5`` only with ``trust_code``.

    Keras's safe mode refuses to deserialise Python (``Lambda`` layers); the legacy HDF5 format
    has no such mode in ``tf_keras``, so nothing in it is read unless the user trusts its code.
    """
    tf = import_tensorflow()
    legacy = path.suffix.lower() in (".h5", ".hdf5")
    if legacy and not trust_code:
        raise ModelError(
            "refusing a legacy Keras .h5 file: it cannot be loaded safely",
            where=str(path),
            why="an .h5 model can carry Python (Lambda layers) that runs while it loads, and tf_keras has no safe mode",
            hint="if you trust this file as you trust code you run, pass trust_code=True / --trust-code; "
            "better, re-save it as .keras or a SavedModel where it was made",
        )
    try:
        return tf.keras.models.load_model(str(path), compile=False, safe_mode=not trust_code)
    except Exception as exc:  # Keras raises many types
        if legacy:
            try:
                import tf_keras

                return tf_keras.models.load_model(str(path), compile=False)
            except Exception:  # noqa: BLE001 - fall through to the Keras 3 error
                logger.debug("tf_keras could not load %s either", path)
        text = f"{type(exc).__name__}: {exc}"
        hint = None
        if "safe_mode" in text or "Lambda" in text:
            hint = "the file carries Python code; pass trust_code=True / --trust-code only if you trust it"
        raise ModelError("cannot load the Keras model", where=str(path), why=text, hint=hint) from exc


# -- freezing ---------------------------------------------------------------------------------
def _is_keras_model(obj: Any) -> bool:
    for cls in type(obj).__mro__:
        if cls.__name__ in ("Model", "Functional", "Sequential") and cls.__module__.split(".")[0] in (
            "keras",
            "tf_keras",
        ):
            return True
    return False


def _from_keras(model: Any, inputs: tuple[str, ...] | None, outputs: tuple[str, ...] | None, source: str) -> Model:
    tf = import_tensorflow()
    try:
        specs = [
            tf.TensorSpec(t.shape, t.dtype, name=_clean(getattr(t, "name", f"input_{i}")))
            for i, t in enumerate(model.inputs)
        ]
    except (AttributeError, TypeError, ValueError) as exc:
        raise ModelError(
            "the Keras model has no defined inputs",
            where=source,
            hint="build or call the model once so its input shapes are known",
        ) from exc

    keys = _dict_input_keys(model)  # keras-hub models take a dict by input name (issue 27)

    def call(*args: Any) -> Any:
        if keys is not None:
            return model(dict(zip(keys, args, strict=True)), training=False)
        return model(args[0] if len(args) == 1 else list(args), training=False)

    function = tf.function(call).get_concrete_function(*specs)
    return _from_function(function, inputs, outputs, source)


def _dict_input_keys(model: Any) -> list[str] | None:
    """The dict key of each of ``model.inputs`` (in that order) when the model takes a dict, else None."""
    struct = getattr(model, "_inputs_struct", None)
    if not isinstance(struct, dict):
        try:
            struct = model.input
        except (AttributeError, ValueError):  # a model never called has no input structure
            return None
    if not isinstance(struct, dict):
        return None
    keys: list[str] = []
    for tensor in model.inputs:
        found = [key for key, value in struct.items() if value is tensor]
        if len(found) != 1:
            return None
        keys.append(str(found[0]))
    return keys


def _clean(name: str) -> str:
    return name.split(":")[0].replace("/", "_")


def _from_function(fn: Any, inputs: tuple[str, ...] | None, outputs: tuple[str, ...] | None, source: str) -> Model:
    import_tensorflow()
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    concrete = fn
    if not hasattr(fn, "structured_outputs"):
        try:
            concrete = fn.get_concrete_function()
        except (TypeError, ValueError) as exc:
            raise ModelError(
                "cannot trace the tf.function",
                where=source,
                why=runtime_reason(exc),
                hint="give it an input_signature, or pass fn.get_concrete_function(tf.TensorSpec(...))",
            ) from exc
    try:
        frozen = convert_variables_to_constants_v2(concrete)
    except Exception as exc:  # TF raises many types while freezing
        raise ModelError(
            "cannot freeze the function's variables", where=source, why=f"{type(exc).__name__}: {exc}"
        ) from exc
    graph_def = frozen.graph.as_graph_def()
    default_in = tuple(t.name for t in frozen.inputs if t.dtype.name != "resource")
    default_out = tuple(t.name for t in frozen.outputs)
    return _from_graph_def(graph_def, inputs or default_in, outputs or default_out, source, check_versions=False)


def _from_saved_model(
    path: Path, inputs: tuple[str, ...] | None, outputs: tuple[str, ...] | None, signature: str | None
) -> Model:
    _loaded, signatures = _saved_model_signatures(path)  # _loaded holds the variables the functions read
    key = signature or ("serving_default" if "serving_default" in signatures else None)
    if key is None:
        if len(signatures) > 1:
            raise ModelError(
                "the SavedModel has several signatures; choose one",
                where=str(path),
                hint="signature="
                + " or ".join(repr(k) for k in sorted(signatures))
                + ", or tfcpu.load_signatures(path) for all of them",
            )
        key = next(iter(signatures))
    if key not in signatures:
        raise ModelError(
            f"no signature {key!r}",
            where=str(path),
            why=did_you_mean(key, signatures),
            hint="signatures: " + ", ".join(sorted(signatures)),
        )
    return _freeze_signature(path, key, signatures[key], inputs, outputs)


def saved_model_signatures(path: Path) -> dict[str, Model]:
    """Every signature of the SavedModel at ``path``, each frozen (scanned first, loaded once).

    ``serving_default`` comes first when there is one, the others in name order.
    """
    _loaded, signatures = _saved_model_signatures(path)  # _loaded holds the variables the functions read
    order = sorted(signatures, key=lambda k: (k != "serving_default", k))
    return {key: _freeze_signature(path, key, signatures[key], None, None) for key in order}


def _saved_model_signatures(path: Path) -> tuple[Any, dict[str, Any]]:
    """Scan, then load the SavedModel at ``path``: the loaded object and its signature functions by key
    (the functions read the object's variables: keep it alive while they are used)."""
    from tfcpu.graph.safety_io import prescan_saved_model

    prescan_saved_model(path)  # before TensorFlow reads the SavedModel and runs its restore functions
    tf = import_tensorflow()
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # TF raises many types
        from tfcpu.graph._load_errors import saved_model_failure

        raise saved_model_failure(path, exc) from exc
    signatures = dict(getattr(loaded, "signatures", {}) or {})
    if not signatures:
        raise ModelError(
            "the SavedModel has no signatures",
            where=str(path),
            hint="export it with signatures=..., or load the Keras model instead",
        )
    return loaded, signatures


def _freeze_signature(
    path: Path, key: str, fn: Any, inputs: tuple[str, ...] | None, outputs: tuple[str, ...] | None
) -> Model:
    model = _from_function(fn, inputs, outputs, f"{path}[{key}]")
    metadata = {**model.metadata, "signature": key}
    keys = _signature_keys(fn, model, inputs, outputs)
    if keys:
        metadata[SIGNATURE_KEYS] = keys
    return Model(model.graph_def, model.inputs, model.outputs, str(path), metadata)


def _signature_keys(fn: Any, model: Model, inputs: Any, outputs: Any) -> dict[str, dict[str, str]]:
    """The signature's input and output keys by frozen tensor name (flattened order: keys sorted)."""
    keys: dict[str, dict[str, str]] = {}
    args, kwargs = fn.structured_input_signature
    if inputs is None and not args and len(kwargs) == len(model.inputs):
        keys["inputs"] = {spec.name: key for spec, key in zip(model.inputs, sorted(kwargs), strict=True)}
    structured = fn.structured_outputs
    if outputs is None and isinstance(structured, dict) and len(structured) == len(model.outputs):
        keys["outputs"] = {spec.name: key for spec, key in zip(model.outputs, sorted(structured), strict=True)}
    return keys


# -- validation and signature -----------------------------------------------------------------
def validate_graph_def(graph_def: Any, where: str = "<graph>") -> None:
    """Raise ModelError/GraphError for duplicate names, dangling inputs, cycles or variables."""
    seen: set[str] = set()
    for node in graph_def.node:
        if not node.name or not node.op:
            raise ModelError("a node has no name or op", where=where, why="the file is probably corrupt")
        if node.name in seen:
            raise GraphError("duplicate node name", where=f"{where}: {node.name}")
        seen.add(node.name)
    for node in graph_def.node:
        for text in node.input:
            src = parse_input(text).node
            if src not in seen:
                raise GraphError(
                    f"node {node.name!r} reads a node that does not exist: {text!r}",
                    where=where,
                    why=did_you_mean(src, seen) or "the graph is incomplete (truncated?)",
                )
    if topological_order(graph_def) is None:
        from tfcpu.graph._graphdef import cycle_members

        members = cycle_members(graph_def)
        raise GraphError(
            "the graph has a cycle",
            where=where,
            why="nodes on or behind it: " + ", ".join(members[:5]),
            hint="an inference graph must be acyclic (TF1 while loops go through NextIteration)",
        )
    from tfcpu.graph._graphdef import check_const_sizes

    check_const_sizes(graph_def, where)  # a hostile Const expands to terabytes: name it, before allocation
    variables = [n.name for n in graph_def.node if n.op in _VARIABLE_OPS]
    if variables:
        raise ModelError(
            f"the graph holds {len(variables)} variables that are not frozen",
            where=f"{where}: {variables[0]}",
            why="a GraphDef file has no variable values to freeze",
            hint="load the SavedModel directory, the Keras model or the tf.function instead (tfcpu freezes "
            "those), or freeze with convert_variables_to_constants_v2 before saving",
        )
    from tensorflow.python.framework import op_def_registry

    unknown = sorted(
        {n.op for n in graph_def.node if op_def_registry.get(n.op) is None}
        - {f.signature.name for f in graph_def.library.function}
    )
    if unknown:
        raise ModelError(
            "the graph uses ops this TensorFlow does not know",
            where=where,
            why=", ".join(unknown[:5]),
            hint="load the op library (tf.load_op_library) first, or the file is corrupt",
        )


def _from_graph_def(
    graph_def: Any,
    inputs: tuple[str, ...] | None,
    outputs: tuple[str, ...] | None,
    source: str,
    *,
    check_versions: bool,
) -> Model:
    if len(graph_def.node) == 0:
        raise ModelError("the graph has no nodes", where=source)
    if check_versions and graph_def.versions.producer == 0:
        # TensorFlow's own graph_transforms writes graphs without it, so this alone refuses nothing; a
        # file cut at a node boundary (versions come after the nodes) fails the completeness checks below.
        logger.warning(
            "%s: the GraphDef has no versions field (TensorFlow's graph_transforms writes none; a file cut short "
            "loses it too, and then fails the completeness checks)",
            source,
        )
    from tfcpu.graph import safety

    safety.check(graph_def, source)  # before anything imports or runs the graph
    validate_graph_def(graph_def, source)
    nodes = {n.name: n for n in graph_def.node}
    consumers: set[str] = {parse_input(t).node for n in graph_def.node for t in n.input}
    if inputs is None:
        # PlaceholderWithDefault is optional by design: only plain Placeholders must be fed.
        inputs = tuple(n.name for n in graph_def.node if n.op == "Placeholder")
    if outputs is None:
        outputs = tuple(n.name for n in graph_def.node if n.name not in consumers and n.op not in _NOT_OUTPUTS)
        if not outputs:
            raise ModelError(
                "cannot infer the outputs: the graph has no sink node", where=source, hint="pass outputs=[...]"
            )
    from tfcpu.graph.passes.inline_functions import plain_ops

    # Keras runs Conv2D(groups>1) as an XLA function: inline calls, ungroup convolutions (issue 27)
    graph_def = plain_ops(graph_def, inputs, outputs)
    in_specs = _specs(graph_def, inputs, nodes, source, "input")
    out_specs = _specs(graph_def, outputs, nodes, source, "output")
    return Model(graph_def=graph_def, inputs=in_specs, outputs=out_specs, source=source)


def _specs(
    graph_def: Any, names: tuple[str, ...], nodes: dict[str, Any], source: str, what: str
) -> tuple[TensorSpec, ...]:
    tf = import_tensorflow()
    for name in names:
        node = parse_input(tensor_name(name)).node
        if node not in nodes:
            from tfcpu.graph._load_errors import missing_node

            raise missing_node(node, what, graph_def, source)
    graph = tf.Graph()
    try:
        with graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
    except (ValueError, TypeError, tf.errors.OpError) as exc:  # import validates ops, types and attributes
        text = str(exc).strip()
        raise ModelError(
            "TensorFlow rejects the graph", where=source, why=runtime_reason(exc) if text else type(exc).__name__
        ) from exc
    specs = []
    for name in names:
        full = tensor_name(name)
        try:
            tensor = graph.get_tensor_by_name(full)
        except (KeyError, ValueError) as exc:
            raise ModelError(f"the graph has no tensor {full!r}", where=source, why=runtime_reason(exc)) from exc
        shape = None if tensor.shape.rank is None else tuple(tensor.shape.as_list())
        specs.append(TensorSpec(full, tensor.dtype.name, shape, tensor.op.type))
    return tuple(specs)
