"""ITEX vs stock TensorFlow on this machine, on the same TF-2.21-made ResNet-50 graphs.

    python benchmarks/bench_itex.py [--itex-python .nox/itex/bin/python] [--duration 20] [--rounds 2]

Run it with the main environment's Python (stock TensorFlow); it needs the itex venv that
``nox -s itex`` creates and the graphs tests/itex/make_fixtures.py writes ($TFCPU_ITEX_FIXTURES,
default .nox/itex-fixtures). Every measurement is one ``tfcpu bench --json`` child process
(tuned threads, synthetic data, Appendix B timing); the rows alternate round by round so load on
a shared machine spreads over all of them, and the table shows medians.

Rows: FP32 with stock TF (its defaults for this CPU), FP32 under TF 2.15 + ITEX (``--itex``),
INT8 with stock TF (``--onednn``, which INC's graphs need) and INT8 under ITEX.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path


def _bench(python: str, graph: Path, meta: dict, extra: list[str], batch: int, duration: float) -> float:
    argv = [
        python, "-m", "tfcpu", "bench", str(graph), "--inputs", meta["input"], "--outputs", meta["output"],
        "--json", "--batch-size", str(batch), "--duration", str(duration), "--warmup", "2", *extra,
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration * 20 + 600, env=dict(os.environ))
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise SystemExit(f"{' '.join(argv)} failed: {tail}")
    return float(json.loads(proc.stdout)["throughput"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--itex-python", default=".nox/itex/bin/python")
    parser.add_argument("--fixtures", default=os.environ.get("TFCPU_ITEX_FIXTURES", ".nox/itex-fixtures"))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    fixtures = Path(args.fixtures)
    meta = json.loads((fixtures / "meta.json").read_text())
    rows = [
        ("FP32", "stock TF " + meta["producer_tf"], sys.executable, "fp32", []),
        ("FP32", "TF 2.15 + ITEX", args.itex_python, "fp32", ["--itex"]),
        ("INT8", "stock TF " + meta["producer_tf"], sys.executable, "int8", ["--onednn"]),
        ("INT8", "TF 2.15 + ITEX", args.itex_python, "int8", ["--itex"]),
    ]
    samples: dict[int, list[float]] = {i: [] for i in range(len(rows))}
    for _ in range(args.rounds):
        for i, (_p, _rt, python, graph, extra) in enumerate(rows):
            samples[i].append(
                _bench(python, fixtures / f"resnet50_{graph}.pb", meta, extra, args.batch_size, args.duration)
            )
    result = [
        {
            "precision": p,
            "runtime": rt,
            "median_img_s": round(statistics.median(samples[i]), 2),
            "samples": [round(s, 2) for s in samples[i]],
        }
        for i, (p, rt, *_rest) in enumerate(rows)
    ]
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"ResNet-50 (random weights) frozen by TF {meta['producer_tf']}, batch {args.batch_size}, "
          f"{args.duration:g} s per run, {args.rounds} rounds")  # fmt: skip
    print(f"{'precision':<10}{'runtime':<22}{'median img/s':>14}  samples")
    for r in result:
        print(f"{r['precision']:<10}{r['runtime']:<22}{r['median_img_s']:>14.1f}  {r['samples']}")
    for precision in ("FP32", "INT8"):
        stock, itex = (r["median_img_s"] for r in result if r["precision"] == precision)
        print(f"{precision}: ITEX / stock = {itex / stock:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
