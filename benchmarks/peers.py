"""tfcpu side by side with what a user would pick instead, on the same Keras 3 model, in one run.

    python benchmarks/peers.py [--rounds 3] [--duration 15] [--batch-size 16] [--json OUT]
        [--model ResNet50 | encoder] [--paths NAME,...]

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
   and as one instance;
8. ONNX Runtime FP32: tf2onnx (opset 17) of the same frozen graph, with TensorFlow's ``Erfc`` (the exact
   GELU) rewritten as ``1 + Erf(-x)`` first (ONNX has no Erfc; ``_peer_tools.rewrite_erfc``), one session
   with intra-op threads = physical cores, every graph optimisation;
9. ONNX Runtime INT8: ``quant_pre_process`` then ``quantize_static`` with ORT's documented CPU advice
   (QDQ, per-channel int8 weights; u8 activations with ``reduce_range`` on x86 without VNNI, s8 with
   VNNI: read from ``Topology.isa``), same calibration batches; also as 2 sessions × cores/2 threads;
10. LiteRT FP32 / full-integer INT8 / dynamic range: ``TFLiteConverter`` on the Keras SavedModel,
   the ``ai_edge_litert`` interpreter (XNNPACK) with threads = physical cores.

``--model encoder`` is tfcpu's built-in encoder (``tfcpu.load("keras:encoder")``: 4 layers, width 256,
sequence 128, int32 token ids and mask; batch 8 by default), fed token ids in [0, 100) with padded masks.

Every path's outputs are checked against TensorFlow's (the frozen FP32 graph) on one held-out batch, the
same arrays for all: cosine, max |error| and top-1 agreement; a path beyond the tolerance (FP32: cosine
0.9999 and max|error| 1e-3 × max|TF|; INT8: cosine 0.99) is marked ✗. The "ran as" column is read from
what ran: a TF graph's ops, the graph ONNX Runtime optimised for this CPU (QLinear*/integer ops vs float
Conv/MatMul left), the LiteRT interpreter's tensor dtypes per product op and its XNNPACK partitions.

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
    python_child,
    ratio,
    run_json_child,
    table_rows,
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
    "ONNX Runtime FP32": "tf2onnx of the frozen graph (Erfc rewritten), threads = cores",
    "ONNX Runtime INT8": "quantize_static QDQ with ORT's CPU advice, threads = cores",
    "ONNX Runtime INT8, 2 instances": "the same INT8 model, 2 sessions × cores/2 threads",
    "LiteRT FP32": "TFLiteConverter, ai_edge_litert + XNNPACK, threads = cores",
    "LiteRT INT8": "full integer (representative dataset, TFLITE_BUILTINS_INT8), XNNPACK",
    "LiteRT dynamic range": "Optimize.DEFAULT without data: int8 weights, float activations, XNNPACK",
}
TFCPU_PATHS = ("tfcpu best, 2 instances", "tfcpu best, 1 instance")
INT8_PATHS = {"INC alone", "OpenVINO INT8", "tfcpu best, 2 instances", "tfcpu best, 1 instance", "ONNX Runtime INT8",
              "ONNX Runtime INT8, 2 instances", "LiteRT INT8", "LiteRT dynamic range"}  # fmt: skip
LITERT = {"LiteRT FP32": "fp32", "LiteRT INT8": "int8", "LiteRT dynamic range": "dynamic"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ResNet50", help="a tf.keras.applications name, or encoder")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=15.0, help="seconds timed per measurement")
    p.add_argument("--batch-size", type=int, default=None, help="default 16 (images), 8 (encoder)")
    p.add_argument("--calibration-batches", type=int, default=4)
    p.add_argument("--paths", default="", help="comma-separated path names (or prefixes) to run; default all")
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args(argv)
    if args.batch_size is None:
        args.batch_size = 8 if args.model.removeprefix("keras:") == "encoder" else 16
    return args


def selected(names: list[str], spec: str) -> list[str]:
    """The paths ``--paths`` names (exact names or prefixes, comma-separated); all when empty."""
    wanted = [w.strip() for w in spec.split(",") if w.strip()]
    picked = [n for n in names if not wanted or any(n == w or n.startswith(w) for w in wanted)]
    if not picked:
        raise SystemExit(f"--paths {spec!r} names none of: {', '.join(names)}")
    return picked


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


def tfcpu_best(fp32: Any, batches: list[dict[str, Any]], batch_size: int) -> Any:
    """GraphOptimizer.default() then Quantizer INT8 calibrated on the benchmark's own batches (the same
    the peers calibrate on)."""
    import numpy as np

    from tfcpu import GraphOptimizer, Quantizer

    optimised = GraphOptimizer.default().run(fp32).model
    data = {k.split(":")[0]: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    quantizer = Quantizer().int8().calibrate(data, batches=len(batches), batch_size=batch_size)
    return quantizer.optimize(False).run(optimised).model


def export_saved_model(keras_model: Any, work: Path) -> Path:
    saved = work / "saved_model"
    keras_model.export(str(saved), verbose=False)
    return saved


def openvino_fp32(saved: Path, work: Path) -> Path:
    import openvino as ov

    model = ov.convert_model(str(saved))
    xml = work / "ov_fp32.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)
    return xml


def openvino_int8(fp32_xml: Path, batches: list[dict[str, Any]], work: Path, transformer: bool) -> Path:
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(fp32_xml))
    if len(model.inputs) == 1:
        items: list[Any] = [next(iter(b.values())) for b in batches]
    else:  # by the IR's input names
        items = [{p.any_name: _by_name(b, p.get_names()) for p in model.inputs} for b in batches]
    extra = {"model_type": nncf.ModelType.TRANSFORMER} if transformer else {}
    quantized = nncf.quantize(model, nncf.Dataset(items), subset_size=len(items), **extra)
    xml = work / "ov_int8.xml"
    ov.save_model(quantized, str(xml), compress_to_fp16=False)
    return xml


def _by_name(feeds: dict[str, Any], names: Any) -> Any:
    base = {k.split(":")[0]: v for k, v in feeds.items()}
    return next(base[n.split(":")[0]] for n in names if n.split(":")[0] in base)


def make_batches(fp32: Any, n: int, batch_size: int) -> list[dict[str, Any]]:
    """``n`` batches by input name: tfcpu's synthetic data for float inputs; for token models, ids in
    [0, 100) and masks with padded tails (bench_transformer.token_feeds), one seed per batch."""
    from tfcpu.quantize.calibration import materialise

    if all(spec.dtype.startswith("float") for spec in fp32.inputs):
        return materialise(fp32, "synthetic", batches=n, batch_size=batch_size)
    from bench_transformer import token_feeds

    seq = int(fp32.inputs[0].shape[1])
    return [token_feeds(list(fp32.input_names), batch_size, seq, seed=100 + i) for i in range(n)]


def tf_outputs(model: Any, feeds: dict[str, Any]) -> Any:
    """The first output of a frozen Model run once in a plain TF session on ``feeds``."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(model.graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return session.run(model.output_names[0], {(k if ":" in k else f"{k}:0"): v for k, v in feeds.items()})


