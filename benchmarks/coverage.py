"""The coverage matrix: architectures people bring, each through load → optimise → INT8 → OpenVINO (issue 27).

    python benchmarks/coverage.py [--models NAME,...] [--out-dir DIR] [--timeout S]
        [--image-size N] [--no-docs]

Every architecture is built offline (random weights; batch norms, layer norms and biases given seeded
trained-like values by ``tfcpu.graph._keras_weights.realistic_weights``) in a FRESH child process with a
time limit, so one crash or hang costs one row, not the run. The child writes its JSON after every stage,
so a crash mid-way keeps the stages before it. Stages, each recorded with its status and numbers:

1. **load** — ``tfcpu.load(keras_model)`` (the Keras object itself; keras-hub backbones take a dict).
2. **optimise** — ``GraphOptimizer.default().run(model)`` with its numerical check on inputs it derives
   from the graph (token ids in the vocabulary, segment ids in their table, 0/1 masks): ``exact`` when it
   passes at the default fp32 tolerance (rtol 1e-4, atol 1e-5); ``within 1e-3`` when only a second run at
   rtol 1e-3 / atol 1e-4 passes; else ``failed`` with the optimiser's reason.
3. **int8** — ``Quantizer().int8().calibrate("synthetic", batches=2, batch_size=2)`` on the optimised
   model (the loaded one when stage 2 failed); the cosine and top-1 agreement against FP32 and the INT8
   FLOP share are the quantiser's own (``QuantizationResult``). ``ok`` at cosine ≥ 0.99, ``low agreement``
   below, ``not quantised`` when the graph stayed FP32.
4. **openvino** — the loaded FP32 model on ``Runner(..., backend="openvino")`` against the same model on
   TensorFlow, same inputs (batch 2): ``ok`` when every output agrees (rtol 1e-3, atol 1e-4), ``refused``
   when tfcpu refuses before work (``openvino_refusal``, the op named), else ``failed``/``disagrees``.

Children run with ``TF_ENABLE_ONEDNN_OPTS=1`` (TensorFlow's INT8 kernels need oneDNN; on an AVX2-only
AMD CPU TensorFlow leaves it off). The parent writes one JSON per architecture to ``--out-dir``
(default ``benchmarks/results/coverage``), ``docs/coverage.md`` and the counts between the
``<!-- coverage:start -->`` / ``<!-- coverage:end -->`` markers of README.md (``--no-docs`` writes neither).
``tests/integration/test_coverage.py`` runs three of these rows through this same script.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "coverage"
DOC = ROOT / "docs" / "coverage.md"
README = ROOT / "README.md"
MARK_START, MARK_END = "<!-- coverage:start -->", "<!-- coverage:end -->"

STAGES = ("load", "optimise", "int8", "openvino")
SEQ = 16  # the sequence length fed to text models with a dynamic one
BATCH = 2
INT8_COSINE = 0.99
OV_RTOL, OV_ATOL = 1e-3, 1e-4
TEXT = {"vocab": 1000, "layers": 2, "width": 64, "heads": 2, "max_seq": 32}


@dataclass(frozen=True)
class Arch:
    """One row: ``name`` (what the table says), ``family`` and how the child builds it."""

    name: str
    family: str
    source: str  # "keras" (keras.applications), "tf_keras", "keras_hub", "encoder_families", "tfcpu"
    note: str = ""


ARCHITECTURES: tuple[Arch, ...] = (
    Arch("ResNet50", "CNN (residual)", "keras"),
    Arch("ResNet50V2", "CNN (residual, pre-activation)", "keras"),
    Arch("MobileNetV2", "CNN (depthwise, inverted residual)", "keras"),
    Arch("MobileNetV3Small", "CNN (depthwise, squeeze-excite, hard-swish)", "keras", "built-in Rescaling"),
    Arch("EfficientNetB0", "CNN (depthwise, squeeze-excite, swish)", "keras", "built-in Rescaling+Normalization"),
    Arch("EfficientNetV2B0", "CNN (fused MBConv)", "keras", "built-in Rescaling"),
    Arch("DenseNet121", "CNN (dense connections)", "keras"),
    Arch("InceptionV3", "CNN (inception)", "keras"),
    Arch("Xception", "CNN (separable convolutions)", "keras"),
    Arch("VGG16", "CNN (plain)", "keras"),
    Arch("NASNetMobile", "CNN (NAS cells)", "keras"),
    Arch("ConvNeXtTiny", "CNN (grouped/depthwise, LayerNorm, GELU)", "keras", "built-in Normalization"),
    Arch("RegNetX002", "CNN (grouped convolutions)", "tf_keras", "tf_keras (Keras 3 has no RegNet)"),
    Arch("BERT classifier", "Transformer encoder (segment ids)", "encoder_families", "bert_classifier"),
    Arch("ALBERT", "Transformer encoder (shared layers, segment ids)", "encoder_families", "albert"),
    Arch("ELECTRA", "Transformer encoder (segment ids)", "encoder_families", "electra"),
    Arch("FNet", "Fourier-mixing encoder (FFT, segment ids)", "encoder_families", "fnet"),
    Arch("DistilBERT", "Transformer encoder", "keras_hub"),
    Arch("RoBERTa", "Transformer encoder", "keras_hub"),
    Arch("GPT-2", "Transformer decoder (causal)", "keras_hub"),
    Arch("ViT", "Vision transformer", "keras_hub"),
    Arch("keras:encoder", "Transformer encoder (tfcpu's built-in)", "tfcpu", "4 layers, width 256, seq 128"),
)
BY_NAME = {a.name: a for a in ARCHITECTURES}


# -- the child: build and run one architecture ----------------------------------------------------


def _keras_hub_model(name: str) -> Any:
    import keras_hub

    t = TEXT
    text = {"vocabulary_size": t["vocab"], "num_layers": t["layers"], "num_heads": t["heads"]}
    text |= {"hidden_dim": t["width"], "intermediate_dim": 2 * t["width"], "max_sequence_length": t["max_seq"]}
    if name == "DistilBERT":
        return keras_hub.models.DistilBertBackbone(**text)
    if name == "RoBERTa":
        return keras_hub.models.RobertaBackbone(**text)
    if name == "GPT-2":
        return keras_hub.models.GPT2Backbone(**text)
    if name == "ViT":
        return keras_hub.models.ViTBackbone(
            image_shape=(64, 64, 3), patch_size=16, num_layers=2, num_heads=2, hidden_dim=64, mlp_dim=128
        )
    raise ValueError(f"no keras-hub builder for {name!r}")


def build(arch: Arch, image_size: int) -> tuple[Any, str]:
    """The Keras model for ``arch`` with trained-like values, and a one-line description of its input."""
    import keras

    from tfcpu.graph._keras_weights import realistic_weights

    keras.utils.set_random_seed(0)
    if arch.source in ("keras", "tf_keras"):
        if arch.source == "tf_keras":
            import tf_keras

            apps: Any = tf_keras.applications
        else:
            apps = keras.applications
        model = getattr(apps, arch.name)(weights=None, input_shape=(image_size, image_size, 3))
        described = f"{image_size}×{image_size}×3"
    elif arch.source == "encoder_families":
        sys.path.insert(0, str(ROOT))
        from tests.encoder_families import build as build_family

        return build_family(arch.note), f"seq {SEQ}, vocab {TEXT['vocab']}"  # already trained-like
    elif arch.source == "keras_hub":
        model = _keras_hub_model(arch.name)
        described = "64×64×3" if arch.name == "ViT" else f"seq {SEQ}, vocab {TEXT['vocab']}"
    elif arch.source == "tfcpu":
        from tfcpu.graph.encoder import build_encoder

        return build_encoder(), "seq 128, vocab 1000"  # realistic by default
    else:
        raise ValueError(f"unknown source {arch.source!r}")
    realistic_weights(model, seed=0)
    return model, described


def _error(exc: BaseException) -> dict[str, Any]:
    """An exception as table data: its one-line summary plus tfcpu's why/hint when it has them."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    out: dict[str, Any] = {"status": "failed", "error": f"{type(exc).__name__}: {lines[0]}"[:400]}
    for key in ("what", "where", "why", "hint"):
        value = getattr(exc, key, None)
        if value:
            out[key] = str(value)[:600]
    return out


