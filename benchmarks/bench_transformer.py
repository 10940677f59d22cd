"""The Keras 3 encoder (issue 18) through every path, in one run: sequences/s and p99 latency.

    python benchmarks/bench_transformer.py [--rounds 3] [--duration 10] [--batch-size 8] [--seq 128]
        [--layers 4] [--width 256] [--json OUT]

Paths (the same seeded encoder from tests/transformer_models.py, token ids + mask, batch x seq):

1. TF FP32 as loaded: ``tfcpu.load(keras_model)``, a TF session with TF's defaults;
2. tfcpu FP32: ``GraphOptimizer.default()``;
3. tfcpu BF16: ``Quantizer().bf16()`` (only where the CPU has AVX512_BF16/AMX; else reported);
4. tfcpu INT8: ``Quantizer().int8()`` calibrated on 4 batches of the synthetic tokens;
5. OpenVINO FP32 (plain peer: ``openvino.convert_model`` of the as-loaded frozen graph, THROUGHPUT
   hint, f32 inference precision);
6. OpenVINO INT8 (``nncf.quantize`` on the same calibration batches).

Every measurement runs in a fresh child (``--child``); rounds rotate the order; the table shows
medians. Throughput is sequences/s at ``--batch-size``; latency is the p99 of single-sequence
(batch 1) requests over half the duration. The graphs are made once, before the timed rounds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _common import child_env, machine_record, rotation, run_json_child, summarise, write_json  # noqa: E402

PATHS = ("TF FP32 as loaded", "tfcpu FP32", "tfcpu BF16", "tfcpu INT8", "OpenVINO FP32", "OpenVINO INT8")


def _feeds(batch: int, seq: int, seed: int = 0) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    lengths = rng.integers(seq // 2, seq + 1, batch)
    lengths[0] = seq
    return {
        "token_ids:0": rng.integers(0, 100, (batch, seq)).astype("int32"),
        "mask:0": (np.arange(seq)[None, :] < lengths[:, None]).astype("int32"),
    }


def _prepare(args: argparse.Namespace, work: Path) -> dict[str, str]:
    """Write every graph/IR once; return {path name: file or 'failed: reason'}."""
    import transformer_models as tm

    import tfcpu
    from tfcpu.graph.optimizer import GraphOptimizer

    model = tm.frozen("keras3", layers=args.layers, width=args.width)
    calibration = [{k.split(":")[0]: v for k, v in _feeds(args.batch_size, args.seq, s).items()} for s in range(4)]
    files: dict[str, str] = {}

    def save(name: str, make: Any) -> None:
        try:
            graph_def = make()
            path = work / (name.replace(" ", "_") + ".pb")
            path.write_bytes(graph_def.SerializeToString())
            files[name] = str(path)
        except Exception as exc:  # noqa: BLE001 - a failed path is reported, the others still run
            files[name] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"

    save("TF FP32 as loaded", lambda: model.graph_def)
    save("tfcpu FP32", lambda: GraphOptimizer.default().run(model).model.graph_def)
    save("tfcpu BF16", lambda: tfcpu.Quantizer().bf16().run(model).model.graph_def)
    data = {k: __import__("numpy").concatenate([c[k] for c in calibration]) for k in calibration[0]}
    save("tfcpu INT8", lambda: tfcpu.Quantizer().int8().calibrate(data, batches=4, batch_size=args.batch_size)
         .run(model).model.graph_def)  # fmt: skip
    for name, int8 in (("OpenVINO FP32", False), ("OpenVINO INT8", True)):
        try:
            files[name] = _openvino_ir(files["TF FP32 as loaded"], work, int8, calibration)
        except Exception as exc:  # noqa: BLE001
            files[name] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return files


def _openvino_ir(pb: str, work: Path, int8: bool, calibration: list[dict[str, Any]]) -> str:
    import openvino as ov

    model = ov.convert_model(pb)
    if int8:
        import nncf

        by_name = {p.get_any_name().split(":")[0]: p.get_any_name() for p in model.inputs}
        dataset = nncf.Dataset(calibration, lambda b: {by_name[k]: v for k, v in b.items()})
        model = nncf.quantize(model, dataset, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calibration))
    path = work / ("ov_int8.xml" if int8 else "ov_fp32.xml")
    ov.save_model(model, str(path))
    return str(path)


def _tf_runner(path: str) -> Any:
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(Path(path).read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    session = tf.compat.v1.Session(graph=graph)
    output = next(op.outputs[0] for op in graph.get_operations() if op.name == "Identity")
    return lambda feeds: session.run(output, feed_dict=feeds)


def _ov_runner(path: str) -> Any:
    import openvino as ov

    compiled = ov.Core().compile_model(path, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
                                       if "fp32" in path else {"PERFORMANCE_HINT": "LATENCY"})  # fmt: skip
    request = compiled.create_infer_request()
    names = {p.get_any_name().split(":")[0]: p.get_any_name() for p in compiled.inputs}
    return lambda feeds: request.infer({names[k.split(":")[0]]: v for k, v in feeds.items()})


def child(path: str, batch: int, seq: int, duration: float, out: str) -> int:
    """Time one graph/IR: sequences/s at ``batch`` and p99 latency at batch 1; write JSON."""
    import numpy as np

    run = _ov_runner(path) if path.endswith(".xml") else _tf_runner(path)
    big, one = _feeds(batch, seq, 1), _feeds(1, seq, 2)
    for _ in range(3):
        run(big)
        run(one)
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < duration:
        run(big)
        count += 1
    throughput = count * batch / (time.perf_counter() - start)
    latencies: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < duration / 2 or len(latencies) < 5:
        t = time.perf_counter()
        run(one)
        latencies.append(time.perf_counter() - t)
    p99 = float(np.percentile(latencies, 99)) * 1000
    Path(out).write_text(json.dumps({"throughput": throughput, "p99_ms": p99, "requests": len(latencies)}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", nargs=2, metavar=("GRAPH", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], args.batch_size, args.seq, args.duration, args.child[1])
    record = machine_record(["tensorflow", "keras", "neural-compressor", "openvino", "nncf"])
    print(f"machine: {record['machine']}", file=sys.stderr)
    samples: dict[str, list[dict[str, float]]] = {p: [] for p in PATHS}
    notes: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = _prepare(args, work)
        for r in range(args.rounds):
            for name in rotation(list(PATHS), r):
                if files[name].startswith("failed") or name in notes:
                    notes.setdefault(name, files[name])
                    continue
                out = work / "child.json"
                argv = [sys.executable, __file__, "--child", files[name], str(out), "--batch-size",
                        str(args.batch_size), "--seq", str(args.seq), "--duration", str(args.duration)]  # fmt: skip
                try:
                    samples[name].append(run_json_child(argv, out, child_env(), timeout=600))
                except RuntimeError as exc:
                    notes[name] = f"failed: {exc}"
                    continue
                print(f"round {r + 1} {name}: {samples[name][-1]['throughput']:.1f} seq/s", file=sys.stderr)
    rows = _table(samples, notes, args)
    if args.json:
        write_json(args.json, {**record, "args": vars(args), "rows": rows})
    return 0


def _table(samples: dict[str, list[dict[str, float]]], notes: dict[str, str], args: argparse.Namespace) -> list[Any]:
    from rich.console import Console
    from rich.table import Table

    base = summarise([s["throughput"] for s in samples["TF FP32 as loaded"]])[0] or 0.0
    table = Table(
        title=f"Keras 3 encoder, {args.layers} layers x {args.width}, batch {args.batch_size} x seq {args.seq}"
    )
    for col in ("path", "median seq/s", "vs TF FP32", "p99 ms (batch 1)", "note"):
        table.add_column(col)
    rows: list[dict[str, Any]] = []
    for name in PATHS:
        if not samples[name]:
            rows.append({"path": name, "note": notes.get(name, "not run")})
            table.add_row(name, "", "", "", notes.get(name, "not run")[:80])
            continue
        tput = summarise([s["throughput"] for s in samples[name]])[0]
        p99 = summarise([s["p99_ms"] for s in samples[name]])[0]
        rows.append({"path": name, "throughput": tput, "p99_ms": p99, "samples": samples[name]})
        table.add_row(name, f"{tput:.1f}", f"{tput / base:.2f}x" if base else "", f"{p99:.1f}", notes.get(name, ""))
    Console().print(table)
    return rows


if __name__ == "__main__":
    sys.exit(main())