def ov_outputs(xml: Path, feeds: dict[str, Any], precision: str) -> tuple[Any, tuple[str, str]]:
    """OpenVINO's first output on ``feeds`` and (precision, detail) of its compiled runtime layers."""
    import openvino as ov

    from tfcpu.runtime.backends._openvino_util import compiled_precisions, precision_label

    core = ov.Core()
    model = core.read_model(str(xml))
    arrays = [_by_name(feeds, p.get_names()) if len(model.inputs) > 1 else next(iter(feeds.values()))
              for p in model.inputs]  # fmt: skip
    model.reshape({p.any_name: list(a.shape) for p, a in zip(model.inputs, arrays, strict=True)})
    config = {"INFERENCE_PRECISION_HINT": "f32"} if precision == "f32" else {}
    compiled = core.compile_model(model, "CPU", config)
    out = compiled.create_infer_request().infer(dict(enumerate(arrays)))
    layers = compiled_precisions(compiled)
    return next(iter(out.values())), (precision_label(layers), ", ".join(f"{v} {k}" for k, v in layers.items()))


def prepare(
    args: argparse.Namespace, work: Path, results: dict[str, PathResult], checks: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Build every artefact and check its outputs against TensorFlow's; a failed step marks the paths
    that need it as failed. ``checks[path]``: "ran" (precision, detail) and "agreement"."""
    import _peer_tools as pt
    import numpy as np

    import tfcpu
    from tfcpu.demo._measure import graph_precision
    from tfcpu.topology import Topology

    topo = Topology.detect()
    cores = max(1, topo.usable_physical_cores)
    encoder = args.model.removeprefix("keras:") == "encoder"
    keras_model, keras_path = build_keras(args.model, work)
    fp32 = tfcpu.load(keras_model)
    all_batches = make_batches(fp32, args.calibration_batches + 1, args.batch_size)
    batches, check = all_batches[:-1], all_batches[-1]  # the check batch is not in the calibration
    feeds_npz = work / "feeds.npz"
    np.savez(feeds_npz, **{k.split(":")[0]: v for k, v in check.items()})
    reference = tf_outputs(fp32, check)
    art: dict[str, Any] = {"keras": keras_path, "fp32": fp32, "feeds": feeds_npz, "cores": cores}

    def record(path: str, out: Any, ran: tuple[str, str]) -> None:
        checks[path] = {"ran": ran, "agreement": pt.agreement(reference, out, int8=path in INT8_PATHS)}

    def tf_checked(paths: tuple[str, ...], model: Any) -> Any:
        out = tf_outputs(model, check)
        for path in paths:
            record(path, out, graph_precision(model))
        return model

    def ort_fp32() -> Path:
        path = work / "model.onnx"
        art["onnx_info"] = pt.onnx_from_graph(fp32, path)
        session, ran = pt.ort_ran(path, cores)
        record("ONNX Runtime FP32", session.run(None, pt.ort_feeds(session, check))[0], ran)
        return path

    def ort_int8() -> Path:
        session = pt.ort_session(art["onnx"], 1)
        path = work / "model_int8.onnx"
        art["ort_int8_info"] = pt.ort_int8(art["onnx"], path, [pt.ort_feeds(session, b) for b in batches], topo.isa)
        session, ran = pt.ort_ran(path, cores)
        out = session.run(None, pt.ort_feeds(session, check))[0]
        for name in ("ONNX Runtime INT8", "ONNX Runtime INT8, 2 instances"):
            record(name, out, ran)
        return path

    def litert(name: str) -> Path:
        path = pt.litert_convert(art["saved"], LITERT[name], batches, work / f"model_{LITERT[name]}.tflite")
        interpreter = pt.litert_interpreter(path, cores, args.batch_size)
        record(name, pt.litert_run(interpreter, check)[0], pt.litert_ran(interpreter))
        return path

    def ov(key: str, name: str, precision: str) -> None:
        out, ran = ov_outputs(art[key], check, precision)
        record(name, out, ran)

    def keras_check() -> Path:
        out = keras_model.predict([check[n] for n in fp32.input_names] if encoder else check[fp32.input_names[0]],
                                  batch_size=args.batch_size, verbose=0)  # fmt: skip
        record("Keras predict", out, ("fp32", "Keras 3 model.predict"))
        return keras_path

    steps: list[tuple[str, tuple[str, ...], Callable[[], Any]]] = [
        ("keras_check", ("Keras predict",), keras_check),
        ("fp32_check", ("frozen, TF defaults",), lambda: tf_checked(("frozen, TF defaults",), fp32)),
        ("transformed", ("TF graph_transforms",), lambda: tf_checked(("TF graph_transforms",), paper_transforms(fp32))),
        ("inc", ("INC alone",), lambda: tf_checked(("INC alone",), inc_alone(fp32, batches))),
        ("tfcpu", TFCPU_PATHS, lambda: tf_checked(TFCPU_PATHS, tfcpu_best(fp32, batches, args.batch_size))),
        ("saved", ("OpenVINO FP32", "OpenVINO INT8", *LITERT), lambda: export_saved_model(keras_model, work)),
        ("ov_fp32", ("OpenVINO FP32", "OpenVINO INT8"), lambda: openvino_fp32(art["saved"], work)),
        ("ov_fp32_check", ("OpenVINO FP32",), lambda: ov("ov_fp32", "OpenVINO FP32", "f32")),
        ("ov_int8", ("OpenVINO INT8",), lambda: openvino_int8(art["ov_fp32"], batches, work, encoder)),
        ("ov_int8_check", ("OpenVINO INT8",), lambda: ov("ov_int8", "OpenVINO INT8", "default")),
        ("onnx", ("ONNX Runtime FP32", "ONNX Runtime INT8", "ONNX Runtime INT8, 2 instances"), ort_fp32),
        ("ort_int8", ("ONNX Runtime INT8", "ONNX Runtime INT8, 2 instances"), ort_int8),
        *((f"litert_{LITERT[n]}", (n,), lambda n=n: litert(n)) for n in LITERT),
    ]
    for key, users, build in steps:
        if all(u not in results for u in users) or any(results[u].status != "ok" for u in users if u in results):
            continue
        t0 = time.monotonic()
        try:
            art[key] = build()
        except Exception as exc:  # noqa: BLE001 - a failed preparation fails its paths only
            for u in users:
                if u in results:
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
        return child(python_child(str(HERE / "_ov_child.py"), art[key], b, d, WARMUP, precision, out, art["feeds"]))

    def peer(kind: str, key: str, threads: int, instances: int) -> float:
        argv = python_child(str(HERE / "_peer_child.py"), kind, art[key], b, d, WARMUP, threads, instances,
                            art["feeds"], out)  # fmt: skip
        return child(argv)

    cores = art["cores"]

    table: dict[str, Callable[[], float]] = {
        "Keras predict": lambda: child(python_child("tfcpu.demo._predict", art["keras"], b, d, WARMUP, out)),
        "frozen, TF defaults": lambda: tf_graph(art["fp32"], one, {}, (0, 0)),
        "TF graph_transforms": lambda: tf_graph(art["transformed"], one, {}, (0, 0)),
        "INC alone": lambda: tf_graph(art["inc"], one, ONEDNN, (0, 0)),
        "OpenVINO FP32": lambda: ov("ov_fp32", "f32"),
        "OpenVINO INT8": lambda: ov("ov_int8", "default"),
        "tfcpu best, 2 instances": lambda: tf_graph(art["tfcpu"], two, ONEDNN, None),
        "tfcpu best, 1 instance": lambda: tf_graph(art["tfcpu"], one, ONEDNN, None),
        "ONNX Runtime FP32": lambda: peer("ort", "onnx", cores, 1),
        "ONNX Runtime INT8": lambda: peer("ort", "ort_int8", cores, 1),
        "ONNX Runtime INT8, 2 instances": lambda: peer("ort", "ort_int8", max(1, cores // 2), 2),
        **{name: (lambda m=m: peer("litert", f"litert_{m}", cores, 1)) for name, m in LITERT.items()},
    }
    return lambda name: table[name]()


# -- report ------------------------------------------------------------------------------------------
PEER_FAMILIES = {
    "OpenVINO": ("OpenVINO FP32", "OpenVINO INT8"),
    "ONNX Runtime": ("ONNX Runtime FP32", "ONNX Runtime INT8", "ONNX Runtime INT8, 2 instances"),
    "LiteRT": tuple(LITERT),
}


def best_of(results: dict[str, PathResult], names: tuple[str, ...]) -> PathResult | None:
    """The row with the highest median among ``names`` that ran."""
    ok = [results[n] for n in names if n in results and results[n].status == "ok" and results[n].samples]
    return max(ok, key=lambda r: r.median) if ok else None


def headline(results: dict[str, PathResult]) -> tuple[float, str, float]:
    """(best tfcpu median, its path name, best / OpenVINO INT8)."""
    best = best_of(results, TFCPU_PATHS)
    if best is None:
        return float("nan"), "", float("nan")
    ov = results.get("OpenVINO INT8")
    return best.median, best.name, ratio(best.median, ov.median if ov and ov.samples else float("nan"))


def print_peer_table(
    title: str, results: dict[str, PathResult], checks: dict[str, dict[str, Any]], best: float, unit: str,
    best_samples: list[float] | None,
) -> None:  # fmt: skip
    """The table: throughput columns (``_common.table_rows``) + what ran + the check against TensorFlow."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("path", f"median {unit}", "min–max (±spread)", "tfcpu best / path", "ran as", "vs TensorFlow", "note"):
        table.add_column(col, justify="left" if col in ("path", "ran as", "vs TensorFlow", "note") else "right")
    for row in table_rows(list(results.values()), best, best_samples):
        check = checks.get(row[0], {})
        precision, detail = check.get("ran", ("", ""))
        ran = f"{precision}: {detail}" if detail else precision
        agreement = check.get("agreement")
        versus = "reference" if row[0] == "frozen, TF defaults" else (agreement.text() if agreement else "")
        table.add_row(row[0], row[1], row[2], row[3], ran[:70], versus, row[4])
    Console(width=250).print(table)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    saved_onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"  # INC needs oneDNN while quantising; set before TF starts
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    results = {name: PathResult(name, PATHS[name]) for name in selected(list(PATHS), args.paths)}
    checks: dict[str, dict[str, Any]] = {}
    packages = ("tensorflow", "keras", "neural-compressor", "openvino", "nncf", "onnxruntime", "tf2onnx", "onnx",
                "ai-edge-litert", "tfcpu")  # fmt: skip
    record = machine_record(packages)
    with tempfile.TemporaryDirectory(prefix="tfcpu-peers-") as tmp:
        work = Path(tmp)
        art = prepare(args, work, results, checks)
        # children inherit os.environ: give the FP32 "TF defaults" paths the user's own setting back
        if saved_onednn is None:
            os.environ.pop("TF_ENABLE_ONEDNN_OPTS")
        else:
            os.environ["TF_ENABLE_ONEDNN_OPTS"] = saved_onednn
        measure_rounds(results, make_measure(args, art, work), args.rounds)
    best, best_name, vs_ov = headline(results)
    unit = "seq/s" if args.model.removeprefix("keras:") == "encoder" else "img/s"
    title = (
        f"{args.model}, batch {args.batch_size}, {args.rounds} round(s) × {args.duration:g} s · "
        f"{record['machine']} · {record['date']}"
    )
    best_samples = results[best_name].samples if best_name else None
    print_peer_table(title, results, checks, best, unit, best_samples)
    print(", ".join(f"{k} {v}" for k, v in record["versions"].items()))
    import _peer_tools as pt

    print(pt.tolerance_text())
    if "ort_int8_info" in art:
        info = art["ort_int8_info"]
        print(f"ONNX Runtime INT8 settings: {info['quant_format']}, activations {info['activation_type']}, "
              f"weights {info['weight_type']} per-channel={info['per_channel']}, reduce_range={info['reduce_range']} "
              f"({info['why']}); {info['pre_process']}; in the file: {info['file_ops']}")  # fmt: skip
    if "onnx_info" in art:
        print(f"tf2onnx: opset {art['onnx_info']['opset']}, {art['onnx_info']['erfc_rewritten']} Erfc rewritten")
    summary = {}
    for family, names in PEER_FAMILIES.items():
        peer = best_of(results, names)
        if peer is None or not best_samples:
            continue
        summary[family] = {"best_path": peer.name, "tfcpu_best_vs": ratio(best, peer.median)}
        mark = noise_mark(best_samples, peer.samples)
        print(f"tfcpu best / {family} best ({peer.name}) = {fmt_ratio(ratio(best, peer.median))}{mark}")
    print(f"tfcpu best: {best_name or 'failed'} (goal ≥ 1.0× every peer)")
    check = checks[best_name]["agreement"] if best_name in checks else None
    if check is not None and not check.ok:
        print(f"tfcpu best is beyond the accuracy tolerance here (cos {check.cosine:.5f}): "
              "its ratios compare speed only")  # fmt: skip
    if args.json:
        write_json(
            args.json,
            {
                **record,
                "model": args.model,
                "batch_size": args.batch_size,
                "rounds": args.rounds,
                "duration": args.duration,
                "paths": [
                    {
                        **r.to_dict(),
                        "ran": checks.get(r.name, {}).get("ran"),
                        "agreement": (checks[r.name]["agreement"].to_dict() if r.name in checks else None),
                    }
                    for r in results.values()
                ],
                "tfcpu_best": best_name,
                "tfcpu_best_vs_openvino_int8": vs_ov,
                "tfcpu_best_vs_peers": summary,
                "ort_int8": art.get("ort_int8_info"),
                "onnx": art.get("onnx_info"),
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