def _comparison_numbers(comparison: Any) -> dict[str, Any]:
    cosines = [o.cosine for o in comparison.outputs if o.cosine is not None]
    top1 = [o.top1 for o in comparison.outputs if o.top1 is not None]
    return {
        "passed": bool(comparison.passed),
        "cosine": min(cosines) if cosines else None,
        "top1": min(top1) if top1 else None,
        "max_abs_error": max(o.max_abs for o in comparison.outputs),
        "max_rel_error": max(o.max_rel for o in comparison.outputs),
    }


def _stage_optimise(model: Any, shapes: dict[str, tuple[int, ...]]) -> tuple[dict[str, Any], Any]:
    from tfcpu.graph.optimizer import GraphOptimizer

    record: dict[str, Any] = {}
    start = time.perf_counter()
    try:
        result = GraphOptimizer.default().run(model, shapes=shapes, batch=BATCH)
        record["status"] = "exact"
    except Exception as exc:  # noqa: BLE001 - the reason goes in the table; try the looser tolerance once
        record = _error(exc)
        try:
            result = GraphOptimizer.default().run(model, shapes=shapes, batch=BATCH, rtol=1e-3, atol=1e-4)
            record["status"] = "within 1e-3"
        except Exception:  # noqa: BLE001 - the first reason is the one recorded
            record["seconds"] = round(time.perf_counter() - start, 1)
            return record, None
    check = result.check
    record |= {
        "seconds": round(time.perf_counter() - start, 1),
        "nodes_before": result.nodes_before,
        "nodes_after": result.nodes_after,
        "max_abs_error": None if check is None else check.max_abs_error,
        "max_rel_error": None if check is None else check.max_rel_error,
        "degenerate": [] if check is None else list(check.degenerate),
    }
    return record, result.model


