"""The demo's steps as frozen data, and what each preparing step makes.

A `Step` either prepares a graph (``kind="prepare"``: freeze, optimise, quantise to INT8,
rewrite to BF16) or measures one (``kind="measure"``: a row). `demo_steps()` lists them in
the white paper's order; `tfcpu.demo._run` walks the list in one loop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tfcpu.demo._openvino import openvino_steps
from tfcpu.errors import QuantizationError, TfcpuError

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.graph.model import Model
    from tfcpu.quantize.result import QuantizationResult
    from tfcpu.topology import Topology

__all__ = ["Step", "bf16_graph", "demo_steps", "expected_warnings", "int8_graph", "optimised_graph", "prepare_models"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    """One step of the demo.

    Attributes:
        key: the step's id (a prepared graph is stored under it).
        label: the progress bar's text.
        kind: ``"prepare"`` (makes a graph) or ``"measure"`` (times one: a row).
        name: the row's name.
        description: the row's description.
        graph: the key of the graph the row times (``"keras"`` = Keras ``model.predict``).
        layout: ``"single"`` (one tuned instance), ``"multi"`` (several pinned instances) or
            ``"defaults"`` (one instance, TensorFlow's own threads).
        onednn: oneDNN in the row's children (None = the policy's decision for the graph).
        itex: the row runs under ITEX's settings.
        precision: the precision the row's graph must hold (read from its ops, or for OpenVINO from
            the compiled model), else it is skipped (OpenVINO: labelled with what ran, and said in the note).
        backend: the runner backend of the row's children.
        when: ``"always"``, ``"keras"`` (a Keras model was given), ``"graph"`` (a graph file was
            given) or ``"itex"`` (ITEX is installed).
    """

    key: str
    label: str
    kind: str = "measure"
    name: str = ""
    description: str = ""
    graph: str = ""
    layout: str = "single"
    onednn: bool | None = True
    itex: bool = False
    precision: str = "fp32"
    when: str = "always"
    backend: str = "tensorflow"


def demo_steps(n_multi: int) -> tuple[Step, ...]:
    """The white paper's Figure 1 as data: prepare, measure, and so on, in order."""
    multi = f"{n_multi} pinned instances"
    return (
        Step("frozen", "building and freezing the model", kind="prepare"),
        Step(
            "baseline",
            "baseline",
            name="Keras model.predict",
            description="Keras predict, TensorFlow defaults",
            graph="keras",
            when="keras",
        ),
        Step(
            "baseline",
            "baseline",
            name="frozen graph, TF defaults",
            description="TensorFlow's default threads",
            graph="frozen",
            layout="defaults",
            onednn=None,
            when="graph",
        ),
        Step(
            "tuned",
            "frozen graph, oneDNN, tuned threads",
            name="frozen graph, oneDNN, tuned threads",
            description="oneDNN on, intra-op = physical cores, inter-op = 1",
            graph="frozen",
        ),
        Step("optimised", "optimising the graph", kind="prepare"),
        Step(
            "opt", "optimised graph", name="optimised graph", description="GraphOptimizer.default()", graph="optimised"
        ),
        Step(
            "opt-multi",
            "optimised graph, multi-instance",
            name="optimised + multi-instance",
            description=multi,
            graph="optimised",
            layout="multi",
        ),
        Step("int8", "quantising to INT8 (synthetic calibration)", kind="prepare"),
        Step(
            "int8-row",
            "INT8",
            name="INT8",
            description="Intel Neural Compressor, after optimisation",
            graph="int8",
            precision="int8",
        ),
        Step(
            "int8-multi",
            "INT8, multi-instance",
            name="INT8 + multi-instance",
            description=multi,
            graph="int8",
            layout="multi",
            precision="int8",
        ),
        Step("bf16", "rewriting to BF16", kind="prepare"),
        Step(
            "bf16-row",
            "BF16",
            name="BF16",
            description="Quantizer().bf16() graph, oneDNN",
            graph="bf16",
            precision="bf16",
        ),
        Step(
            "itex-row",
            "ITEX",
            name="ITEX (optimised graph)",
            description="Intel Extension for TensorFlow, OpenMP pool",
            graph="optimised",
            itex=True,
            when="itex",
        ),
        *openvino_steps(),
    )


def prepare_models(model: str, work: Path) -> tuple[Path | None, Model]:
    """Return (saved .keras path or None, frozen tfcpu Model)."""
    from tfcpu.graph.load import load

    if Path(model).exists():
        return (Path(model) if model.endswith(".keras") else None), load(model)
    from tfcpu.graph.load import resolve_application

    keras_model = resolve_application(model)
    path = work / "model.keras"
    keras_model.save(path)
    return path, load(keras_model)


def optimised_graph(frozen: Model) -> Model:
    from tfcpu.graph.optimizer import GraphOptimizer

    result: Model = GraphOptimizer.default().run(frozen).model
    return result


def int8_graph(model: Model, batches: int, notes: list[str]) -> Model | None:
    """The INT8 graph, or None with the reason in ``notes`` (never the FP32 graph under an INT8 label)."""
    try:
        quantised = _quantise(model, batches)
    except TfcpuError as exc:
        notes.append(f"INT8 quantisation failed: {exc.what}")
        return None
    if quantised.quantized:
        return quantised.model
    notes.append("INT8 rows skipped: " + "; ".join(quantised.warnings or ("nothing was quantised",)))
    return None


def bf16_graph(model: Model, topology: Topology | Iterable[str] | None = None) -> Model:
    """The graph ``Quantizer().bf16()`` makes of ``model`` (the BF16 row times exactly this).

    Raises:
        ConfigError: the CPU has neither AVX512_BF16 nor AMX_BF16 (the row is skipped with this reason).
        QuantizationError: oneDNN is off in this process, or the rewrite changed nothing.
    """
    from tfcpu.quantize import Quantizer
    from tfcpu.session.precision import check_precision, decide_onednn, prepare_process

    check_precision("bf16", topology)
    prepare_process(decide_onednn(needs_onednn=True), where="the demo's BF16 rewrite", error=QuantizationError)
    result = Quantizer().bf16().optimize(False).run(model)
    if not result.quantized:
        raise QuantizationError("the BF16 rewrite changed nothing", where=model.source)
    bf16: Model = result.model
    return bf16


@contextmanager
def expected_warnings() -> Iterator[None]:
    """Keep the quantizer's warnings out of the demo's terminal (they stay in ``result.warnings``): the
    demo knows its calibration is synthetic, says the CPU's INT8 advice in its notes and times INT8 in
    fresh oneDNN children, so those warnings would only be noise there."""
    qlog = logging.getLogger("tfcpu.quantize.quantizer")
    level = qlog.level
    qlog.setLevel(logging.ERROR)
    try:
        yield
    finally:
        qlog.setLevel(level)


def _quantise(model: Model, batches: int) -> QuantizationResult:
    from tfcpu.quantize import Quantizer

    with expected_warnings():
        return Quantizer().int8().calibrate("synthetic", batches=batches).optimize(False).run(model)


def itex_env() -> tuple[tuple[str, str], ...]:
    """ITEX's settings for the ITEX row."""
    from tfcpu.session.config import ItexSettings

    return tuple(sorted(ItexSettings().env().items()))
