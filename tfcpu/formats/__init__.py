"""The format seam: one registry entry per artefact format a `Model` can be read from or written to.

A `tfcpu.Model` is a signature (input and output names, dtypes, shapes, dynamic dimensions) plus
one artefact. Each entry of `FORMATS` says, for one format, how a path in that format is
recognised and loaded, how a Model is saved in it, what artefact it holds (the in-memory form a
Model of that format carries), which runner backends run it and which quantisation pipelines apply
to it, and its layout on disk. Code outside the formats' and backends' own modules asks this
registry instead of testing a format's name::

    graphdef     model.pb | model.pbtxt                 a frozen TF1 GraphDef
    savedmodel   DIR/saved_model.pb, variables/, assets.extra/tfcpu.json
                                                        what TF Serving, tf.saved_model.load and
                                                        keras.layers.TFSMLayer read
    openvino-ir  model.xml + model.bin                  OpenVINO's IR (tfcpu[openvino])

A new format is one module in this package and one `Format` entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfcpu.errors import ConfigError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.graph.model import Model

__all__ = ["FORMATS", "Format", "for_model", "for_output", "for_path", "get"]


@dataclass(frozen=True)
class Format:
    """One artefact format.

    Attributes:
        name: the registry key, also ``--format NAME`` on the command line.
        description: one line for help texts.
        layout: the files it is made of, for messages and docs.
        artefact: the in-memory form a Model of this format carries (``"graphdef"``: a TF GraphDef;
            ``"openvino-ir"``: an ``openvino.Model``). Formats with the same artefact convert freely.
        backends: runner backends that run it, the preferred one first.
        quantizers: quantisation pipelines that apply (``"inc"``, ``"bf16"``, ``"nncf"``).
        directory: saved as a directory rather than a file.
        suffixes: file suffixes that name this format (empty for directories).
        matches: recognises a path on disk (existing or about to be written) as this format.
        loader: ``load(path, inputs, outputs, signature) -> Model``.
        saver: ``save(model, path, **options) -> Path``.
    """

    name: str
    description: str
    layout: str
    artefact: str
    backends: tuple[str, ...]
    quantizers: tuple[str, ...]
    directory: bool
    suffixes: tuple[str, ...]
    matches: Callable[[Path], bool]
    loader: Callable[..., Model]
    saver: Callable[..., Path]

    @property
    def backend(self) -> str:
        """The backend a Model of this format runs on unless told otherwise."""
        return self.backends[0]

    def load(self, path: Path, inputs: Any = None, outputs: Any = None, signature: str | None = None) -> Model:
        return self.loader(path, inputs, outputs, signature)

    def save(self, model: Model, path: Path, **options: Any) -> Path:
        return self.saver(model, path, **options)


# -- the entries (each loader/saver imports its module lazily: `import tfcpu` stays light) ----------
def _graphdef_load(path: Path, inputs: Any, outputs: Any, signature: str | None) -> Model:
    from tfcpu.formats.graphdef import load_graphdef

    return load_graphdef(path, inputs, outputs)


def _graphdef_save(model: Model, path: Path, **options: Any) -> Path:
    from tfcpu.formats.graphdef import save_graphdef

    return save_graphdef(model, path)


def _savedmodel_load(path: Path, inputs: Any, outputs: Any, signature: str | None) -> Model:
    from tfcpu.formats.savedmodel import load_savedmodel

    return load_savedmodel(path, inputs, outputs, signature)


def _savedmodel_save(model: Model, path: Path, **options: Any) -> Path:
    from tfcpu.formats.savedmodel import save_savedmodel

    return save_savedmodel(model, path, **options)


def _ir_load(path: Path, inputs: Any, outputs: Any, signature: str | None) -> Model:
    from tfcpu.graph.openvino_ir import load_ir

    return load_ir(path, inputs, outputs)


def _ir_save(model: Model, path: Path, **options: Any) -> Path:
    from tfcpu.graph.openvino_ir import save_ir

    return save_ir(model, path)  # type: ignore[arg-type]


def _is_saved_model_dir(path: Path) -> bool:
    if path.is_dir():
        return (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file()
    return not path.exists() and path.suffix == ""  # an output directory about to be written


FORMATS: dict[str, Format] = {
    fmt.name: fmt
    for fmt in (
        Format(
            name="graphdef",
            description="a frozen TensorFlow GraphDef (binary .pb or text .pbtxt)",
            layout="model.pb | model.pbtxt",
            artefact="graphdef",
            backends=("tensorflow", "openvino", "itex"),
            quantizers=("inc", "bf16", "nncf"),
            directory=False,
            suffixes=(".pb", ".pbtxt"),
            matches=lambda p: p.suffix.lower() in (".pb", ".pbtxt", ".txt", ".prototxt") and not p.is_dir(),
            loader=_graphdef_load,
            saver=_graphdef_save,
        ),
        Format(
            name="savedmodel",
            description="a TensorFlow SavedModel with signatures (tf.saved_model.load, TF Serving, TFSMLayer)",
            layout="DIR/saved_model.pb + variables/ + assets.extra/tfcpu.json",
            artefact="graphdef",
            backends=("tensorflow", "openvino", "itex"),
            quantizers=("inc", "bf16", "nncf"),
            directory=True,
            suffixes=(),
            matches=_is_saved_model_dir,
            loader=_savedmodel_load,
            saver=_savedmodel_save,
        ),
        Format(
            name="openvino-ir",
            description="an OpenVINO IR (model.xml + model.bin), run by the OpenVINO backend",
            layout="model.xml + model.bin",
            artefact="openvino-ir",
            backends=("openvino",),
            quantizers=("nncf",),
            directory=False,
            suffixes=(".xml",),
            matches=lambda p: p.suffix.lower() == ".xml",
            loader=_ir_load,
            saver=_ir_save,
        ),
    )
}
"""Every format tfcpu reads and writes, by name."""


def get(name: str) -> Format:
    """The format called ``name`` (ConfigError with a did-you-mean otherwise)."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model format {name!r}", why=did_you_mean(name, FORMATS), hint="formats: " + ", ".join(FORMATS)
        ) from None


