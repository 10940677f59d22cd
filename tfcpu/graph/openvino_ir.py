"""OpenVINO IR (``model.xml`` + ``model.bin``) as a tfcpu Model: load, save atomically, route to OpenVINO.

**How an IR is represented.** `OpenVinoModel` is a `Model` subclass
whose ``graph_def`` is an *empty* GraphDef (an IR holds no TensorFlow graph) and whose ``ov_model``
field holds the ``openvino.Model`` (read from the file, or produced in memory by NNCF). Its
signature (``inputs``/``outputs``) uses the TensorFlow tensor names of the model it was converted
from, so feeds and results look the same as with the TF graph; tfcpu stores those names in the IR's
``rt_info`` (``tfcpu/inputs``, ``tfcpu/outputs``) when it saves one, because OpenVINO may renumber an
output's preferred name on the way through a file. ``preferred_backend`` is ``"openvino"``: Runner
routes it to `OpenVinoBackend`, and the TensorFlow backend
refuses it (there is no graph to import).

**Saving** writes both files under temporary names in the target directory and renames them
(``.bin`` first, then ``.xml``), so a reader never sees a half-written pair and a failure leaves no
file behind. **Loading** checks that the ``.bin`` exists and turns OpenVINO's parse errors (a
truncated ``.xml``, a ``.bin`` shorter than the weights it should hold) into one ModelError line.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfcpu.errors import ModelError, did_you_mean
from tfcpu.graph.model import Model, TensorSpec, tensor_name

__all__ = ["IR_FORMAT", "OpenVinoModel", "from_ov_model", "load_ir", "save_ir"]

IR_FORMAT = "openvino-ir"
_KEY = "tfcpu"


@dataclass(frozen=True)
class OpenVinoModel(Model):
    """A Model held as an OpenVINO model (``ov_model``); ``graph_def`` is empty.

    Attributes:
        ov_model: an ``openvino.Model`` (or, inside NNCF's accuracy control, an ``openvino.CompiledModel``).
    """

    ov_model: Any = field(default=None, compare=False, hash=False, repr=False)

    @property
    def node_count(self) -> int:
        return len(self.ov_model.get_ops()) if hasattr(self.ov_model, "get_ops") else 0

    @property
    def needs_onednn(self) -> bool:
        return False

    def op_counts(self) -> dict[str, int]:
        """OpenVINO op types of the model (``FakeQuantize`` counts what NNCF quantised)."""
        counts: dict[str, int] = {}
        for op in self.ov_model.get_ops() if hasattr(self.ov_model, "get_ops") else ():
            name = op.get_type_name()
            counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def summary(self) -> Any:
        """The GraphSummary with OpenVINO's node count and op types (there are no TF nodes)."""
        import dataclasses

        return dataclasses.replace(super().summary(), nodes=self.node_count)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "format": IR_FORMAT}


def _empty_graph_def() -> Any:
    from tfcpu._lazy import import_tensorflow

    return import_tensorflow().compat.v1.GraphDef()


def _spec(port: Any, name: str, op: str) -> TensorSpec:
    shape = port.get_partial_shape()
    dims = None if shape.rank.is_dynamic else tuple(None if d.is_dynamic else d.get_length() for d in shape)
    return TensorSpec(tensor_name(name), port.get_element_type().to_dtype().name, dims, op)


def _specs(ports: Any, names: list[str] | None, op: str, where: str = "<openvino>") -> tuple[TensorSpec, ...]:
    """One spec per port (``names`` None), or one per name in ``names`` order, each matched to its port."""
    if not names:
        return tuple(_spec(port, port.get_any_name(), op) for port in ports)
    by_name = {tensor_name(n): port for port in ports for n in port.get_names()}
    specs = []
    for name in names:
        port = by_name.get(tensor_name(name))
        if port is None:
            raise ModelError(
                f"the OpenVINO model has no tensor {tensor_name(name)!r}",
                where=where,
                why=did_you_mean(tensor_name(name), by_name) or f"its tensors: {sorted(by_name)}",
            )
        specs.append(_spec(port, name, op))
    return tuple(specs)


