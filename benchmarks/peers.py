"""tfcpu side by side with what a user would pick instead, on the same Keras 3 model, in one run.

    python benchmarks/peers.py [--rounds 3] [--duration 15] [--batch-size 16] [--json OUT] [--model ResNet50]

Paths (same seeded ``tf.keras.applications.<model>(weights=None)``, same batch size, same timed
duration, synthetic data made before the timed region, every measurement in a fresh child):

1. Keras ``model.predict`` (child: ``tfcpu.demo._predict``);
2. the frozen graph with TensorFlow's defaults;
3. TF's C++ graph_transforms with the white paper's transform string (private binding, benchmark only);
4. INC alone: ``neural_compressor.tensorflow.quantize_model`` with its default StaticQuantConfig on the
   unoptimised frozen graph;
5. OpenVINO FP32 (THROUGHPUT hint, INFERENCE_PRECISION_HINT f32, AsyncInferQueue);
6. OpenVINO INT8 (``nncf.quantize``, synthetic calibration, THROUGHPUT hint);
7. tfcpu best: ``GraphOptimizer.default()`` then ``tfcpu.Quantizer`` INT8, as 2 pinned instances
   and as one instance.

Rounds rotate the order so drift hits every path alike; the table shows medians, min–max and
tfcpu best / path. A path that fails is reported with its reason; the others still run.
TF INT8 paths run with TF_ENABLE_ONEDNN_OPTS=1 (needed on CPUs without VNNI/BF16/AMX).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import (  # noqa: E402
    PathResult,
    child_env,
    fmt_ratio,
    inc_alone,
    machine_record,
    measure_rounds,
    noise_mark,
    print_table,
    python_child,
    ratio,
    run_json_child,
    write_json,
)

PAPER_TRANSFORMS = (
    "strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) fold_constants(ignore_errors=true) "
    "fold_old_batch_norms fold_batch_norms"
)
ONEDNN = {"TF_ENABLE_ONEDNN_OPTS": "1"}
WARMUP = 3
PATHS = {
    "Keras predict": "Keras 3 model.predict, TF defaults",
    "frozen, TF defaults": "frozen GraphDef in a TF session, default threads",
    "TF graph_transforms": "frozen graph after TF's C++ graph_transforms (paper's string)",
    "INC alone": "INC 3.x default StaticQuantConfig on the unoptimised frozen graph",
    "OpenVINO FP32": "openvino.convert_model, THROUGHPUT hint, f32 precision hint",
    "OpenVINO INT8": "nncf.quantize (synthetic calibration), THROUGHPUT hint",
    "tfcpu best, 2 instances": "GraphOptimizer.default() + tfcpu Quantizer INT8, 2 pinned instances",
    "tfcpu best, 1 instance": "GraphOptimizer.default() + tfcpu Quantizer INT8, one instance",
}
TFCPU_PATHS = ("tfcpu best, 2 instances", "tfcpu best, 1 instance")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ResNet50", help="a tf.keras.applications name")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=15.0, help="seconds timed per measurement")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--calibration-batches", type=int, default=4)
    p.add_argument("--json", metavar="OUT")
    return p.parse_args(argv)


# -- preparation (outside every timed region) ---------------------------------------------------
def build_keras(name: str, work: Path) -> tuple[Any, Path]:
    import keras

    from tfcpu.graph.load import resolve_application

    keras.utils.set_random_seed(0)
    model = resolve_application(name)
    path = work / "model.keras"
    model.save(path)
    return model, path


def paper_transforms(fp32: Any) -> Any:
    import tensorflow as tf
    from tensorflow.python.util import _pywrap_transform_graph

    from tfcpu.graph.model import Model

    data = _pywrap_transform_graph.TransformGraphWithStringInputs(
        fp32.to_bytes(), ",".join(fp32.input_names), ",".join(fp32.output_names), PAPER_TRANSFORMS
    )
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(data)
    return Model(graph_def, fp32.inputs, fp32.outputs, source=f"{fp32.source} [graph_transforms]")


def tfcpu_best(fp32: Any, calibration_batches: int, batch_size: int) -> Any:
    from tfcpu import GraphOptimizer, Quantizer

    optimised = GraphOptimizer.default().run(fp32).model
    quantizer = Quantizer().int8().calibrate("synthetic", batches=calibration_batches, batch_size=batch_size)
    return quantizer.optimize(False).run(optimised).model


def openvino_fp32(keras_model: Any, work: Path) -> Path:
    import openvino as ov

    saved = work / "saved_model"
    keras_model.export(str(saved), verbose=False)
    model = ov.convert_model(str(saved))
    xml = work / "ov_fp32.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)
    return xml


def openvino_int8(fp32_xml: Path, batches: list[dict[str, Any]], work: Path) -> Path:
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(fp32_xml))
    items = [next(iter(b.values())) for b in batches]
    quantized = nncf.quantize(model, nncf.Dataset(items), subset_size=sum(len(x) for x in items))
    xml = work / "ov_int8.xml"
    ov.save_model(quantized, str(xml), compress_to_fp16=False)
    return xml


def prepare(args: argparse.Namespace, work: Path, results: dict[str, PathResult]) -> dict[str, Any]:
    """Build every artefact; a failed step marks the paths that need it as failed."""
    import tfcpu
    from tfcpu.quantize.calibration import materialise

    keras_model, keras_path = build_keras(args.model, work)
    fp32 = tfcpu.load(keras_model)
    batches = materialise(fp32, "synthetic", batches=args.calibration_batches, batch_size=args.batch_size)
    art: dict[str, Any] = {"keras": keras_path, "fp32": fp32}
    steps: list[tuple[str, tuple[str, ...], Callable[[], Any]]] = [
        ("transformed", ("TF graph_transforms",), lambda: paper_transforms(fp32)),
        ("inc", ("INC alone",), lambda: inc_alone(fp32, batches)),
        ("tfcpu", TFCPU_PATHS, lambda: tfcpu_best(fp32, args.calibration_batches, args.batch_size)),
        ("ov_fp32", ("OpenVINO FP32", "OpenVINO INT8"), lambda: openvino_fp32(keras_model, work)),
        ("ov_int8", ("OpenVINO INT8",), lambda: openvino_int8(art["ov_fp32"], batches, work)),
    ]
    for key, users, build in steps:
        if any(results[u].status != "ok" for u in users):
            continue
        t0 = time.monotonic()
        try:
            art[key] = build()
        except Exception as exc:  # noqa: BLE001 - a failed preparation fails its paths only
            for u in users:
                results[u].fail(f"preparation failed: {type(exc).__name__}: {exc}".splitlines()[0])
        print(f"prepared {key} in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return art


# -- measurement (each in a fresh child) ----------------------------------------------------------
def make_measure(args: argparse.Namespace, art: dict[str, Any], work: Path) -> Callable[[str], float]:
    from tfcpu.plan import InstancePlan
    from tfcpu.runtime.multi import run_instances
    from tfcpu.topology import Topology

    topo = Topology.detect()
    one, two = InstancePlan.for_topology(topo, instances=1), InstancePlan.for_topology(topo, instances=2)
    out = work / "child.json"
    b, d = args.batch_size, args.duration

    def tf_graph(model: Any, plan: Any, env: dict[str, str], threads: tuple[int, int] | None) -> float:
        res = run_instances(model, plan, batch_size=b, warmup=WARMUP, duration=d, env=env, threads=threads)
        if res.partial:
            raise RuntimeError(f"instance {res.failed[0].index}: {res.failed[0].error}")
        return float(res.throughput)

    def child(argv: list[str]) -> float:
        return float(run_json_child(argv, out, child_env(), timeout=10 * d + 600)["throughput"])

    def ov(key: str, precision: str) -> float:
        return child(python_child(str(HERE / "_ov_child.py"), art[key], b, d, WARMUP, precision, out))

    table: dict[str, Callable[[], float]] = {
        "Keras predict": lambda: child(python_child("tfcpu.demo._predict", art["keras"], b, d, WARMUP, out)),
        "frozen, TF defaults": lambda: tf_graph(art["fp32"], one, {}, (0, 0)),
        "TF graph_transforms": lambda: tf_graph(art["transformed"], one, {}, (0, 0)),
        "INC alone": lambda: tf_graph(art["inc"], one, ONEDNN, (0, 0)),
        "OpenVINO FP32": lambda: ov("ov_fp32", "f32"),
        "OpenVINO INT8": lambda: ov("ov_int8", "default"),
        "tfcpu best, 2 instances": lambda: tf_graph(art["tfcpu"], two, ONEDNN, None),
        "tfcpu best, 1 instance": lambda: tf_graph(art["tfcpu"], one, ONEDNN, None),
    }
    return lambda name: table[name]()


# -- report ------------------------------------------------------------------------------------------
def headline(results: dict[str, PathResult]) -> tuple[float, str, float]:
    """(best tfcpu median, its path name, best / OpenVINO INT8)."""
    ok = [results[n] for n in TFCPU_PATHS if results[n].status == "ok" and results[n].samples]
    if not ok:
        return float("nan"), "", float("nan")
    best = max(ok, key=lambda r: r.median)
    ov = results["OpenVINO INT8"]
    return best.median, best.name, ratio(best.median, ov.median if ov.samples else float("nan"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    saved_onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"  # INC needs oneDNN while quantising; set before TF starts
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    results = {name: PathResult(name, desc) for name, desc in PATHS.items()}
    record = machine_record(("tensorflow", "keras", "neural-compressor", "openvino", "nncf", "tfcpu"))
    with tempfile.TemporaryDirectory(prefix="tfcpu-peers-") as tmp:
        work = Path(tmp)
        art = prepare(args, work, results)
        # children inherit os.environ: give the FP32 "TF defaults" paths the user's own setting back
        if saved_onednn is None:
            os.environ.pop("TF_ENABLE_ONEDNN_OPTS")
        else:
            os.environ["TF_ENABLE_ONEDNN_OPTS"] = saved_onednn
        measure_rounds(results, make_measure(args, art, work), args.rounds)
    best, best_name, vs_ov = headline(results)
    title = (
        f"{args.model}, batch {args.batch_size}, {args.rounds} round(s) × {args.duration:g} s · "
        f"{record['machine']} · {record['date']}"
    )
    best_samples = results[best_name].samples if best_name else None
    print_table(title, list(results.values()), best, best_samples=best_samples)
    versions = ", ".join(f"{k} {v}" for k, v in record["versions"].items())
    print(versions)
    mark = noise_mark(best_samples or [], results["OpenVINO INT8"].samples) if vs_ov == vs_ov else ""
    print(f"tfcpu best / OpenVINO INT8 = {fmt_ratio(vs_ov)}{mark}  (tfcpu best: {best_name or 'failed'}; goal ≥ 1.0×)")
    if args.json:
        write_json(
            args.json,
            {
                **record,
                "model": args.model,
                "batch_size": args.batch_size,
                "rounds": args.rounds,
                "duration": args.duration,
                "paths": [r.to_dict() for r in results.values()],
                "tfcpu_best": best_name,
                "tfcpu_best_vs_openvino_int8": vs_ov,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
