"""The demo's OpenVINO rows: the optimised graph on OpenVINO in FP32, BF16 (where the CPU has AVX512_BF16 or
AMX_BF16) and INT8 (NNCF, synthetic calibration), timed like the TensorFlow rows (pinned children through
`tfcpu.runtime.multi.run_instances()` with backend ``"openvino"``), labelled from what the children's
compiled models ran (``describe()``). Without ``openvino`` the rows are skipped with the reason."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tfcpu.errors import TfcpuError

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.demo._steps import Step
    from tfcpu.graph.model import Model
    from tfcpu.topology import Topology

__all__ = ["KEYS", "PREPARE", "openvino_models", "openvino_steps"]

log = logging.getLogger(__name__)

KEYS = ("ov-fp32", "ov-bf16", "ov-int8")
BACKEND = "openvino"  # the runner backend of these rows
PREPARE = "openvino"  # the key of the step that makes the OpenVINO models


def openvino_steps() -> tuple[Step, ...]:
    """The demo's OpenVINO steps: one preparing the models, three rows timing them."""
    from tfcpu.demo._steps import Step

    rows = (
        ("ov-fp32", "OpenVINO FP32", "optimised graph on OpenVINO, pinned", "fp32"),
        ("ov-bf16", "OpenVINO BF16", "OpenVINO BF16 inference precision, pinned", "bf16"),
        ("ov-int8", "OpenVINO INT8", "NNCF INT8 on OpenVINO, pinned", "int8"),
    )
    return (
        Step(PREPARE, "preparing the OpenVINO models (NNCF INT8, synthetic calibration)", kind="prepare"),
        *(
            Step(f"{key}-row", label, name=label, description=text, graph=key, backend=BACKEND, precision=precision)
            for key, label, text, precision in rows
        ),
    )


def openvino_models(model: Model, topology: Topology, batches: int) -> dict[str, object]:
    """``{"ov-fp32": Model, "ov-bf16": Model, "ov-int8": Model}``; a model that cannot be made is missing and
    its reason is under ``"<key>:why"`` (what the row says when it is skipped)."""
    from tfcpu.demo._steps import expected_warnings
    from tfcpu.errors import MissingDependencyError
    from tfcpu.quantize import Quantizer
    from tfcpu.runtime.backends._openvino_util import import_openvino

    out: dict[str, object] = {}
    try:
        import_openvino()
    except MissingDependencyError as exc:
        for key in KEYS:
            out[f"{key}:why"] = str(exc).replace("\n", " ")
        return out
    out["ov-fp32"] = model  # converted in each child by the OpenVINO backend
    for key in ("ov-bf16", "ov-int8"):
        try:
            plan = Quantizer(topology=topology)
            # bf16() refuses a CPU without AVX512_BF16/AMX_BF16 (ConfigError): the row says so
            plan = plan.bf16() if key == "ov-bf16" else plan.int8().calibrate("synthetic", batches=batches)
            with expected_warnings():
                result = plan.optimize(False).backend("openvino").run(model)
        except TfcpuError as exc:
            out[f"{key}:why"] = exc.what if not exc.why else f"{exc.what}: {exc.why}"
            continue
        if result.quantized:
            out[key] = result.model
        else:
            out[f"{key}:why"] = "; ".join(result.warnings) or "NNCF quantised nothing"
    return out
