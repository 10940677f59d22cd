"""Write the graphs the ITEX tests consume, using the *main* environment's TensorFlow.

Run with the main interpreter (TensorFlow 2.21 today), not the itex one::

    python tests/itex/make_fixtures.py DIR

It writes to ``DIR``:

* ``resnet50_fp32.pb`` - Keras' ResNet-50 (random weights, seed 0), frozen and optimised by
  ``GraphOptimizer.default()``; its ``versions.producer`` is the producing TensorFlow's.
* ``resnet50_int8.pb`` - the same graph quantised by tfcpu's Quantizer (INC, 2 random batches).
* ``reference.npz`` - a fixed input batch and both graphs' outputs computed by that TensorFlow
  without ITEX: the "non-ITEX run" the itex tests compare against.
* ``matmul_raw.pb`` - a bias-free Dense layer frozen as it is (not optimised): a plain ``MatMul``
  carrying the newer TensorFlow's ``grad_a``/``grad_b`` attributes, which nothing fuses away (the
  trained-like ResNet-50's MatMul is fused with its bias by Grappler, so it no longer shows the abort).
* ``meta.json`` - producer TensorFlow version, GraphDef producer numbers, input/output names.

Nothing is committed: ``nox -s itex`` runs this first (skipped when the files already exist for
the same TensorFlow version).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

BATCH = 4
FIXTURES_VERSION = 2  # bump when the set of files changes, so cached fixtures are made again


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else os.environ.get("TFCPU_ITEX_FIXTURES", ".nox/itex-fixtures"))
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # INC's INT8 graphs need oneDNN
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    import tfcpu
    from tfcpu.runtime.runner import Runner

    meta_path = out / "meta.json"
    cached = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if cached.get("producer_tf") == tf.__version__ and cached.get("fixtures") == FIXTURES_VERSION:
        print(f"fixtures in {out} are up to date")
        return 0

    tf.keras.utils.set_random_seed(0)
    fp32 = tfcpu.GraphOptimizer.default().run(tfcpu.load("ResNet50")).model
    rng = np.random.default_rng(0)
    calib = rng.uniform(0.0, 255.0, size=(2 * BATCH, 224, 224, 3)).astype(np.float32)
    int8 = tfcpu.Quantizer().int8().calibrate(calib, batches=2, batch_size=BATCH).run(fp32).model
    x = rng.uniform(0.0, 255.0, size=(BATCH, 224, 224, 3)).astype(np.float32)
    refs = {"input": x}
    for name, model in (("fp32", fp32), ("int8", int8)):
        model.save(out / f"resnet50_{name}.pb")
        with Runner(model) as runner:
            refs[name] = runner.run(x)[model.output_names[0]]
    np.savez(out / "reference.npz", **refs)
    dense = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(4, use_bias=False)])
    raw = tfcpu.load(dense)
    raw.save(out / "matmul_raw.pb")
    meta = {
        "producer_tf": tf.__version__,
        "fixtures": FIXTURES_VERSION,
        "matmul_input": raw.input_names[0],
        "matmul_output": raw.output_names[0],
        "producer": {"fp32": fp32.graph_def.versions.producer, "int8": int8.graph_def.versions.producer},
        "input": fp32.input_names[0],
        "output": fp32.output_names[0],
        "int8_ops": sorted({n.op for n in int8.graph_def.node if "Quantized" in n.op}),
    }
    from tfcpu._io import atomic_write_text

    atomic_write_text(meta_path, json.dumps(meta, indent=2))
    print(f"wrote fixtures to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
