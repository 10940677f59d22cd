"""The quantisation targets: one registry entry per runtime a quantised model is made for.

`tfcpu.Quantizer.backend(name)` and ``tfcpu quantize --backend NAME`` choose an entry of `TARGETS`.
An entry says which pipeline quantises for it at each precision (the stage functions of
``tfcpu.quantize._pipeline``), which format pipeline key that is (matched against
`tfcpu.formats.Format.quantizers`: a model whose format does not list it is refused before any
work), and what artefact the result holds (which decides the files it can be written to). Nothing
outside the entries tests a target's name.

    tensorflow   INT8 through Intel Neural Compressor, BF16 through the graph rewrite; a GraphDef
    openvino     INT8 through NNCF, BF16 as OpenVINO's inference precision; an OpenVINO IR
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tfcpu.errors import ConfigError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.formats import Format
    from tfcpu.graph.model import Model
    from tfcpu.quantize.quantizer import Quantizer
    from tfcpu.quantize.result import QuantizationResult

__all__ = ["DEFAULT_TARGET", "TARGETS", "QuantizeTarget", "default_target", "get_target"]

Pipeline = Callable[["Quantizer", "Model", int], "QuantizationResult"]


@dataclass(frozen=True)
class QuantizeTarget:
    """One runtime a model is quantised for.

    Attributes:
        name: the registry key; also the runner backend the result runs on.
        description: one line for help texts.
        pipelines: precision -> (the format's quantiser key, the ``_pipeline`` function's name).
        artefact: what the result holds (a `tfcpu.formats.Format.artefact`): the formats it can be saved as.
        runs_onednn_graph: the pipeline runs the quantised TensorFlow graph in this process (its
            agreement check), which needs oneDNN on before TensorFlow is imported.
    """

    name: str
    description: str
    pipelines: Mapping[str, tuple[str, str]]
    artefact: str
    runs_onednn_graph: bool = False

    def pipeline(self, precision: str) -> Pipeline:
        """The stage function that quantises for this target at ``precision``.

        Raises:
            ConfigError: no pipeline for that precision here.
        """
        entry = self.pipelines.get(precision)
        if entry is None:
            raise ConfigError(
                f"no {precision} quantisation for the {self.name!r} target",
                where="Quantizer.run",
                hint="precisions here: " + ", ".join(self.pipelines),
            )
        from tfcpu.quantize import _pipeline

        function: Pipeline = getattr(_pipeline, entry[1])
        return function

    def accepts(self, fmt: Format, precision: str) -> bool:
        """Whether a model of format ``fmt`` can be quantised for this target at ``precision``."""
        entry = self.pipelines.get(precision)
        return entry is not None and entry[0] in fmt.quantizers

    def refusal(self, fmt: Format, precision: str, *, where: str) -> ConfigError | None:
        """The error for quantising a model of format ``fmt`` here at ``precision`` (None when it can),
        naming the target that can and the files it writes: one message for the API and the CLI."""
        if self.accepts(fmt, precision):
            return None
        others = [t for t in TARGETS.values() if t.accepts(fmt, precision)]
        use = ""
        if others:
            files = " or ".join(f"OUT{f.suffixes[0]}" for f in others[0].output_formats() if f.suffixes) or "DIR"
            use = (
                f"quantise it with .backend({others[0].name!r}) / --backend {others[0].name} (written as {files}), or "
            )
        return ConfigError(
            f"a {fmt.name} model cannot be quantised to {precision} for {self.name} (--backend {self.name})",
            where=where,
            why=f"the {self.name} {precision} pipeline does not read {fmt.description}",
            hint=use + "quantise the TensorFlow model it was converted from",
        )

    def output_formats(self) -> tuple[Format, ...]:
        """The formats the result can be written as."""
        from tfcpu.formats import FORMATS

        return tuple(f for f in FORMATS.values() if f.artefact == self.artefact)


TARGETS: dict[str, QuantizeTarget] = {
    target.name: target
    for target in (
        QuantizeTarget(
            name="tensorflow",
            description="INC graph (.pb/.pbtxt, or a directory for a SavedModel)",
            pipelines={"int8": ("inc", "run_int8"), "bf16": ("bf16", "run_bf16")},
            artefact="graphdef",
            runs_onednn_graph=True,
        ),
        QuantizeTarget(
            name="openvino",
            description="NNCF, written as OpenVINO IR (.xml + .bin)",
            pipelines={"int8": ("nncf", "run_openvino"), "bf16": ("nncf", "run_openvino")},
            artefact="openvino-ir",
        ),
    )
}
DEFAULT_TARGET = "tensorflow"


def get_target(name: str, *, where: str = "Quantizer.backend") -> QuantizeTarget:
    """The target called ``name`` (ConfigError with a did-you-mean otherwise)."""
    target = TARGETS.get(name)
    if target is None:
        hint = did_you_mean(name, TARGETS) or "use " + " or ".join(repr(t) for t in TARGETS)
        raise ConfigError(f"unknown backend {name!r}", where=where, hint=hint)
    return target


def default_target(*formats: Format | None) -> str:
    """The target for models of these formats (the output's first, then the input's): the first
    format whose own artefact a non-default target makes (an ``.xml`` output or input: OpenVINO),
    else the default."""
    for fmt in formats:
        if fmt is None:
            continue
        for target in TARGETS.values():
            if target.name != DEFAULT_TARGET and target.artefact == fmt.artefact:
                return target.name
    return DEFAULT_TARGET
