"""FP32 frozen vs INC alone vs tfcpu INT8 on Keras 3 ResNet-50, measured side by side in one run.

    python benchmarks/bench_int8.py [--rounds 3] [--duration 15] [--batch-size 16] [--json OUT]

Three graphs are prepared once (random weights, synthetic calibration):

* **FP32**: ``tfcpu.load("keras:ResNet50")`` — the frozen Keras 3 graph as it is;
* **INC alone**: Intel Neural Compressor 3.x ``quantize_model`` with its default
  ``StaticQuantConfig`` on that same unoptimised graph (what a user gets without tfcpu);
* **tfcpu INT8**: ``tfcpu.Quantizer()`` — ``GraphOptimizer.default()`` first (batch norms folded
  into the convs), then INC.

Each round measures every graph in its own fresh child process (one instance on all usable
cores, ``TF_ENABLE_ONEDNN_OPTS=1``, timing by ``tfcpu.runtime``'s Runner), rotating the order.
Printed: median img/s over the rounds, min–max, and the ratios tfcpu/INC and tfcpu/FP32.
Issue 5's bar (a VNNI Xeon): tfcpu ≥ 2.5× INC alone and ≥ 3.5× FP32. On CPUs without VNNI/AMX
INT8 runs on slower oneDNN paths and the ratios are lower; the script reports what it measures.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any

# INT8 graphs need oneDNN; stock TF leaves it off on CPUs without VNNI/BF16/AMX. Set before TF starts.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import fmt_compared, inc_alone, model_parser, spread_lines


def _structure(model: Any) -> dict[str, int]:
    from tfcpu.graph.model import is_quantized_op

    ops = model.op_counts()
    return {
        "quantized_ops": sum(n for op, n in ops.items() if is_quantized_op(op)),
        "QuantizeV2": ops.get("QuantizeV2", 0),
        "Dequantize": ops.get("Dequantize", 0),
        "fp32_compute": sum(n for op, n in ops.items() if op in ("Conv2D", "MatMul") or op.startswith("FusedBatch")),
    }


def main() -> int:
    parser = model_parser(__doc__)
    parser.add_argument("--calibration-batches", type=int, default=4)
    args = parser.parse_args()

    import tfcpu
    from tfcpu.plan import InstancePlan
    from tfcpu.quantize.calibration import materialise
    from tfcpu.runtime.multi import run_instances

    topo = tfcpu.Topology.detect()
    t0 = time.monotonic()
    fp32 = tfcpu.load(f"keras:{args.model}")
    batches = materialise(fp32, "synthetic", batches=args.calibration_batches, batch_size=args.batch_size)
    inc = inc_alone(fp32, batches)
    t1 = time.monotonic()
    result = (
        tfcpu.Quantizer()
        .int8()
        .calibrate("synthetic", batches=args.calibration_batches, batch_size=args.batch_size)
        .run(fp32)
    )
    t2 = time.monotonic()
    print(f"prepared in {t1 - t0:.0f} s (load + INC alone), tfcpu INT8 in {t2 - t1:.0f} s", file=sys.stderr)
    graphs = {"FP32 frozen": fp32, "INC alone": inc, "tfcpu INT8": result.model}
    plan = InstancePlan.for_topology(topo, instances=1)
    env = {"TF_ENABLE_ONEDNN_OPTS": "1"}
    samples: dict[str, list[float]] = {name: [] for name in graphs}
    names = list(graphs)
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            res = run_instances(
                graphs[name], plan, batch_size=args.batch_size, warmup=3, duration=args.duration, env=env
            )
            if res.partial:
                print(f"round {r + 1} {name}: failed ({res.failed[0].error})", file=sys.stderr)
                continue
            samples[name].append(res.throughput)
            print(f"round {r + 1} {name}: {res.throughput:.1f} img/s", file=sys.stderr)

    medians = {n: statistics.median(v) if v else float("nan") for n, v in samples.items()}
    print(f"\n{args.model}, batch {args.batch_size}, {args.rounds} rounds, {topo.model_name} ({', '.join(topo.isa)})")
    print(f"{'path':<14}{'median img/s':>14}   min–max (±spread)")
    print("\n".join(spread_lines(samples)))
    vs_inc = medians["tfcpu INT8"] / medians["INC alone"]
    vs_fp32 = medians["tfcpu INT8"] / medians["FP32 frozen"]
    print(f"tfcpu / INC alone: {fmt_compared(samples['tfcpu INT8'], samples['INC alone'])} (target >= 2.5x on VNNI)")
    print(f"tfcpu / FP32:      {fmt_compared(samples['tfcpu INT8'], samples['FP32 frozen'])} (target >= 3.5x on VNNI)")
    # The graphs themselves, which do not depend on the CPU: how much of the math INC got to fuse
    structure = {name: _structure(g) for name, g in graphs.items() if name != "FP32 frozen"}
    for name, st in structure.items():
        print(
            f"{name} graph: {st['quantized_ops']} quantised ops, {st['QuantizeV2']} QuantizeV2, "
            f"{st['Dequantize']} Dequantize, {st['fp32_compute']} FP32 Conv2D/MatMul/FusedBatchNorm left"
        )
    if not result.fast_int8_hardware:
        print("note: this CPU has no VNNI/AMX; INT8 runs on slower oneDNN paths here")
    if args.json:
        from tfcpu._io import atomic_write_text

        data = {
            "model": args.model,
            "batch_size": args.batch_size,
            "rounds": args.rounds,
            "duration": args.duration,
            "cpu": topo.model_name,
            "isa": list(topo.isa),
            "samples": samples,
            "medians": medians,
            "tfcpu_vs_inc": vs_inc,
            "tfcpu_vs_fp32": vs_fp32,
            "graphs": structure,
            "quantization": {k: v for k, v in result.to_dict().items() if k != "model"},
        }
        atomic_write_text(args.json, json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
