"""tfcpu's OpenVINO backend vs a plain OpenVINO + NNCF script vs tfcpu's TensorFlow backend, in one run.

    python benchmarks/bench_openvino.py [--models ResNet50,MobileNetV2] [--rounds 3] [--duration 15]
                                        [--batch-size 16] [--calibration-batches 4] [--json OUT]

Models: ``tf.keras.applications.<name>(weights=None)`` with trained-like numbers (every batch norm's
γ, β, moving mean and variance and every bias randomised, seeded). Per model and precision
(FP32; BF16 only where the CPU has AVX512_BF16 or AMX_BF16; INT8), three paths:

* **peer**: what a user writes without tfcpu — ``openvino.convert_model`` on the exported SavedModel,
  ``nncf.quantize`` for INT8, THROUGHPUT hint, an AsyncInferQueue (``benchmarks/_ov_child.py``; FP32 forces
  ``INFERENCE_PRECISION_HINT=f32``, BF16 is OpenVINO's default precision on such CPUs, INT8 its default);
* **tfcpu OpenVINO**: ``tfcpu.load(keras)`` → the OpenVINO backend (in-memory conversion, first-use check,
  THROUGHPUT hint, AsyncInferQueue); INT8 = ``Quantizer().int8().backend("openvino")`` saved as IR;
* **tfcpu TF**: the TensorFlow backend, one instance (``GraphOptimizer.default()`` FP32; ``Quantizer().bf16()``;
  ``Quantizer().int8()`` through INC).

Every measurement runs in a fresh child; rounds rotate the order; the table shows medians, min–max and
ratios; the labels of the OpenVINO rows are read back from the compiled models (what ran). Calibration is
synthetic (speed only; accuracy is tested in tests/integration/test_openvino.py).
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
    machine_record,
    measure_rounds,
    print_table,
    python_child,
    ratio,
    run_json_child,
    write_json,
)
from peers import openvino_fp32, openvino_int8  # noqa: E402 - the peer's preparation, written once

WARMUP = 3
ONEDNN = {"TF_ENABLE_ONEDNN_OPTS": "1"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="ResNet50,MobileNetV2", help="comma-separated tf.keras.applications names")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=15.0, help="seconds timed per measurement")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--calibration-batches", type=int, default=4)
    p.add_argument("--json", metavar="OUT")
    p.add_argument("--child", nargs=6, metavar=("MODEL", "BATCH", "DURATION", "WARMUP", "PRECISION", "OUT"))
    return p.parse_args(argv)


# -- the tfcpu OpenVINO backend child -----------------------------------------------------------------
def child(model_path: str, batch: int, duration: float, warmup: int, precision: str, out: str) -> int:
    """Time ``model_path`` (.pb or .xml) with tfcpu's OpenVINO backend; write throughput + describe()."""
    import tfcpu
    from tfcpu.runtime.backends.openvino import OpenVinoBackend
    from tfcpu.runtime.feeds import synthetic_batch

    model = tfcpu.load(model_path)
    backend = OpenVinoBackend(model, None, {"hint": "throughput", "precision": precision})
    backend.activate()
    feed = synthetic_batch(model, batch, seed=0)
    ordered = [feed[n] for n in model.input_names]
    backend.warm(ordered, warmup)

    def feeds() -> Any:
        while True:
            yield ordered

    timing = backend.timed(feeds(), deadline=time.monotonic() + duration)
    write_json(out, {"throughput": timing.throughput, "items": timing.items, "describe": backend.describe()})
    return 0


# -- preparation ---------------------------------------------------------------------------------------
def randomise(model: Any, seed: int = 0) -> Any:
    """Trained-like numbers: random batch-norm statistics and biases (random-weight Keras models have
    identity batch norms and zero biases, which hides what a backend folds or drops).

    TODO(lead): use the dispatch helper's shared randomised-weights helper once it is on main.
    """
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            weights = layer.get_weights()
            n = weights[0].shape[0]
            values = [rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), rng.normal(0, 0.3, n), rng.uniform(0.5, 2, n)]
            layer.set_weights([v.astype("float32") for v in values[-len(weights) :]])
        elif getattr(layer, "use_bias", False) and getattr(layer, "bias", None) is not None:
            weights = layer.get_weights()
            weights[-1] = rng.normal(0, 0.1, weights[-1].shape).astype("float32")
            layer.set_weights(weights)
    return model


