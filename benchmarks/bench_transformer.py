"""Issue 18: the Keras 3 encoder through TensorFlow, tfcpu and OpenVINO, in one run (sequences/s, p99 at batch 1).

    python benchmarks/bench_transformer.py [--rounds 3] [--duration 10] [--batch-size 8] [--seq 128]
        [--layers 4] [--width 256] [--json OUT]

The model: ``tests/transformer_models.frozen("keras3", layers, width)``, a Keras 3 encoder with a dynamic
sequence length, int32 ``token_ids`` and ``mask`` inputs and trained-like (randomised) LayerNorm and
biases. Fifteen rows, each timed at ``--batch-size`` x ``--seq``:

1. **TF FP32 as loaded**: the frozen graph in a plain ``tf.compat.v1.Session`` with TensorFlow's own
   defaults (threads, oneDNN); no tfcpu in the child;
2. **tfcpu TF FP32**: ``GraphOptimizer.default()`` through ``run_instances`` (one instance of
   ``InstancePlan.for_topology(..., instances=1)``: tfcpu's threads and oneDNN policy);
3. **tfcpu TF BF16**: ``Quantizer().bf16()``, the same way (only where AVX512_BF16/AMX_BF16 is there);
4. **tfcpu TF INT8**: ``Quantizer().int8()`` calibrated on 4 batches, the same way (the policy turns
   oneDNN on for the quantised graph);
5. **tfcpu TF INT8+BF16**: the same INT8 plan with ``.remainder("bf16")`` (the attention Einsums,
   Softmax and mask in BF16; only where BF16 is accelerated);
6.-8. **tfcpu TF FP32/BF16/INT8 multi-instance**: the graphs of rows 2-4 as pinned instances
   (``tfcpu.demo.default_instances``: 2 on 2 cores, one thread each), the paper's step 5 and the like
   of OpenVINO's THROUGHPUT streams; throughput only (a request's latency is the single-instance row's);
9.-12. **tfcpu OpenVINO FP32/BF16/INT8/INT8+BF16**: tfcpu's OpenVINO backend (THROUGHPUT hint, its ring
   of infer requests) on the as-loaded graph with precision f32 / bf16, and on
   ``Quantizer().int8().backend("openvino")``'s IR compiled with f32 / bf16 for NNCF's float layers;
13.-15. **OpenVINO peer FP32/BF16/INT8**: what a user writes without tfcpu: ``openvino.convert_model`` of
   the as-loaded ``.pb``, every input reshaped to the static ``[batch, seq]``, THROUGHPUT hint, an
   ``AsyncInferQueue``; FP32 forces ``INFERENCE_PRECISION_HINT=f32``, BF16 is OpenVINO's default precision
   on a BF16 CPU, INT8 is ``nncf.quantize(model_type=TRANSFORMER)`` on the same 4 calibration batches.

Every measurement runs in a fresh child; ``--rounds`` rounds rotate the order; the table shows medians
and the min-max over the rounds. Each row has a second, short measurement in the same kind of child:
batch-1 requests one at a time for half the duration, whose p99 is the latency column (the OpenVINO rows
compile that one with the LATENCY hint, which is what a latency-bound user sets; the TF rows use the
same threads as their throughput run).

Labels are what ran: a TF row's precision is read from its graph's ops, an OpenVINO row's from the
compiled model's runtime layers (inside the child, before the timed region); a row whose graph or
compiled model does not hold the precision asked for fails with that reason and is not timed. A failed
preparation or child fails its row only. Calibration data are synthetic tokens with padded masks: the
numbers are speed, not accuracy.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _common import (  # noqa: E402
    PathResult,
    child_env,
    fmt_compared,
    fmt_ratio,
    fmt_spread,
    machine_record,
    measure_rounds,
    noise_mark,
    python_child,
    ratio,
    run_json_child,
    summarise,
    write_json,
)

WARMUP = 3
CALIBRATION_BATCHES = 4
PACKAGES = ("tensorflow", "keras", "openvino", "nncf", "neural-compressor", "tfcpu")

# row -> (kind, asked precision); kind: "tf" plain session child, "instances" run_instances,
# "tfcpu-ov" tfcpu's OpenVINO backend child, "peer" the plain OpenVINO child.
ROWS: dict[str, tuple[str, str]] = {
    "TF FP32 as loaded": ("tf", "fp32"),
    "tfcpu TF FP32": ("instances", "fp32"),
    "tfcpu TF BF16": ("instances", "bf16"),
    "tfcpu TF INT8": ("instances", "int8"),
    "tfcpu TF INT8+BF16": ("instances", "int8"),
    "tfcpu TF FP32 multi-instance": ("multi", "fp32"),
    "tfcpu TF BF16 multi-instance": ("multi", "bf16"),
    "tfcpu TF INT8 multi-instance": ("multi", "int8"),
    "tfcpu OpenVINO FP32": ("tfcpu-ov", "fp32"),
    "tfcpu OpenVINO BF16": ("tfcpu-ov", "bf16"),
    "tfcpu OpenVINO INT8": ("tfcpu-ov", "int8"),
    "tfcpu OpenVINO INT8+BF16": ("tfcpu-ov", "int8"),
    "OpenVINO peer FP32": ("peer", "fp32"),
    "OpenVINO peer BF16": ("peer", "bf16"),
    "OpenVINO peer INT8": ("peer", "int8"),
}
# rows that need a CPU with AVX512_BF16/AMX_BF16 (the "+BF16" rows are INT8 graphs with a BF16 remainder)
NEEDS_BF16 = {row for row, (_, precision) in ROWS.items() if precision == "bf16" or row.endswith("+BF16")}
DESCRIPTIONS = {
    "tf": "frozen graph, tf.compat.v1.Session, TensorFlow's defaults",
    "instances": "tfcpu TF backend, run_instances, one instance",
    "multi": "tfcpu TF backend, run_instances, pinned instances (the paper's step 5)",
    "tfcpu-ov": "tfcpu OpenVINO backend, THROUGHPUT hint",
    "peer": "openvino.convert_model (+ nncf), static [batch, seq], THROUGHPUT, AsyncInferQueue",
}
# OpenVINO compile precision per row: what the OpenVINO rows ask for ("default": OpenVINO's own choice)
OV_ASK = {
    "tfcpu OpenVINO FP32": "f32",
    "tfcpu OpenVINO BF16": "bf16",
    "tfcpu OpenVINO INT8": "f32",  # INT8 comes from the IR; tfcpu keeps the rest f32, as bench_openvino
    "tfcpu OpenVINO INT8+BF16": "bf16",  # Quantizer().remainder("bf16"): what NNCF left in float runs BF16
    "OpenVINO peer FP32": "f32",
    "OpenVINO peer BF16": "default",
    "OpenVINO peer INT8": "default",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=10.0, help="seconds timed per throughput measurement")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq", type=int, default=128, help="sequence length of every batch")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--json", metavar="OUT")
    p.add_argument("--child", metavar="SPEC", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# -- inputs ------------------------------------------------------------------------------------------
def token_feeds(names: list[str], batch: int, seq: int, seed: int = 0) -> dict[str, Any]:
    """Token ids in [0, VOCAB) and attention masks with padded tails (the first sequence full), by name."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lengths = rng.integers(seq // 2, seq + 1, batch)
    lengths[0] = seq
    out: dict[str, Any] = {}
    for name in names:
        if "mask" in name:
            out[name] = (np.arange(seq)[None, :] < lengths[:, None]).astype("int32")
        else:
            out[name] = rng.integers(0, 100, (batch, seq)).astype("int32")
    return out