def _stage_int8(model: Any) -> dict[str, Any]:
    import tfcpu

    start = time.perf_counter()
    try:
        result = tfcpu.Quantizer().int8().calibrate("synthetic", batches=2, batch_size=BATCH).run(model)
    except Exception as exc:  # noqa: BLE001 - any failure is a row in the table
        return _error(exc) | {"seconds": round(time.perf_counter() - start, 1)}
    if not result.quantized:
        status = "not quantised"
    elif result.cosine is not None and result.cosine >= INT8_COSINE:
        status = "ok"
    else:
        status = "low agreement"
    return {
        "status": status,
        "seconds": round(time.perf_counter() - start, 1),
        "precision": result.precision,
        "cosine": result.cosine,
        "top1": result.top1_agreement,
        "max_abs_error": result.max_abs_diff,
        "int8_flop_share": result.matmul_flop_share,
        "quantized_ops": dict(result.quantized_ops),
        "onednn_enabled": result.onednn_enabled,
        "warnings": [w[:300] for w in result.warnings],
    }


def _stage_openvino(model: Any, feeds: dict[str, Any]) -> dict[str, Any]:
    from tfcpu.graph.compare import compare_outputs
    from tfcpu.runtime import Runner
    from tfcpu.runtime.backends._openvino_util import openvino_refusal

    start = time.perf_counter()
    try:
        refusal = openvino_refusal(model)
        if refusal is not None:
            return _error(refusal) | {"status": "refused", "seconds": round(time.perf_counter() - start, 1)}
        with Runner(model, backend="tensorflow") as runner:
            want = runner.run(feeds)
        with Runner(model, backend="openvino") as runner:
            got = runner.run(feeds)
    except Exception as exc:  # noqa: BLE001 - any failure is a row in the table
        return _error(exc) | {"seconds": round(time.perf_counter() - start, 1)}
    numbers = _comparison_numbers(compare_outputs(want, got, atol=OV_ATOL, rtol=OV_RTOL, label="tf vs openvino"))
    status = "ok" if numbers["passed"] else "disagrees"
    return {"status": status, "seconds": round(time.perf_counter() - start, 1)} | numbers


