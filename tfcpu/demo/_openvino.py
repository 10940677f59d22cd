"""The demo's OpenVINO rows: the optimised graph on OpenVINO in FP32, BF16 (where the CPU has AVX512_BF16 or
AMX_BF16) and INT8 (NNCF, synthetic calibration), timed like the TensorFlow rows (pinned children through
`tfcpu.runtime.multi.run_instances()` with backend ``"openvino"``), labelled from what the children's
compiled models ran (``describe()``). Without ``openvino`` the rows are skipped with the reason."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tfcpu.errors import TfcpuError

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.graph.model import Model
    from tfcpu.topology import Topology

__all__ = ["KEYS", "openvino_models"]

log = logging.getLogger(__name__)

KEYS = ("ov-fp32", "ov-bf16", "ov-int8")


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
