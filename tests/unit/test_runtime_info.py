"""runtime_info() describes the installed TensorFlow (it imports TensorFlow, in a child process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def _info(env: dict[str, str]) -> dict[str, object]:
    code = "import json, tfcpu; print(json.dumps(tfcpu.runtime_info().to_dict()))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ, **env}
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_runtime_info_reports_tensorflow_and_onednn_switch() -> None:
    import importlib.metadata

    on = _info({"TF_ENABLE_ONEDNN_OPTS": "1"})
    off = _info({"TF_ENABLE_ONEDNN_OPTS": "0"})
    assert on["tf_version"] == importlib.metadata.version("tensorflow")
    assert on["onednn_enabled"] is True and "TF_ENABLE_ONEDNN_OPTS=1" in str(on["onednn_reason"])
    assert off["onednn_enabled"] is False
    # stock TensorFlow threads oneDNN on Eigen's pool: KMP_*/OMP_* do nothing
    assert on["threading"] == "eigen"
    assert on["itex_installed"] is False
    assert on["neural_compressor_version"]