def for_path(path: Path) -> Format | None:
    """The format of the existing file or directory ``path``, or None when no entry recognises it."""
    for fmt in FORMATS.values():
        if fmt.matches(path):
            return fmt
    return None


def for_model(model: Model) -> Format:
    """The format a Model carries (its ``format`` metadata, else the GraphDef format)."""
    return FORMATS[model.format]


def for_output(model: Model, path: Path, name: str | None = None) -> Format:
    """The format ``model`` is written in at ``path``: ``name`` if given, else what the path says.

    A path with a registered suffix names that format; a path without a suffix (or an existing
    directory) is a directory output, written as a SavedModel.

    Raises:
        ConfigError: an unknown name, a path no format recognises, or a format that cannot hold this
            model's artefact (an OpenVINO model cannot become a SavedModel).
    """
    fmt = get(name) if name else _format_of_output(path)
    own = for_model(model)
    if fmt.artefact != own.artefact:
        raise ConfigError(
            f"a {own.name} model cannot be written as {fmt.name}",
            where=str(path),
            why=f"{fmt.name} holds a {fmt.artefact} artefact and this model holds a {own.artefact} one",
            hint="write it as " + " or ".join(f.layout for f in FORMATS.values() if f.artefact == own.artefact),
        )
    if not fmt.directory and path.suffix.lower() not in fmt.suffixes:
        raise ConfigError(f"{fmt.name} is written to a {' or '.join(fmt.suffixes)} file", where=str(path))
    return fmt


def _format_of_output(path: Path) -> Format:
    suffix = path.suffix.lower()
    for fmt in FORMATS.values():
        if suffix and suffix in fmt.suffixes:
            return fmt
    if path.is_dir() or not suffix:
        return FORMATS["savedmodel"]
    known = [s for f in FORMATS.values() for s in f.suffixes]
    raise ConfigError(
        "cannot tell the format from the output's name",
        where=str(path),
        why=did_you_mean(suffix, known),
        hint="use " + ", ".join(known) + ", or a directory (a SavedModel)",
    )