def run_child(name: str, image_size: int, out: Path) -> None:
    """Build ``name`` and run every stage, rewriting ``out`` after each one."""
    arch = BY_NAME[name]
    record: dict[str, Any] = {"name": arch.name, "family": arch.family, "source": arch.source, "stages": {}}

    def save() -> None:
        out.write_text(json.dumps(record, indent=1, default=str))

    start = time.perf_counter()
    keras_model, described = build(arch, image_size)
    record |= {"params": int(keras_model.count_params()), "input": described}
    record["build_seconds"] = round(time.perf_counter() - start, 1)
    save()

    import tfcpu
    from tfcpu.graph import random_inputs
    from tfcpu.graph._input_ranges import input_ranges

    start = time.perf_counter()
    try:
        model = tfcpu.load(keras_model)
    except Exception as exc:  # noqa: BLE001 - any failure is a row in the table
        record["stages"]["load"] = _error(exc) | {"seconds": round(time.perf_counter() - start, 1)}
        save()
        return
    record["stages"]["load"] = {
        "status": "ok",
        "seconds": round(time.perf_counter() - start, 1),
        "nodes": len(model.graph_def.node),
        "inputs": {s.node: [str(s.dtype), list(s.shape)] for s in model.inputs},
    }
    save()

    feeds = random_inputs(model, BATCH, unknown_dims=SEQ, ranges=input_ranges(model, floats=True), seed=1)
    shapes = {name: tuple(value.shape) for name, value in feeds.items()}

    record["stages"]["optimise"], optimised = _stage_optimise(model, shapes)
    save()
    record["stages"]["int8"] = _stage_int8(optimised if optimised is not None else model)
    save()
    record["stages"]["openvino"] = _stage_openvino(model, feeds)
    save()


# -- the parent: one child per architecture, then the table ---------------------------------------


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    from tfcpu.topology import Topology

    topo = Topology.detect()
    packages = ("tensorflow", "keras", "keras-hub", "tf_keras", "neural-compressor", "openvino")
    versions = {}
    for p in packages:
        try:
            versions[p] = version(p)
        except Exception:  # noqa: BLE001
            versions[p] = "not installed"
    return {
        "cpu": topo.model_name,
        "isa": topo.isa_summary(),
        "summary": topo.summary(),
        "versions": versions,
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d"),
    }


def _tail(text: str, lines: int = 3) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[-500:]


def _file_name(name: str) -> str:
    return f"{name.replace(' ', '_').replace(':', '_').lower()}.json"


def run_one(name: str, out_dir: Path, timeout: float, image_size: int) -> dict[str, Any]:
    """Run ``name`` in a fresh child; a crash or timeout marks the first stage without a result."""
    out = out_dir / _file_name(name)
    out.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "KMP_"))}
    env |= {"TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--image-size", str(image_size)]
    argv += ["--child-out", str(out)]
    start = time.perf_counter()
    problem = None
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        if proc.returncode != 0:
            problem = f"child exit code {proc.returncode}: {_tail(proc.stderr)}"
    except subprocess.TimeoutExpired:
        problem = f"timed out after {timeout:.0f} s"
    arch = BY_NAME[name]
    record: dict[str, Any] = {"name": name, "family": arch.family, "source": arch.source, "stages": {}}
    if out.exists():
        record = json.loads(out.read_text())
    record["seconds"] = round(time.perf_counter() - start, 1)
    if problem is not None:
        pending = next((s for s in STAGES if s not in record["stages"]), None)
        if pending is None:
            record["child_error"] = problem
        else:
            status = "timeout" if problem.startswith("timed out") else "crashed"
            record["stages"][pending] = {"status": status, "error": problem}
    out.write_text(json.dumps(record, indent=1, default=str))
    return record