# -- children ----------------------------------------------------------------------------------------
def _sequential(call: Callable[[], Any], seconds: float) -> tuple[list[float], float]:
    """One request at a time for ``seconds`` (at least 5): per-request seconds and the wall time."""
    latencies: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        call()
        t1 = time.perf_counter()
        latencies.append(t1 - t0)
        if t1 - start >= seconds and len(latencies) >= 5:
            return latencies, t1 - start


def _summary(latencies: list[float], seconds: float, batch: int) -> dict[str, Any]:
    import numpy as np

    return {
        "throughput": len(latencies) * batch / seconds,
        "p99_ms": float(np.percentile(latencies, 99)) * 1000,
        "requests": len(latencies),
        "seconds": seconds,
    }


def _child_tf(spec: dict[str, Any]) -> dict[str, Any]:
    """The frozen graph in a plain TF1 session with TensorFlow's defaults (no tfcpu import before timing)."""
    import tensorflow as tf
    from tensorflow.python.util import _pywrap_util_port

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(Path(spec["path"]).read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    session = tf.compat.v1.Session(graph=graph)
    feeds = token_feeds(spec["inputs"], spec["batch"], spec["seq"], seed=1)
    fetches = spec["outputs"]
    for _ in range(WARMUP):
        session.run(fetches, feed_dict=feeds)
    latencies, seconds = _sequential(lambda: session.run(fetches, feed_dict=feeds), spec["duration"])
    return {**_summary(latencies, seconds, spec["batch"]), "onednn": bool(_pywrap_util_port.IsMklEnabled())}


def _ov_layers(compiled: Any, expect: str) -> dict[str, Any]:
    """What the compiled model runs; raises (the row fails, untimed) when it is not ``expect``."""
    from tfcpu.runtime.backends._openvino_util import compiled_precisions, precision_label

    layers = compiled_precisions(compiled)
    label = precision_label(layers)
    if label != expect:
        raise RuntimeError(f"the compiled model runs {label}, not {expect} ({_layer_mix(layers)}): not timed")
    return {"precision": label, "compute_layers": layers}


def _child_peer(spec: dict[str, Any]) -> dict[str, Any]:
    """Plain OpenVINO: read the IR, reshape every input to [batch, seq], compile, AsyncInferQueue."""
    import openvino as ov

    batch, seq = spec["batch"], spec["seq"]
    core = ov.Core()
    model = core.read_model(spec["path"])
    model.reshape({port.get_any_name(): [batch, seq] for port in model.inputs})
    config = {"PERFORMANCE_HINT": "THROUGHPUT" if spec["mode"] == "throughput" else "LATENCY"}
    if spec["ov_precision"] == "f32":
        config["INFERENCE_PRECISION_HINT"] = "f32"
    compiled = core.compile_model(model, "CPU", config)
    ran = _ov_layers(compiled, spec["expect"])
    feeds = token_feeds([p.get_any_name() for p in compiled.inputs], batch, seq, seed=1)
    request = compiled.create_infer_request()
    for _ in range(WARMUP):
        request.infer(feeds)
    if spec["mode"] == "latency":
        latencies, seconds = _sequential(lambda: request.infer(feeds), spec["duration"])
        return {**_summary(latencies, seconds, 1), **ran, "config": config}
    queue = ov.AsyncInferQueue(compiled, 0)  # 0: OpenVINO's optimal number of requests
    submitted = 0
    start = time.perf_counter()
    while time.perf_counter() - start < spec["duration"]:
        queue.start_async(feeds)
        submitted += 1
    queue.wait_all()
    seconds = time.perf_counter() - start
    return {
        "throughput": submitted * batch / seconds,
        "requests": submitted,
        "seconds": seconds,
        "infer_requests": len(queue),
        **ran,
        "config": config,
    }


def _child_tfcpu_ov(spec: dict[str, Any]) -> dict[str, Any]:
    """tfcpu's OpenVINO backend on a .pb (converted in memory) or a tfcpu INT8 IR."""
    import tfcpu
    from tfcpu.runtime.backends._base import timed_loop
    from tfcpu.runtime.backends.openvino import OpenVinoBackend
    from tfcpu.runtime.feeds import synthetic_batch

    batch, seq = spec["batch"], spec["seq"]
    model = tfcpu.load(spec["path"])
    shapes = {name: (batch, seq) for name in model.input_names}
    options = {"hint": "throughput" if spec["mode"] == "throughput" else "latency", "precision": spec["ov_precision"]}
    backend = OpenVinoBackend(model, None, options)
    backend.activate()  # the first-use check against TF FP32 (an unknown sequence length is checked at 16)
    ordered = [synthetic_batch(model, batch, seed=0, shapes=shapes)[n] for n in model.input_names]
    backend.warm(ordered, WARMUP)  # compiles for the static [batch, seq] shapes here, outside the timing
    describe = backend.describe()
    if describe["precision"] != spec["expect"]:
        mix = _layer_mix(describe["compute_layers"])
        raise RuntimeError(f"the compiled model runs {describe['precision']}, not {spec['expect']} ({mix}): not timed")
    deadline = time.monotonic() + spec["duration"]
    if spec["mode"] == "latency":
        timing = timed_loop(backend.infer, itertools.repeat(ordered), deadline=deadline)
        return {**_summary(timing.latencies, timing.seconds, batch), "describe": describe}
    timing = backend.timed(itertools.repeat(ordered), deadline=deadline)
    return {"throughput": timing.throughput, "requests": len(timing.batches), "describe": describe}


def child(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    run = {"tf": _child_tf, "peer": _child_peer, "tfcpu-ov": _child_tfcpu_ov}[spec["kind"]]
    try:
        data = run(spec)
    except Exception as exc:  # noqa: BLE001 - one line for the parent's row note (its last stderr line)
        text = " ".join(str(exc).split())
        print(f"{type(exc).__name__}: {text}" if text else type(exc).__name__, file=sys.stderr)
        return 1
    write_json(spec["out"], data)
    return 0


def _layer_mix(layers: dict[str, int]) -> str:
    """``{"FullyConnected:u8": 3, "MatMul:bf16": 2}`` -> ``"u8 3, bf16 2"`` (compute layers per precision)."""
    per: dict[str, int] = {}
    for key, n in layers.items():
        kind = key.rsplit(":", 1)[1]
        per[kind] = per.get(kind, 0) + n
    return ", ".join(f"{k} {n}" for k, n in sorted(per.items(), key=lambda kv: -kv[1])) or "no compute layers"


# -- preparation -------------------------------------------------------------------------------------
def _failure(exc: BaseException) -> RuntimeError:
    text = str(exc).strip().splitlines()
    return RuntimeError(f"preparation failed: {type(exc).__name__}: {text[0] if text else ''}")


def prepare(args: argparse.Namespace, work: Path, bf16: bool) -> dict[str, Any]:
    """Every artefact once, before the timed rounds: ``arts[row]`` is a file, a Model or an Exception;
    also ``arts["_info"]`` (graph precisions, INT8 FLOP share, preparation seconds)."""
    import numpy as np
    import transformer_models as tm

    import tfcpu
    from tfcpu.demo._measure import graph_precision

    b, seq = args.batch_size, args.seq
    info: dict[str, Any] = {"graph_precision": {}, "prepare_s": {}}
    arts: dict[str, Any] = {"_info": info}
    model = tm.frozen("keras3", layers=args.layers, width=args.width)
    inputs = list(model.input_names)
    calibration = [token_feeds(inputs, b, seq, seed=s) for s in range(CALIBRATION_BATCHES)]
    data = {n.split(":")[0]: np.concatenate([c[n] for c in calibration]) for n in inputs}
    pb = work / "as_loaded.pb"
    pb.write_bytes(model.graph_def.SerializeToString())
    info.update(inputs=inputs, outputs=list(model.output_names), nodes=len(model.graph_def.node))
    int8 = tfcpu.Quantizer().int8().calibrate(data, batches=CALIBRATION_BATCHES, batch_size=b)

    def tf_graph(row: str, make: Callable[[], Any]) -> Any:
        graph = make()
        kind, text = graph_precision(graph)
        info["graph_precision"][row] = {"precision": kind, "detail": text}
        asked = ROWS[row][1]
        if kind != asked:
            raise RuntimeError(f"the graph holds {kind}{f' ({text})' if text else ''}, not {asked}: not timed")
        return graph

    def tf_int8() -> Any:
        result = int8.run(model)
        info["quantizer_matmul_flop_share"] = result.matmul_flop_share
        return result.model

    def peer_fp32() -> Path:
        import openvino as ov

        xml = work / "peer_fp32.xml"
        ov.save_model(ov.convert_model(str(pb)), str(xml), compress_to_fp16=False)
        return xml

    def peer_int8() -> Path | Exception:
        import nncf
        import openvino as ov

        fp32 = arts["OpenVINO peer FP32"]
        if isinstance(fp32, Exception):
            return fp32  # its failure, as it is
        ov_model = ov.Core().read_model(str(fp32))
        quantized = nncf.quantize(
            ov_model, nncf.Dataset(calibration), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calibration)
        )
        info["peer_fake_quantize"] = sum(1 for op in quantized.get_ops() if op.get_type_name() == "FakeQuantize")
        xml = work / "peer_int8.xml"
        ov.save_model(quantized, str(xml), compress_to_fp16=False)
        return xml

    def as_loaded() -> Path:
        tf_graph("TF FP32 as loaded", lambda: model)
        return pb

    def tfcpu_ov_int8() -> Path:
        xml = work / "tfcpu_ov_int8.xml"
        int8.backend("openvino").run(model).model.save(xml)
        return xml

    steps: list[tuple[str, Callable[[], Any]]] = [
        ("TF FP32 as loaded", as_loaded),
        ("tfcpu TF FP32", lambda: tf_graph("tfcpu TF FP32", lambda: tfcpu.GraphOptimizer.default().run(model).model)),
        ("tfcpu TF BF16", lambda: tf_graph("tfcpu TF BF16", lambda: tfcpu.Quantizer().bf16().run(model).model)),
        ("tfcpu TF INT8", lambda: tf_graph("tfcpu TF INT8", tf_int8)),
        ("tfcpu TF INT8+BF16", lambda: tf_graph("tfcpu TF INT8+BF16", lambda: int8.remainder("bf16").run(model).model)),
        ("tfcpu TF FP32 multi-instance", lambda: arts["tfcpu TF FP32"]),  # the same graphs, more instances
        ("tfcpu TF BF16 multi-instance", lambda: arts["tfcpu TF BF16"]),
        ("tfcpu TF INT8 multi-instance", lambda: arts["tfcpu TF INT8"]),
        ("tfcpu OpenVINO FP32", lambda: pb),
        ("tfcpu OpenVINO BF16", lambda: pb),
        ("tfcpu OpenVINO INT8", tfcpu_ov_int8),
        ("tfcpu OpenVINO INT8+BF16", lambda: arts["tfcpu OpenVINO INT8"]),  # the same IR, compiled with bf16
        ("OpenVINO peer FP32", peer_fp32),
        ("OpenVINO peer BF16", lambda: arts["OpenVINO peer FP32"]),
        ("OpenVINO peer INT8", peer_int8),
    ]
    for row, build in steps:
        if row in NEEDS_BF16 and not bf16:
            arts[row] = None  # not run: said in the table
            continue
        t0 = time.monotonic()
        try:
            arts[row] = build()  # an Exception here: the failure of the artefact it reuses
        except Exception as exc:  # noqa: BLE001 - a failed preparation fails its row only
            arts[row] = exc if str(exc).endswith("not timed") else _failure(exc)
        info["prepare_s"][row] = round(time.monotonic() - t0, 2)
        print(f"prepared {row} in {info['prepare_s'][row]:.1f} s", file=sys.stderr)
    tf_int8_model = arts.get("tfcpu TF INT8")
    if tf_int8_model is not None and not isinstance(tf_int8_model, Exception):
        info["int8_flops"] = _flop_share(tf_int8_model, inputs, b, seq)
    return arts


def _flop_share(model: Any, inputs: list[str], batch: int, seq: int) -> dict[str, Any]:
    from tfcpu.graph.flops import matmul_flops

    try:
        return matmul_flops(model.graph_def, {n: (batch, seq) for n in inputs}).to_dict()
    except Exception as exc:  # noqa: BLE001 - a report line, not a reason to stop
        return {"error": f"{type(exc).__name__}: {exc}"}


# -- measurement -------------------------------------------------------------------------------------
def make_measure(
    args: argparse.Namespace, arts: dict[str, Any], work: Path, extra: dict[str, list[dict[str, Any]]]
) -> Callable[[str], float]:
    """``measure(row)`` for measure_rounds: the throughput run and the batch-1 latency run; what ran and
    the p99 go into ``extra[row]``."""
    from tfcpu.demo import default_instances
    from tfcpu.plan import InstancePlan
    from tfcpu.runtime.backends._base import BenchmarkOptions
    from tfcpu.runtime.multi import run_instances
    from tfcpu.topology import Topology

    topo = Topology.detect()
    one = InstancePlan.for_topology(topo, instances=1)
    many = InstancePlan.for_topology(topo, instances=default_instances(topo.usable_physical_cores))
    info = arts["_info"]
    info["multi_instances"] = len(many.instances)
    out = work / "child.json"

    def instances(model: Any, batch: int, duration: float, plan: Any = one) -> Any:
        shapes = tuple((name.split(":")[0], (batch, args.seq)) for name in info["inputs"])
        options = BenchmarkOptions(batch_size=batch, warmup=WARMUP, duration=duration, shapes=shapes)
        res = run_instances(model, plan, options)
        if res.partial:
            raise RuntimeError(f"instance {res.failed[0].index}: {res.failed[0].error}")
        return res

    def in_child(row: str, path: Any, batch: int, duration: float, mode: str) -> dict[str, Any]:
        kind, precision = ROWS[row]
        spec = {
            "kind": kind, "path": str(path), "batch": batch, "seq": args.seq, "duration": duration, "mode": mode,
            "inputs": info["inputs"], "outputs": info["outputs"], "expect": precision,
            "ov_precision": OV_ASK.get(row, ""), "out": str(out),
        }  # fmt: skip
        spec_path = work / "child-spec.json"
        spec_path.write_text(json.dumps(spec))
        argv = python_child(str(Path(__file__)), "--child", spec_path)
        try:
            return run_json_child(argv, out, child_env(), timeout=10 * duration + 900)
        except RuntimeError as exc:  # the child's own last line, without TensorFlow's start-up chatter
            raise RuntimeError(f"{mode} child: {str(exc).rsplit(' | ', 1)[-1]}") from exc

    def measure(row: str) -> float:
        art = arts[row]
        if isinstance(art, Exception):
            raise art
        kind = ROWS[row][0]
        d = args.duration
        if kind == "multi":  # throughput only: a batch-1 request's latency is the single-instance row's
            big = instances(art, args.batch_size, d, many)
            first = big.instances[0].benchmark
            config = first.config if first else {}
            extra[row].append(
                {
                    "throughput": big.throughput,
                    "p99_ms": float("nan"),
                    "onednn": (first.runtime if first else {}).get("onednn_enabled"),
                    "threads": [config.get("intra_op_threads"), config.get("inter_op_threads")],
                    "instances": len(big.instances),
                }
            )
            return float(big.throughput)
        if kind == "instances":
            big, small = instances(art, args.batch_size, d), instances(art, 1, d / 2)
            bench = small.instances[0].benchmark
            runtime = big.instances[0].benchmark.runtime if big.instances[0].benchmark else {}
            config = big.instances[0].benchmark.config if big.instances[0].benchmark else {}
            extra[row].append(
                {
                    "throughput": big.throughput,
                    "p99_ms": bench.latency_ms.p99 if bench else float("nan"),
                    "onednn": runtime.get("onednn_enabled"),
                    "threads": [config.get("intra_op_threads"), config.get("inter_op_threads")],
                    "latency_ms": bench.latency_ms.to_dict() if bench else None,
                }
            )
            return float(big.throughput)
        big_run = in_child(row, art, args.batch_size, d, "throughput")
        small_run = in_child(row, art, 1, d / 2, "latency")
        extra[row].append({**big_run, "p99_ms": small_run["p99_ms"], "latency_run": small_run})
        return float(big_run["throughput"])

    return measure


# -- report ------------------------------------------------------------------------------------------
def ran_note(row: str, runs: list[dict[str, Any]], info: dict[str, Any]) -> str:
    """What ran, read back: the graph's ops (TF rows) or the compiled model's layers (OpenVINO rows)."""
    if not runs:
        return ""
    last = runs[-1]
    kind = ROWS[row][0]
    if kind in ("tf", "instances", "multi"):
        graph = info["graph_precision"].get(row.removesuffix(" multi-instance"), {})
        detail = f" ({graph['detail']})" if graph.get("detail") else ""
        onednn = {True: "oneDNN on", False: "oneDNN off", None: "oneDNN ?"}[last.get("onednn")]
        threads = "TF's threads" if kind == "tf" else "threads {}/{}".format(*last.get("threads", ["?", "?"]))
        if kind == "multi":
            threads = f"{last.get('instances', '?')} pinned instances, {threads} each"
        return f"ran {graph.get('precision', '?')}{detail}, {onednn}, {threads}"
    describe = last.get("describe") or {}
    label = describe.get("precision") or last.get("precision", "?")
    layers = describe.get("compute_layers") or last.get("compute_layers") or {}
    return f"ran {label} ({_layer_mix(layers)})"


def print_rows(title: str, results: dict[str, PathResult], p99: dict[str, list[float]]) -> None:
    from rich.console import Console
    from rich.table import Table

    base = results["TF FP32 as loaded"].samples
    table = Table(title=title)
    for col in ("path", "median seq/s", "min–max (±spread)", "× TF FP32 as loaded", "p99 ms (batch 1)", "note"):
        table.add_column(col, justify="left" if col in ("path", "note") else "right")
    for name, res in results.items():
        if res.status != "ok" or not res.samples:
            table.add_row(name, res.status if res.status != "ok" else "failed", "", "", "", res.note[:110])
            continue
        med = res.median
        versus = fmt_ratio(ratio(med, summarise(base)[0])) if base else ""
        if base and res.samples is not base:
            versus += noise_mark(res.samples, base)
        lat = summarise(p99[name])[0]
        latency = "-" if lat != lat else f"{lat:.2f}"  # NaN: not measured (multi-instance rows)
        table.add_row(name, f"{med:.1f}", fmt_spread(res.samples), versus, latency, res.note[:110])
    Console(width=None if sys.stdout.isatty() else 160).print(table)  # a log file gets the whole rows


def acceptance(results: dict[str, PathResult]) -> dict[str, Any]:
    """Issue 18's ratios: INT8 vs as loaded, best tfcpu vs best peer, tfcpu OpenVINO vs peer per precision."""

    def ok(name: str) -> list[float]:
        res = results[name]
        return res.samples if res.status == "ok" else []

    def best(prefix: str) -> str | None:
        rows = [n for n in results if n.startswith(prefix) and ok(n)]
        return max(rows, key=lambda n: results[n].median, default=None)

    out: dict[str, Any] = {
        "int8_vs_as_loaded": {
            "value": ratio(summarise(ok("tfcpu TF INT8"))[0], summarise(ok("TF FP32 as loaded"))[0]),
            "text": fmt_compared(ok("tfcpu TF INT8"), ok("TF FP32 as loaded")),
            "goal": 2.0,
        },
        "int8_multi_vs_as_loaded": {
            "value": ratio(summarise(ok("tfcpu TF INT8 multi-instance"))[0], summarise(ok("TF FP32 as loaded"))[0]),
            "text": fmt_compared(ok("tfcpu TF INT8 multi-instance"), ok("TF FP32 as loaded")),
            "goal": 2.0,
        },
        "int8_bf16_vs_as_loaded": {
            "value": ratio(summarise(ok("tfcpu TF INT8+BF16"))[0], summarise(ok("TF FP32 as loaded"))[0]),
            "text": fmt_compared(ok("tfcpu TF INT8+BF16"), ok("TF FP32 as loaded")),
            "goal": 2.0,
        },
    }
    best_tfcpu, best_peer = best("tfcpu "), best("OpenVINO peer ")
    a, b = (ok(best_tfcpu) if best_tfcpu else []), (ok(best_peer) if best_peer else [])
    out["best_tfcpu_vs_best_peer"] = {
        "value": ratio(summarise(a)[0], summarise(b)[0]),
        "text": fmt_compared(a, b),
        "goal": 1.0,
        "best_tfcpu": best_tfcpu,
        "best_peer": best_peer,
    }
    for precision in ("FP32", "BF16", "INT8"):
        x, y = ok(f"tfcpu OpenVINO {precision}"), ok(f"OpenVINO peer {precision}")
        out[f"tfcpu_ov_vs_peer_{precision.lower()}"] = {
            "value": ratio(summarise(x)[0], summarise(y)[0]),
            "text": fmt_compared(x, y),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args.child)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tfcpu.topology import Topology

    topo = Topology.detect()
    bf16 = topo.precisions["bf16"]
    record = machine_record(PACKAGES)
    results = {row: PathResult(row, DESCRIPTIONS[kind]) for row, (kind, _) in ROWS.items()}
    extra: dict[str, list[dict[str, Any]]] = {row: [] for row in ROWS}
    with tempfile.TemporaryDirectory(prefix="tfcpu-bench-transformer-") as tmp:
        work = Path(tmp)
        try:
            arts = prepare(args, work, bf16.accelerated)
        except Exception as exc:  # noqa: BLE001 - without the model nothing runs; say why for every row
            arts = {"_info": {"graph_precision": {}, "inputs": [], "outputs": []}}
            arts.update({row: _failure(exc) for row in ROWS})
        for row, art in arts.items():
            if row == "_info":
                continue
            if art is None:
                results[row].status, results[row].note = "not run", f"BF16 not accelerated here: {bf16.advice}"
            elif isinstance(art, Exception):
                results[row].fail(str(art))
        measure_rounds(
            results,
            make_measure(args, arts, work, extra),
            args.rounds,
            log=lambda s: print(s.replace(" img/s", " seq/s"), file=sys.stderr),
        )
    info = arts["_info"]
    p99 = {row: [float(r["p99_ms"]) for r in runs] for row, runs in extra.items()}
    for row, res in results.items():
        if res.status == "ok" and res.samples:
            res.note = ran_note(row, extra[row], info)
    title = (
        f"Keras 3 encoder, {args.layers} layers x {args.width}, batch {args.batch_size} x seq {args.seq}, "
        f"{args.rounds} round(s) × {args.duration:g} s · {record['machine']} · {record['date']}"
    )
    print_rows(title, results, p99)
    isa = ", ".join(f for f in topo.isa if f.startswith(("avx512", "amx", "avx_vnni")))
    print(f"ISA: {isa or 'no AVX-512/AMX'}; BF16 rows: {'yes' if bf16.accelerated else 'no (not accelerated)'}")
    print(", ".join(f"{k} {v}" for k, v in record["versions"].items()))
    goals = acceptance(results)
    print(f"tfcpu TF INT8 / TF FP32 as loaded = {goals['int8_vs_as_loaded']['text']} (goal ≥ 2×)")
    print(f"tfcpu TF INT8 multi-instance / TF FP32 as loaded = {goals['int8_multi_vs_as_loaded']['text']} (goal ≥ 2×)")
    print(f"tfcpu TF INT8+BF16 / TF FP32 as loaded = {goals['int8_bf16_vs_as_loaded']['text']} (goal ≥ 2×)")
    best = goals["best_tfcpu_vs_best_peer"]
    print(
        f"best tfcpu / best OpenVINO peer = {best['text']} (goal ≥ 1.0×; "
        f"{best['best_tfcpu'] or 'none'} vs {best['best_peer'] or 'none'})"
    )
    for precision in ("fp32", "bf16", "int8"):
        print(f"tfcpu OpenVINO / OpenVINO peer, {precision.upper()} = {goals[f'tfcpu_ov_vs_peer_{precision}']['text']}")
    flops = info.get("int8_flops")
    if flops and "error" not in flops and flops.get("total"):
        per = ", ".join(f"{r['op']} {r['nodes']}" for r in flops["rows"])
        print(
            f"INT8 share of MatMul/Einsum FLOPs in the tfcpu INT8 graph: {flops['share']:.1%} of "
            f"{flops['total'] / 1e9:.2f} GFLOP per batch of {args.batch_size} x {args.seq} ({per})"
        )
    else:
        share = info.get("quantizer_matmul_flop_share")
        reason = (flops or {}).get("error", "no tfcpu INT8 graph")
        print(f"INT8 share of MatMul/Einsum FLOPs: not counted here ({reason}); Quantizer's own: {share}")
    if args.json:
        rows = []
        for row, res in results.items():
            data = res.to_dict()
            data.update(p99_ms=summarise(p99[row])[0], p99_samples=p99[row], runs=extra[row], kind=ROWS[row][0])
            rows.append(data)
        write_json(
            args.json,
            {**record, "isa": list(topo.isa), "args": {k: v for k, v in vars(args).items() if k != "child"},
             "model": info, "rows": rows, "acceptance": goals},
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
