"""Sessions: tests, onednn (the oneDNN-sensitive tests again with the opposite TF_ENABLE_ONEDNN_OPTS), capped-isa
(the precision-dependent tests as on an AVX2 server: ONEDNN_MAX_CPU_ISA=AVX2), lint
(ruff + mypy), itex (ITEX backend on TF 2.15), docs, and the benchmarks (bench = the peer benchmark,
bench-int8, bench-instances, bench-pool, bench-openvino, bench-bf16, bench-ray, bench-transformer, bench-export,
bench-serve), and coverage (the architecture matrix, benchmarks/coverage.py).
Run ``nox -l`` to list them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The full test suite (unit + slow integration), as CI runs it."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHON)
def onednn(session: nox.Session) -> None:
    """The second oneDNN leg: the ``onednn``-marked tests (tests/onednn.py) with the opposite setting.

    ``nox -s onednn`` flips this CPU's default; ``nox -s onednn -- 0`` (or ``1``) forces a value.
    """
    session.install("-e", ".[test]")
    forced = [a for a in session.posargs if a in ("0", "1")]
    rest = [a for a in session.posargs if a not in ("0", "1")]
    value = forced[0] if forced else str(session.run("python", "-m", "tests.onednn", silent=True)).strip()
    session.run("python", "-m", "pytest", "-m", "onednn", *rest, env={"TF_ENABLE_ONEDNN_OPTS": value})


@nox.session(name="capped-isa", python=PYTHON)
def capped_isa(session: nox.Session) -> None:
    """The ``capped_isa``-marked tests (CAPPED in tests/onednn.py) as on an AVX2 server (issue 27).

    oneDNN capped with ``ONEDNN_MAX_CPU_ISA=AVX2`` (TensorFlow's and OpenVINO's builds honour it, and
    tfcpu's Topology hides the flags above it), TensorFlow's oneDNN as its default there (tests/conftest.py). Runs on
    any CPU; on one with nothing above AVX2 it repeats what ``nox -s tests`` ran.
    """
    session.install("-e", ".[test]")
    hidden = str(session.run("python", "-m", "tests.onednn", "capped", silent=True)).strip()
    session.log(f"capped at AVX2: hides {hidden or 'nothing on this CPU'}")
    session.run(
        "python", "-m", "pytest", "-m", "capped_isa", *session.posargs,
        env={"ONEDNN_MAX_CPU_ISA": "AVX2", "TF_ENABLE_ONEDNN_OPTS": None},
    )  # fmt: skip


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (lint + format check) and mypy over the package."""
    session.install("-e", ".", "ruff>=0.6", "mypy>=1.11")
    session.run("ruff", "check", "tfcpu", "tests", "noxfile.py", "scripts", "benchmarks")
    session.run("ruff", "format", "--check", "tfcpu")
    session.run("mypy", "--strict", "tfcpu")


@nox.session(python=PYTHON)
def itex(session: nox.Session) -> None:
    """ITEX backend tests: TF 2.15 + intel-extension-for-tensorflow in their own venv (tests/itex).

    The graphs under test are made first by the interpreter running nox (the main environment's
    newer TensorFlow) with tests/itex/make_fixtures.py, into $TFCPU_ITEX_FIXTURES
    (default .nox/itex-fixtures, reused while the producing TensorFlow version is the same).
    """
    fixtures = os.environ.get("TFCPU_ITEX_FIXTURES") or str(Path(".nox/itex-fixtures").resolve())
    session.run(sys.executable, "tests/itex/make_fixtures.py", fixtures, external=True)
    # tfcpu[itex] pins TF 2.15; the test extra's tf_keras>=2.16 and ray would fight it, so only
    # the test runner itself is added.
    session.install("-e", ".[itex]", "pytest>=8", "pytest-timeout>=2.3")
    session.run(
        "python", "-m", "pytest", "tests/itex", "-m", "itex", *session.posargs, env={"TFCPU_ITEX_FIXTURES": fixtures}
    )


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site with warnings as errors (output in site/)."""
    session.install("-e", ".[docs]")
    session.run("python", "docs/gen_cli.py")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")


def _benchmark(session: nox.Session, script: str, install: str = ".") -> None:
    session.install("-e", install)
    session.run("python", f"benchmarks/{script}", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Peer benchmark: tfcpu vs Keras predict, graph_transforms, INC alone, OpenVINO, ONNX Runtime and LiteRT,
    each checked against TensorFlow's outputs (benchmarks/peers.py; ``-- --model encoder`` for the encoder)."""
    _benchmark(session, "peers.py", ".[openvino,peers]")


@nox.session(python=PYTHON)
def coverage(session: nox.Session) -> None:
    """The coverage matrix: ~20 Keras applications and keras-hub backbones, each in a fresh child, through
    load → optimise → INT8 → OpenVINO; writes docs/coverage.md and the counts in README.md
    (benchmarks/coverage.py; ``-- --models ResNet50,ALBERT`` for a few, ``-- --list`` for the names)."""
    _benchmark(session, "coverage.py", ".[openvino,test]")


@nox.session(name="bench-int8", python=PYTHON)
def bench_int8(session: nox.Session) -> None:
    """FP32 frozen vs INC alone vs tfcpu INT8, ratios from one run (benchmarks/bench_int8.py)."""
    _benchmark(session, "bench_int8.py")


@nox.session(name="bench-bf16", python=PYTHON)
def bench_bf16(session: nox.Session) -> None:
    """FP32 optimised vs offline BF16 vs TF runtime AMP vs both, ratios from one run (benchmarks/bench_bf16.py)."""
    _benchmark(session, "bench_bf16.py")


@nox.session(name="bench-instances", python=PYTHON)
def bench_instances(session: nox.Session) -> None:
    """One instance on all cores vs pinned instances, ratios from one run (benchmarks/bench_instances.py)."""
    _benchmark(session, "bench_instances.py")


@nox.session(name="bench-pool", python=PYTHON)
def bench_pool(session: nox.Session) -> None:
    """tfcpu.Pool.map vs Runner.multi_instance vs one in-process Runner, and the pool's per-call overhead
    (benchmarks/bench_pool.py; ``-- --batches 200`` for issue 25's figure)."""
    _benchmark(session, "bench_pool.py")


@nox.session(name="bench-runtime", python=PYTHON)
def bench_runtime(session: nox.Session) -> None:
    """INT8 pinned instances: default vs frozen weights vs tcmalloc/jemalloc vs both (benchmarks/bench_runtime.py)."""
    _benchmark(session, "bench_runtime.py")


@nox.session(name="bench-openvino", python=PYTHON)
def bench_openvino(session: nox.Session) -> None:
    """tfcpu's OpenVINO backend vs plain OpenVINO + NNCF vs tfcpu's TF backend (benchmarks/bench_openvino.py)."""
    _benchmark(session, "bench_openvino.py", ".[openvino]")


@nox.session(name="bench-ray", python=PYTHON)
def bench_ray(session: nox.Session) -> None:
    """tfcpu.ray.predict pinned vs unpinned Ray actors (benchmarks/bench_ray.py)."""
    _benchmark(session, "bench_ray.py", ".[ray]")


@nox.session(name="bench-export", python=PYTHON)
def bench_export(session: nox.Session) -> None:
    """Issue 24: the exported SavedModel in plain TensorFlow vs tfcpu's Runner (benchmarks/bench_export.py)."""
    _benchmark(session, "bench_export.py")


@nox.session(name="bench-serve", python=PYTHON)
def bench_serve(session: nox.Session) -> None:
    """Issue 26: tfcpu serve vs the pool offline, a plain Starlette server and Ray Serve (benchmarks/bench_serve.py)."""
    _benchmark(session, "bench_serve.py", ".[serve,ray]")


@nox.session(name="bench-transformer", python=PYTHON)
def bench_transformer(session: nox.Session) -> None:
    """Issue 18's encoder: TF as loaded vs tfcpu TF/OpenVINO vs OpenVINO + NNCF (benchmarks/bench_transformer.py)."""
    _benchmark(session, "bench_transformer.py", ".[openvino]")