def from_ov_model(
    ov_model: Any,
    *,
    inputs: tuple[TensorSpec, ...] | None = None,
    outputs: tuple[TensorSpec, ...] | None = None,
    source: str = "<openvino>",
    metadata: dict[str, Any] | None = None,
) -> OpenVinoModel:
    """Wrap an in-memory ``openvino.Model``; ``inputs``/``outputs`` default to its own ports' names."""
    return OpenVinoModel(
        graph_def=_empty_graph_def(),
        inputs=inputs if inputs is not None else _specs(ov_model.inputs, None, "Parameter"),
        outputs=outputs if outputs is not None else _specs(ov_model.outputs, None, "Result"),
        source=source,
        metadata={"format": IR_FORMAT, **(metadata or {})},
        ov_model=ov_model,
    )


def _rt(ov_model: Any, key: str) -> str | None:
    path = [_KEY, key]
    return str(ov_model.get_rt_info(path).astype(str)) if ov_model.has_rt_info(path) else None


def load_ir(path: Path, inputs: tuple[str, ...] | None = None, outputs: tuple[str, ...] | None = None) -> OpenVinoModel:
    """Read ``path`` (``.xml``) and its ``.bin`` as an `OpenVinoModel`.

    Raises:
        ModelError: the ``.bin`` is missing, or OpenVINO cannot read the pair (truncated, not an IR).
        MissingDependencyError: openvino is not installed (``tfcpu[openvino]``).
    """
    from tfcpu.runtime.backends._openvino_util import import_openvino

    ov = import_openvino()
    weights = path.with_suffix(".bin")
    if not weights.is_file():
        raise ModelError(
            "the OpenVINO IR has no .bin beside its .xml",
            where=str(path),
            why=f"{weights.name} is missing",
            hint="copy the .xml and the .bin together",
        )
    try:
        ov_model = ov.Core().read_model(str(path), str(weights))
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        why = lines[-1] if lines else type(exc).__name__
        raise ModelError(
            "cannot read the OpenVINO IR", where=str(path), why=f"{why} (truncated or not an IR?)", hint="re-export it"
        ) from exc
    where = str(path)
    in_names = list(inputs) if inputs else [n for n in (_rt(ov_model, "inputs") or "").split(",") if n]
    out_names = list(outputs) if outputs else [n for n in (_rt(ov_model, "outputs") or "").split(",") if n]
    metadata: dict[str, Any] = {"format": IR_FORMAT}
    precision = _rt(ov_model, "precision")
    if precision:
        metadata["openvino_precision"] = precision
    return OpenVinoModel(
        graph_def=_empty_graph_def(),
        inputs=_specs(ov_model.inputs, in_names, "Parameter", where),
        outputs=_specs(ov_model.outputs, out_names, "Result", where),
        source=str(path),
        metadata=metadata,
        ov_model=ov_model,
    )


def save_ir(model: OpenVinoModel, target: Path) -> Path:
    """Write ``model`` as ``target`` (.xml) + .bin through temporary names in the same directory.

    The tfcpu signature names and the precision the IR was made for (metadata ``openvino_precision``)
    go into the IR's ``rt_info``. Weights stay FP32 (``compress_to_fp16=False``).
    """
    from tfcpu.runtime.backends._openvino_util import import_openvino

    ov = import_openvino()
    if not hasattr(model.ov_model, "get_ops"):
        raise ModelError("only an openvino.Model can be saved (not a compiled model)", where=str(target))
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    clone = model.ov_model.clone()
    # the signature in tfcpu's order (OpenVINO orders its outputs its own way and may prefer other names)
    clone.set_rt_info(",".join(model.input_names), [_KEY, "inputs"])
    clone.set_rt_info(",".join(model.output_names), [_KEY, "outputs"])
    if model.metadata.get("openvino_precision"):
        clone.set_rt_info(str(model.metadata["openvino_precision"]), [_KEY, "precision"])
    stem = f".{target.stem}.tmp-{uuid.uuid4().hex[:8]}"
    tmp_xml, tmp_bin = target.parent / f"{stem}.xml", target.parent / f"{stem}.bin"
    try:
        ov.save_model(clone, str(tmp_xml), compress_to_fp16=False)
        os.replace(tmp_bin, target.with_suffix(".bin"))
        os.replace(tmp_xml, target)
    except (OSError, RuntimeError) as exc:
        raise ModelError("cannot write the OpenVINO IR", where=str(target), why=str(exc).splitlines()[-1]) from exc
    finally:
        for leftover in (tmp_xml, tmp_bin):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return target
