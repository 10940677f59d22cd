"""Capture oneDNN verbose logs of one batch of tests.keras_models.tiny_resnet (FP32, INT8, BF16).

Run from the repository root with PYTHONPATH set to it: ``python tests/data/onednn_verbose/capture.py NAME``
where NAME is a prefix for the files (e.g. ``zen5``). Each log is the probe child's stdout: oneDNN's
header, the warm-up batch, ``tfcpu_dispatch,begin``, the measured batch, ``tfcpu_dispatch,end``.
``<prefix>_fp32_onednn_off.log`` is the FP32 graph with ``TF_ENABLE_ONEDNN_OPTS=0``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent


def main(prefix: str) -> None:
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"  # capture script only: the quantiser's trial runs need oneDNN
    import tfcpu
    from tests.keras_models import tiny_resnet

    fp32 = tfcpu.GraphOptimizer.default().run(tfcpu.load(tiny_resnet())).model
    models = {
        "fp32": fp32,
        "int8": tfcpu.Quantizer().int8().calibrate("synthetic", batches=2, batch_size=4).run(fp32).model,
        "bf16": tfcpu.Quantizer().bf16().run(fp32).model,
    }
    env = {**os.environ, "ONEDNN_VERBOSE": "profile_exec", "ONEDNN_VERBOSE_TIMESTAMP": "1"}
    runs = [(name, model, env) for name, model in models.items()]
    runs.append(("fp32_onednn_off", fp32, {**env, "TF_ENABLE_ONEDNN_OPTS": "0"}))  # Eigen kernels, oneDNN sgemm
    for name, model, env in runs:
        with tempfile.TemporaryDirectory() as tmp:
            pb = Path(tmp) / "m.pb"
            model.save(pb)
            names = {"inputs": list(model.input_names), "outputs": list(model.output_names)}
            spec = json.dumps({**names, "batch_size": 4, "shapes": {}})
            argv = [sys.executable, "-P", "-m", "tfcpu.runtime.dispatch", str(pb), spec, str(Path(tmp) / "r.json")]
            out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
        (HERE / f"{prefix}_{name}.log").write_text(out)
        print(name, len(out.splitlines()), "lines")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "zen5")
