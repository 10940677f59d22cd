"""Sessions: tests, lint (ruff + mypy). Run ``nox -l`` to list them."""

from __future__ import annotations

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
def lint(session: nox.Session) -> None:
    """ruff (lint + format check) and mypy over the package."""
    session.install("-e", ".", "ruff>=0.6", "mypy>=1.11")
    session.run("ruff", "check", "tfcpu", "tests", "noxfile.py")
    session.run("ruff", "format", "--check", "tfcpu")
    session.run("mypy")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site with warnings as errors (output in site/)."""
    session.install("-e", ".[docs]")
    session.run("python", "docs/gen_cli.py")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Peer benchmark: tfcpu vs Keras predict, graph_transforms, INC alone, OpenVINO FP32/INT8 (benchmarks/peers.py)."""
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/peers.py", *session.posargs)
