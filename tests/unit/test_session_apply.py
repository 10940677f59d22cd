"""SessionConfig.apply() in fresh interpreters: before TensorFlow, after import, after start."""

from __future__ import annotations

import json
import os
import subprocess
import sys

BEFORE_IMPORT = r"""
import json, os
from tfcpu import SessionConfig
config = SessionConfig.for_topology().with_intra_op_threads(1).with_inter_op_threads(1).with_onednn(True)
changed = config.apply()
import tensorflow as tf
from tensorflow.python.util import _pywrap_util_port
print(json.dumps({"changed": changed, "onednn": bool(_pywrap_util_port.IsMklEnabled()),
                  "intra_env": os.environ["TF_NUM_INTRAOP_THREADS"]}))
"""

AFTER_IMPORT_AND_START = r"""
import json
import tensorflow as tf
from tensorflow.python.util import _pywrap_util_port
from tfcpu import ConfigError, SessionConfig
from tfcpu.session.runtime import tensorflow_initialised
out = {}
config = SessionConfig.for_topology().with_intra_op_threads(1).with_inter_op_threads(1)
config.apply()  # imported, not started: the setters still work
out["getter"] = [tf.config.threading.get_intra_op_parallelism_threads(),
                 tf.config.threading.get_inter_op_parallelism_threads()]
running = bool(_pywrap_util_port.IsMklEnabled())
try:
    config.with_onednn(not running).apply()
    out["onednn_error"] = None
except ConfigError as exc:
    out["onednn_error"] = str(exc)
tf.constant([1.0]) + 1.0
out["started"] = tensorflow_initialised()
config.apply()  # same values: nothing to refuse
try:
    config.with_intra_op_threads(2).apply()
    out["error"] = None
except ConfigError as exc:
    out["error"] = str(exc)
print(json.dumps(out))
"""


def _run(code: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_NUM_", "TF_ENABLE_ONEDNN", "OMP_", "KMP_"))}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_apply_before_tensorflow_takes_effect() -> None:
    out = _run(BEFORE_IMPORT)
    assert out["onednn"] is True  # TF_ENABLE_ONEDNN_OPTS=1 was read by the TensorFlow imported afterwards
    assert out["intra_env"] == "1"
    changed = out["changed"]
    assert isinstance(changed, dict) and changed["TF_ENABLE_ONEDNN_OPTS"] == "1"


def test_apply_after_import_uses_setters_and_refuses_after_start() -> None:
    out = _run(AFTER_IMPORT_AND_START)
    assert out["getter"] == [1, 1]
    assert "oneDNN" in str(out["onednn_error"]) and "imported" in str(out["onednn_error"])
    assert out["started"] is True
    error = str(out["error"])
    assert "already started" in error and "intra_op_threads=2" in error and "hint:" in error
