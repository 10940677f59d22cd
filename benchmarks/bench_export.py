"""The exported SavedModel keeps the speed: plain TensorFlow calling its signature vs tfcpu's Runner.

    python benchmarks/bench_export.py [--model ResNet50] [--precision int8] [--rounds 3] [--duration 10]

The model (``keras:ResNet50``, random weights with trained-like batch norms) is optimised and, with
``--precision int8``, quantised once by tfcpu (synthetic calibration); the graph is written both as
a frozen ``.pb`` and as a SavedModel directory (``Model.save(dir)``). Each round then times, in
fresh processes and a rotated order, with the same thread counts and oneDNN on in both:

* runner     - ``tfcpu.load(model.pb)`` run by tfcpu's ``Runner`` (a TensorFlow session);
* savedmodel - a script that imports only TensorFlow: ``tf.saved_model.load(dir).signatures
               ["serving_default"](**inputs)``, what a user's existing script does.

Printed: CPU and ISA, medians over the rounds, min-max, and savedmodel / runner (issue 24 asks for
>= 0.95x on the INT8 graph).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import PathResult, fmt_compared, machine_record, print_table, rotation, run_json_child, write_json

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _child(mode: str, path: str, batch: int, duration: float, intra: int, inter: int, out: str) -> None:
    """Time one path in this (fresh) process and write {"ips": ..., "ops": ...} to ``out``."""
    import numpy as np

    if mode == "runner":
        import tfcpu
        from tfcpu.runtime import Runner

        model = tfcpu.load(path)
        config = tfcpu.SessionConfig.for_topology().with_intra_op_threads(intra).with_inter_op_threads(inter)
        config = config.with_onednn(True)
        shape = [batch, *[d or 1 for d in model.inputs[0].shape[1:]]]
        x = np.random.default_rng(0).uniform(0, 255, size=shape).astype(model.inputs[0].dtype)
        with Runner(model, config) as runner:
            call = lambda: runner.run({model.inputs[0].name: x})  # noqa: E731
            ips = _time(call, batch, duration)
    else:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
        fn = tf.saved_model.load(path).signatures["serving_default"]
        (key, spec), *_ = fn.structured_input_signature[1].items()
        shape = [batch, *[d or 1 for d in spec.shape.as_list()[1:]]]
        x = tf.constant(np.random.default_rng(0).uniform(0, 255, size=shape).astype(spec.dtype.as_numpy_dtype))
        ips = _time(lambda: [v.numpy() for v in fn(**{key: x}).values()], batch, duration)
    Path(out).write_text(json.dumps({"ips": ips}))


def _time(call: object, batch: int, duration: float) -> float:
    for _ in range(3):
        call()  # type: ignore[operator]
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < duration:
        call()  # type: ignore[operator]
        calls += 1
    return batch * calls / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ResNet50")
    parser.add_argument("--precision", choices=("int8", "fp32"), default="int8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", metavar="OUT")
    parser.add_argument("--child", nargs=7, metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, path, batch, duration, intra, inter, out = args.child
        _child(mode, path, int(batch), float(duration), int(intra), int(inter), out)
        return 0

    import tfcpu
    from tfcpu.quantize import Quantizer

    record = machine_record(["tensorflow", "neural-compressor"])
    print(record["machine"], file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="tfcpu-bench-export-"))
    model = tfcpu.GraphOptimizer.default().run(tfcpu.load(f"keras:{args.model}")).model
    if args.precision == "int8":
        model = Quantizer().int8().calibrate("synthetic", batches=4, batch_size=args.batch_size).run(model).model
    ops = model.op_counts()
    label = "int8" if any("Quantized" in op for op in ops) else "fp32"  # what runs, read from the graph
    model.save(work / "model.pb")
    model.save(work / "savedmodel")
    config = tfcpu.SessionConfig.for_topology()
    intra, inter = config.intra_op_threads, config.inter_op_threads
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KMP_", "OMP_", "TF_NUM_"))}
    env["TF_ENABLE_ONEDNN_OPTS"] = "1"
    paths = {
        "runner": PathResult("runner", f"tfcpu Runner, {label} .pb"),
        "savedmodel": PathResult("savedmodel", f"plain TF, {label} SavedModel signature"),
    }
    targets = {"runner": work / "model.pb", "savedmodel": work / "savedmodel"}
    for r in range(args.rounds):
        for name in rotation(list(paths), r):
            out = work / f"{name}.json"
            argv = [sys.executable, __file__, "--child", name, str(targets[name]), str(args.batch_size),
                    str(args.duration), str(intra), str(inter), str(out)]  # fmt: skip
            try:
                value = float(run_json_child(argv, out, env, timeout=args.duration * 10 + 300)["ips"])
            except RuntimeError as exc:
                paths[name].fail(str(exc))
                continue
            paths[name].samples.append(value)
            print(f"round {r + 1} {name}: {value:.1f} img/s", file=sys.stderr)
    best = paths["runner"].median
    print_table(f"{args.model} {label} batch {args.batch_size}, {intra}+{inter} threads", list(paths.values()), best,
                best_label="runner")  # fmt: skip
    ratio = paths["savedmodel"].median / best if best else float("nan")
    print(f"savedmodel / runner = {fmt_compared(paths['savedmodel'].samples, paths['runner'].samples)}")
    if args.json:
        write_json(args.json, {**record, "label": label, "ratio": ratio,
                               "paths": {k: v.to_dict() for k, v in paths.items()}})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