def _num(value: Any, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _cell(stage: str, data: dict[str, Any] | None) -> str:
    if data is None:
        return "not reached"
    status = data["status"]
    mark = "✓" if status in ("ok", "exact") else "≈" if status == "within 1e-3" else "✗"
    if stage == "load" and status == "ok":
        return f"✓ {data['nodes']} nodes"
    if stage == "optimise" and "max_rel_error" in data:
        weak = " (check degenerate: the output ignores the input)" if data.get("degenerate") else ""
        return f"{mark} {status}, rel err {_num(data['max_rel_error'], '.1e')}{weak}"
    if stage == "int8" and "cosine" in data:
        share = data.get("int8_flop_share")
        share_text = "—" if share is None else f"{100 * share:.0f} %"
        top1 = "" if data.get("top1") is None else f", top-1 {100 * data['top1']:.0f} %"
        return f"{mark} {status}: cos {_num(data['cosine'], '.4f')}{top1}, INT8 FLOPs {share_text}"
    if stage == "openvino" and "cosine" in data:
        return f"{mark} {status}: cos {_num(data['cosine'], '.6f')}, rel err {_num(data['max_rel_error'], '.1e')}"
    return f"{mark} {status}"


def counts(records: Sequence[dict[str, Any]]) -> dict[str, int]:
    def ok(stage: str, good: tuple[str, ...]) -> int:
        return sum(1 for r in records if r["stages"].get(stage, {}).get("status") in good)

    return {
        "total": len(records),
        "load": ok("load", ("ok",)),
        "optimise_exact": ok("optimise", ("exact",)),
        "optimise": ok("optimise", ("exact", "within 1e-3")),
        "int8_runs": ok("int8", ("ok", "low agreement")),
        "int8_ok": ok("int8", ("ok",)),
        "openvino": ok("openvino", ("ok",)),
        "openvino_refused": ok("openvino", ("refused",)),
        "not_run": sum(1 for r in records if r.get("not_run")),
    }


def counts_line(c: dict[str, int]) -> str:
    return (
        f"{c['load']} of {c['total']} architectures load, {c['optimise_exact']} optimise exactly, "
        f"{c['int8_runs']} quantise to INT8 ({c['int8_ok']} with cosine ≥ {INT8_COSINE} on synthetic calibration), "
        f"{c['openvino']} run on OpenVINO in agreement with TensorFlow"
        + (f" ({c['openvino_refused']} refused before work, the op named)" if c["openvino_refused"] else "")
        + (f"; {c['not_run']} not run yet" if c["not_run"] else "")
    )


def render_markdown(records: Sequence[dict[str, Any]], where: dict[str, Any]) -> str:
    c = counts(records)
    lines = [
        "# Coverage: architectures through load → optimise → INT8 → OpenVINO",
        "",
        "Made by `benchmarks/coverage.py` (`nox -s coverage`); each architecture ran in a fresh process with a",
        "time limit. Models are built offline with random weights and trained-like batch-norm, layer-norm and",
        "bias values, at small sizes (images 96×96 unless noted; text models 2 layers, width 64, vocabulary",
        f"1000, fed sequences of {SEQ}), batch {BATCH}. What each stage means:",
        "",
        "- **Load**: `tfcpu.load(keras_model)` of the Keras object (dict inputs for keras-hub backbones).",
        "- **Optimise**: `GraphOptimizer.default().run(model)` and its numerical check on inputs derived from",
        "  the graph; *exact* = within rtol 1e-4 / atol 1e-5 of the original; the max relative error shown.",
        "- **INT8**: `Quantizer().int8().calibrate(\"synthetic\", batches=2)` on the optimised graph; the cosine and",
        "  top-1 agreement against FP32 and the share of product FLOPs that run in INT8 are the quantiser's own.",
        f"  ✓ at cosine ≥ {INT8_COSINE}; real calibration data does better than synthetic. The Keras applications",
        "  end in a softmax over 1000 classes, near-uniform with random weights, so their cosine is close to 1 by",
        "  construction: top-1 agreement is the telling number there (the backbones' outputs are hidden states).",
        "- **OpenVINO FP32**: the loaded graph on `Runner(backend=\"openvino\")` against TensorFlow on the same",
        f"  inputs (rtol {OV_RTOL:g}, atol {OV_ATOL:g}); *refused* = tfcpu refused before any work, naming the op.",
        "",
        f"**{counts_line(c)}.**",
        "",
        f"Ran on {where['summary']} · {where['date']} · "
        + ", ".join(f"{k} {v}" for k, v in where["versions"].items())
        + " · TensorFlow with oneDNN on (`TF_ENABLE_ONEDNN_OPTS=1`).",
        "",
        "| Architecture | Family | Params | Input | Load | Optimise | INT8 | OpenVINO FP32 |",
        "|---|---|---:|---|---|---|---|---|",
    ]
    for r in records:
        params = r.get("params")
        params_text = "—" if params is None else f"{params / 1e6:.2f} M" if params >= 1e5 else f"{params / 1e3:.0f} k"
        cells = ["not run yet" if r.get("not_run") else _cell(s, r["stages"].get(s)) for s in STAGES]
        head = f"| {r['name']} | {r['family']} | {params_text} | {r.get('input', '—')} | "
        lines.append(head + " | ".join(cells) + " |")
    problems = [
        (r["name"], s, d)
        for r in records
        for s in STAGES
        if (d := r["stages"].get(s)) is not None and d["status"] not in ("ok", "exact")
    ]
    lines += ["", "## What did not pass, and why", ""]
    if not problems:
        lines.append("Nothing: every stage passed on every architecture.")
    for name, stage, data in problems:
        reason = data.get("why") or data.get("error") or ""
        if data["status"] == "low agreement":
            drift = next((w for w in data.get("warnings", []) if "cosine" in w or "drift" in w), "")
            reason = drift or f"cosine {data.get('cosine')} on synthetic calibration"
        elif data["status"] == "disagrees":
            reason = f"max rel error {data.get('max_rel_error'):.1e}, cosine {data.get('cosine')}"
        elif data["status"] == "within 1e-3":
            rel = _num(data.get("max_rel_error"), ".1e")
            reason = (data.get("error") or "") + f"; passes at rtol 1e-3 (rel err {rel})"
        what = data.get("what")
        text = f"{what}: {reason}" if what and what not in reason else reason
        lines.append(f"- **{name}**, {stage} ({data['status']}): {' '.join(text.split())[:500]}")
    notes = [
        (r["name"], BY_NAME[r["name"]].note)
        for r in records
        if r["name"] in BY_NAME and BY_NAME[r["name"]].note and BY_NAME[r["name"]].source != "encoder_families"
    ]
    if notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {name}: {note}" for name, note in notes]
    lines += [
        "",
        "The JSON per architecture (every number, warning and error) is in `benchmarks/results/coverage/`.",
        "Regenerate with `nox -s coverage` (about an hour on 2 cores; `-- --models ResNet50,ALBERT` for a few).",
        "",
    ]
    return "\n".join(lines)


def update_readme(line: str, where: dict[str, Any], path: Path = README) -> None:
    text = path.read_text()
    block = (
        f"{MARK_START}\n**Coverage** ([table](docs/coverage.md), {where['cpu']}, {where['isa']}, {where['date']}): "
        f"{line}.\n{MARK_END}"
    )
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        text = head + block + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def main(argv: Sequence[str] | None = None, log: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="comma-separated names (default: all)")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per architecture")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--no-docs", action="store_true", help="write the JSON only, not docs/ nor README")
    parser.add_argument("--list", action="store_true", help="print the architectures and exit")
    parser.add_argument("--render", action="store_true", help="docs and README from the JSON in --out-dir")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        try:
            run_child(args.child, args.image_size, args.child_out)
        except Exception:  # noqa: BLE001 - the parent reads the traceback's tail
            traceback.print_exc()
            return 1
        return 0
    if args.list:
        for a in ARCHITECTURES:
            log(f"{a.name:18} {a.family}")
        return 0
    names = [n.strip() for n in args.models.split(",") if n.strip()] or [a.name for a in ARCHITECTURES]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown architecture {unknown[0]!r}; --list shows them")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for name in names:
        if args.render:
            path = args.out_dir / _file_name(name)
            arch = BY_NAME[name]
            missing = {"name": name, "family": arch.family, "source": arch.source, "stages": {}, "not_run": True}
            records.append(json.loads(path.read_text()) if path.exists() else missing)
            continue
        record = run_one(name, args.out_dir, args.timeout, args.image_size)
        log(f"{name:18} {record['seconds']:7.1f} s  " + "  ".join(_cell(s, record["stages"].get(s)) for s in STAGES))
        records.append(record)
    saved = args.out_dir / "machine.json"
    if args.render and saved.exists():
        where = json.loads(saved.read_text())
    else:
        where = machine()
        saved.write_text(json.dumps(where, indent=1))
    log(counts_line(counts(records)))
    if not args.no_docs:
        DOC.write_text(render_markdown(records, where))
        update_readme(counts_line(counts(records)), where)
        log(f"wrote {DOC.relative_to(ROOT)} and the counts in README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