def ov_precision_of(xml: Path, hint: str) -> str:
    """What OpenVINO runs an IR in under ``hint`` ('f32' or 'default'): read from its compiled layers."""
    import openvino as ov

    from tfcpu.runtime.backends._openvino_util import compiled_precisions, precision_label

    config = {"PERFORMANCE_HINT": "THROUGHPUT"} | ({"INFERENCE_PRECISION_HINT": "f32"} if hint == "f32" else {})
    return precision_label(compiled_precisions(ov.Core().compile_model(str(xml), "CPU", config)))


def prepare_model(name: str, args: argparse.Namespace, work: Path, precisions: list[str]) -> dict[str, Any]:
    """Every artefact of one model: keys ``<path>/<precision>`` -> file or Model, plus ``labels``."""
    import keras

    import tfcpu
    from tfcpu.graph.load import resolve_application
    from tfcpu.quantize.calibration import materialise

    keras.utils.set_random_seed(0)
    keras_model = randomise(resolve_application(name))
    fp32 = tfcpu.load(keras_model)
    batches = materialise(fp32, "synthetic", batches=args.calibration_batches, batch_size=args.batch_size)
    d = work / name
    d.mkdir()
    art: dict[str, Any] = {"labels": {}}
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("peer/fp32", lambda: openvino_fp32(keras_model, d)),
        ("tfcpu-ov/fp32", lambda: fp32.save(d / "fp32.pb")),
        ("tfcpu-tf/fp32", lambda: tfcpu.GraphOptimizer.default().run(fp32).model),
    ]
    if "bf16" in precisions:
        steps += [
            ("peer/bf16", lambda: art["peer/fp32"]),
            ("tfcpu-ov/bf16", lambda: art["tfcpu-ov/fp32"]),
            ("tfcpu-tf/bf16", lambda: tfcpu.Quantizer().bf16().run(fp32).model),
        ]
    q = tfcpu.Quantizer().int8().calibrate("synthetic", batches=args.calibration_batches, batch_size=args.batch_size)
    steps += [
        ("peer/int8", lambda: openvino_int8(art["peer/fp32"], batches, d)),
        ("tfcpu-ov/int8", lambda: q.backend("openvino").run(fp32).model.save(d / "tfcpu_int8.xml")),
        ("tfcpu-tf/int8", lambda: q.run(fp32).model),
    ]
    for key, build in steps:
        t0 = time.monotonic()
        try:
            art[key] = build()
        except Exception as exc:  # noqa: BLE001 - a failed preparation fails its path only
            art[key] = exc
        print(f"{name}: prepared {key} in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    for precision, hint in (("fp32", "f32"), ("bf16", "default"), ("int8", "default")):
        xml = art.get(f"peer/{precision}")
        if isinstance(xml, Path):
            art["labels"][f"peer/{precision}"] = ov_precision_of(xml, hint)
    return art


# -- measurement ---------------------------------------------------------------------------------------
def make_measure(
    args: argparse.Namespace, arts: dict[str, dict[str, Any]], work: Path, labels: dict[str, str]
) -> Callable[[str], float]:
    """``measure(row)`` for measure_rounds; the tfcpu OpenVINO rows record what ran into ``labels``."""
    from tfcpu.plan import InstancePlan
    from tfcpu.runtime.multi import run_instances
    from tfcpu.topology import Topology

    one = InstancePlan.for_topology(Topology.detect(), instances=1)
    out = work / "child.json"
    b, d = args.batch_size, args.duration

    def measure(row: str) -> float:
        model_name, path, precision = row.split(" · ")
        art = arts[model_name][f"{path}/{precision}"]
        if isinstance(art, Exception):
            raise RuntimeError(f"preparation failed: {type(art).__name__}: {art}".splitlines()[0])
        if path == "peer":
            hint = "f32" if precision == "fp32" else "default"
            argv = python_child(str(HERE / "_ov_child.py"), art, b, d, WARMUP, hint, out)
            return float(run_json_child(argv, out, child_env(), timeout=10 * d + 600)["throughput"])
        if path == "tfcpu-ov":
            argv = python_child(
                str(Path(__file__)), "--child", art, b, d, WARMUP, "bf16" if precision == "bf16" else "f32", out
            )
            data = run_json_child(argv, out, child_env(), timeout=10 * d + 900)
            labels[row] = str(data["describe"]["precision"])
            return float(data["throughput"])
        env = ONEDNN if precision != "fp32" else {}
        res = run_instances(art, one, batch_size=b, warmup=WARMUP, duration=d, env=env)
        if res.partial:
            raise RuntimeError(f"instance {res.failed[0].index}: {res.failed[0].error}")
        return float(res.throughput)

    return measure


def rows_for(models: list[str], precisions: list[str]) -> dict[str, PathResult]:
    names = {"peer": "plain OpenVINO + NNCF", "tfcpu-ov": "tfcpu OpenVINO backend", "tfcpu-tf": "tfcpu TF backend"}
    out: dict[str, PathResult] = {}
    for model in models:
        for precision in precisions:
            for path, desc in names.items():
                row = f"{model} · {path} · {precision}"
                out[row] = PathResult(row, f"{desc}, {precision}")
    return out


def ratios(results: dict[str, PathResult], models: list[str], precisions: list[str]) -> list[dict[str, Any]]:
    """Per model and precision: tfcpu-OV / peer and tfcpu-OV / tfcpu-TF; per model: best tfcpu / best peer."""
    out = []
    for model in models:
        med = {key.split(" · ", 1)[1]: r.median if r.samples else float("nan") for key, r in results.items()
               if key.startswith(model + " · ")}  # fmt: skip
        for precision in precisions:
            ov, peer, tf = (med.get(f"{p} · {precision}", float("nan")) for p in ("tfcpu-ov", "peer", "tfcpu-tf"))
            out.append(
                {"model": model, "precision": precision, "ov_vs_peer": ratio(ov, peer), "ov_vs_tf": ratio(ov, tf)}
            )
        best_tfcpu = max((v for k, v in med.items() if k.startswith("tfcpu") and v == v), default=float("nan"))
        best_peer = max((v for k, v in med.items() if k.startswith("peer") and v == v), default=float("nan"))
        out.append({"model": model, "precision": "best", "best_tfcpu_vs_best_peer": ratio(best_tfcpu, best_peer)})
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        m, b, d, w, p, o = args.child
        return child(m, int(b), float(d), int(w), p, o)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tfcpu.topology import Topology

    topo = Topology.detect()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    precisions = ["fp32", *(["bf16"] if topo.precisions["bf16"].accelerated else []), "int8"]
    record = machine_record(("tensorflow", "openvino", "nncf", "neural-compressor", "tfcpu"))
    results = rows_for(models, precisions)
    with tempfile.TemporaryDirectory(prefix="tfcpu-bench-ov-") as tmp:
        work = Path(tmp)
        arts = {m: prepare_model(m, args, work, precisions) for m in models}
        labels: dict[str, str] = {}
        measure_rounds(results, make_measure(args, arts, work, labels), args.rounds)
    for m, art in arts.items():
        labels.update({f"{m} · {k.replace('/', ' · ')}": v for k, v in art["labels"].items()})
    for row, res in results.items():
        if row in labels and res.status == "ok":
            res.note = f"ran {labels[row]}"
    isa = ", ".join(f for f in topo.isa if f.startswith(("avx512", "amx", "avx_vnni")))
    title = f"batch {args.batch_size}, {args.rounds} round(s) × {args.duration:g} s · {record['machine']}"
    title += f" · {record['date']}"
    best = max((r.median for r in results.values() if r.samples), default=float("nan"))
    print_table(title, list(results.values()), best, best_label="fastest")
    print(f"ISA: {isa or 'no AVX-512/AMX'}; BF16 rows: {'yes' if 'bf16' in precisions else 'no (not accelerated)'}")
    print(", ".join(f"{k} {v}" for k, v in record["versions"].items()))
    table = ratios(results, models, precisions)
    for r in table:
        if r["precision"] == "best":
            print(f"{r['model']}: best tfcpu / best peer = {fmt_ratio(r['best_tfcpu_vs_best_peer'])} (goal ≥ 1.0×)")
        else:
            print(
                f"{r['model']} {r['precision']}: tfcpu OpenVINO / peer = {fmt_ratio(r['ov_vs_peer'])} (goal ≥ 0.97×), "
                f"tfcpu OpenVINO / tfcpu TF = {fmt_ratio(r['ov_vs_tf'])}"
            )
    if args.json:
        write_json(args.json, {**record, "isa": list(topo.isa), "batch_size": args.batch_size, "rounds": args.rounds,
                               "duration": args.duration, "paths": [r.to_dict() for r in results.values()],
                               "ratios": table})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
