"""BF16 on TensorFlow's own path: FP32 optimised vs tfcpu's offline BF16 rewrite vs TF's runtime AMP vs both.

    python benchmarks/bench_bf16.py [--model ResNet50] [--rounds 3] [--duration 15] [--batch-size 16] [--json OUT]

Four paths on one Keras application (random weights, batch norms and biases randomised by ``tfcpu.load``):

* **FP32 optimised**: ``GraphOptimizer.default()`` on the frozen graph, plain session;
* **BF16 offline**: ``tfcpu.Quantizer().bf16()`` (optimise, Grappler's oneDNN BF16 rewrite once, BF16
  constants, Casts only at the borders), plain session;
* **TF runtime AMP**: the unoptimised frozen graph in a session whose ConfigProto turns on
  ``auto_mixed_precision_onednn_bfloat16`` (what a TF user gets without tfcpu);
* **BF16 offline + AMP**: the offline graph with the runtime rewriter on as well.

Each round runs every path in its own fresh child (``TF_ENABLE_ONEDNN_OPTS=1``), rotating the order; a
child warms up, times batches for ``--duration`` seconds and reports img/s and how many ops ran in BF16
(read from the partition graphs TensorFlow executed, so a label is what ran). Printed: the CPU and its
BF16/INT8 kernels, median img/s with min–max, ratios, and BF16-vs-FP32 agreement (top-1, cosine).
BF16 pays only with AVX512_BF16 or AMX_BF16; elsewhere the script says why it does not run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # the BF16 rewrite needs oneDNN; set before TF starts
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (
    PathResult,
    child_env,
    fmt_ratio,
    measure_rounds,
    model_parser,
    python_child,
    ratio,
    run_json_child,
)

PATHS = {
    "FP32 optimised": ("fp32", False),
    "BF16 offline": ("bf16", False),
    "TF runtime AMP": ("frozen", True),
    "BF16 offline + AMP": ("bf16", True),
}


def _child(args: argparse.Namespace) -> int:
    """Time one graph in this process; write {"img_s", "bf16_ops", "batches"} to --out."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2

    spec = json.loads(args.spec)
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(Path(args.child).read_bytes())
    config = config_pb2.ConfigProto()
    if spec["amp"]:
        config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = (
            rewriter_config_pb2.RewriterConfig.ON
        )
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    shape = [args.batch_size, *spec["shape"][1:]]
    feed = {spec["input"]: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    fetch = spec["outputs"]
    with tf.compat.v1.Session(graph=graph, config=config) as sess:
        meta = tf.compat.v1.RunMetadata()
        opts = tf.compat.v1.RunOptions(output_partition_graphs=True)
        sess.run(fetch, feed, options=opts, run_metadata=meta)
        bf16_ops = sum(
            1
            for g in meta.partition_graphs
            for n in g.node
            if n.op not in ("Const", "Cast", "_Recv", "_Send") and "T" in n.attr and n.attr["T"].type == 14
        )
        for _ in range(2):
            sess.run(fetch, feed)
        count, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.duration or count < 3:
            sess.run(fetch, feed)
            count += 1
        seconds = time.perf_counter() - t0
    Path(args.out).write_text(
        json.dumps({"img_s": count * args.batch_size / seconds, "bf16_ops": bf16_ops, "batches": count})
    )
    return 0


def _agreement(fp32: Any, bf16: Any, batch_size: int) -> dict[str, float]:
    import tensorflow as tf

    from tfcpu.quantize._bf16 import agreement
    from tfcpu.runtime.feeds import synthetic_batch

    feed = synthetic_batch(fp32, batch_size, seed=1)
    outs = []
    for model in (fp32, bf16):
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.import_graph_def(model.graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as sess:
            outs.append(sess.run(list(model.output_names), feed))
    return agreement(outs[0], outs[1])


def main() -> int:
    parser = model_parser(__doc__)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args)

    import tfcpu
    from tfcpu.errors import ConfigError
    from tfcpu.quantize._bf16 import cast_report
    from tfcpu.session.precision import check_precision

    topo = tfcpu.Topology.detect()
    print(f"CPU: {topo.summary()}")
    print(f"BF16 here: {topo.precisions['bf16'].advice}")
    try:
        check_precision("bf16", topo)
    except ConfigError as exc:
        print(f"not run: {exc}", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    frozen = tfcpu.load(f"keras:{args.model}")
    fp32 = tfcpu.GraphOptimizer.default().run(frozen).model
    result = tfcpu.Quantizer().bf16().run(frozen)
    print(
        f"prepared in {time.monotonic() - t0:.0f} s; BF16 graph: {cast_report(result.model.graph_def)}", file=sys.stderr
    )
    graphs = {"fp32": fp32, "bf16": result.model, "frozen": frozen}
    stats = _agreement(fp32, result.model, args.batch_size)
    results = {
        name: PathResult(name, f"{graph} graph, runtime AMP {'on' if amp else 'off'}")
        for name, (graph, amp) in PATHS.items()
    }
    bf16_ops: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="tfcpu-bench-bf16-") as tmp:
        files = {}
        for key, model in graphs.items():
            files[key] = Path(tmp) / f"{key}.pb"
            model.save(files[key])
        out = Path(tmp) / "out.json"

        def measure(name: str) -> float:
            key, amp = PATHS[name]
            model = graphs[key]
            spec = {
                "amp": amp,
                "input": model.input_names[0],
                "shape": list(model.inputs[0].shape or ()),
                "outputs": list(model.output_names),
            }
            argv = python_child(
                os.path.abspath(__file__), "--child", files[key], "--spec", json.dumps(spec), "--out", out,
                "--batch-size", args.batch_size, "--duration", args.duration,
            )  # fmt: skip
            data = run_json_child(argv, out, child_env({"TF_ENABLE_ONEDNN_OPTS": "1"}), timeout=args.duration * 4 + 300)
            bf16_ops[name] = int(data["bf16_ops"])
            return float(data["img_s"])

        measure_rounds(results, measure, args.rounds)

    med = {name: r.median for name, r in results.items()}
    print(f"\n{args.model}, batch {args.batch_size}, {args.rounds} interleaved rounds, ~{args.duration:g} s each")
    print(f"{'path':<20}{'median img/s':>14}{'min':>9}{'max':>9}{'BF16 ops ran':>14}")
    for name, r in results.items():
        _, lo, hi = r.to_dict()["median"], r.to_dict()["min"], r.to_dict()["max"]
        status = "" if r.status == "ok" else f"  failed: {r.note}"
        print(f"{name:<20}{med[name]:>14.1f}{lo:>9.1f}{hi:>9.1f}{bf16_ops.get(name, 0):>14}{status}")
    ratios = {
        "offline / FP32": ratio(med["BF16 offline"], med["FP32 optimised"]),
        "offline / runtime AMP": ratio(med["BF16 offline"], med["TF runtime AMP"]),
        "both / offline": ratio(med["BF16 offline + AMP"], med["BF16 offline"]),
    }
    for label, value in ratios.items():
        print(f"{label:<24}{fmt_ratio(value)}")
    print(f"BF16 offline vs FP32: top-1 agreement {stats['top1_agreement']:.2%}, cosine {stats['cosine']:.6f}")
    if args.json:
        from tfcpu._io import atomic_write_text

        data = {
            "model": args.model, "batch_size": args.batch_size, "rounds": args.rounds, "duration": args.duration,
            "cpu": topo.summary(), "isa": list(topo.isa), "paths": {n: r.to_dict() for n, r in results.items()},
            "bf16_ops_ran": bf16_ops, "ratios": ratios, "agreement": stats,
            "bf16_graph": cast_report(result.model.graph_def),
        }  # fmt: skip
        atomic_write_text(args.json, json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
