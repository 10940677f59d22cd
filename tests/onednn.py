"""The oneDNN legs of the test suite, kept in one place.

TensorFlow turns oneDNN on by itself on CPUs with VNNI, BF16 or AMX and leaves it off elsewhere, and
its oneDNN graph rewrites change what a graph computes (a channel Pad before a Conv2D, for one), so the
tests whose behaviour can differ run twice in CI: once as the README's command runs them (this CPU's
default, or whatever the environment says), once with the opposite setting::

    TF_ENABLE_ONEDNN_OPTS=$(python -m tests.onednn) python -m pytest -m onednn

``python -m tests.onednn`` prints the opposite of this run's setting ("0" or "1"). The test files in
`SENSITIVE` get the ``onednn`` marker (tests/conftest.py); a test elsewhere can carry
``@pytest.mark.onednn`` itself. The tests in `CAPPED` get the ``capped_isa`` marker: the third leg runs
them with the ISA capped at AVX2 (`CAP`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping

# Graph passes and the optimiser, the quantiser (INT8/BF16 and its fallbacks), loading, the runner.
SENSITIVE = (
    "tests/unit/test_graph_passes.py",
    "tests/unit/test_transformer_passes.py",
    "tests/unit/test_graph_contract.py",
    "tests/unit/test_graph_load.py",
    "tests/unit/test_quantize.py",
    "tests/unit/test_quantize_cli.py",
    "tests/unit/test_quantize_fallback.py",
    "tests/unit/test_quantize_stages.py",
    "tests/unit/test_runner.py",
    "tests/unit/test_session_apply.py",
    "tests/integration/test_optimize_real_models.py",
    "tests/integration/test_int8_runs.py",
)
MARKER = "onednn"
VARIABLE = "TF_ENABLE_ONEDNN_OPTS"

# The capped-ISA leg (issue 27): the tests whose expectations depend on the CPU's INT8/BF16 instructions,
# run as on an AVX2 server (oneDNN capped with ONEDNN_MAX_CPU_ISA=AVX2 in TensorFlow and OpenVINO,
# tfcpu's Topology reading the CPU without VNNI/BF16/AMX, TensorFlow's oneDNN off as its default there),
# so a VNNI/AMX machine catches what an AVX2 server would hit::
#
#     ONEDNN_MAX_CPU_ISA=AVX2 python -m pytest -m capped_isa
#
# With the cap set and TF_ENABLE_ONEDNN_OPTS unset, tests/conftest.py starts TensorFlow in the pytest
# process with oneDNN as TensorFlow would on the capped CPU (off below VNNI/BF16/AMX) and leaves the
# variable unset, so tfcpu's children decide by the policy as on an AVX2 server (an explicit 0 would be
# the user's choice, kept for INT8 children too). Chosen to stay small (about 3 min on 2 cores):
# node-id prefixes, marked by tests/conftest.py.
CAPPED = (
    "tests/unit/test_onednn_legs.py::test_isa_cap",
    "tests/unit/test_quantize.py::test_int8_agreement_is_measured_in_a_child",
    "tests/unit/test_quantize.py::test_bf16",
    "tests/unit/test_openvino_backend.py::test_bf16",
    "tests/unit/test_openvino_backend.py::test_check_refuses_disagreement",
    "tests/unit/test_openvino_backend.py::test_an_int8_ir_with_a_bf16_remainder",
    "tests/integration/test_transformers_accuracy.py",
    "tests/integration/test_openvino_tune.py::test_tune_measures_backend_by_precision",
)
CAPPED_MARKER = "capped_isa"
CAP = {"ONEDNN_MAX_CPU_ISA": "AVX2"}


def start_as_capped(environ: MutableMapping[str, str] | None = None) -> bool | None:
    """Under ``ONEDNN_MAX_CPU_ISA`` with ``TF_ENABLE_ONEDNN_OPTS`` unset: import TensorFlow here with oneDNN
    as TensorFlow turns it on by default on the capped CPU (`Topology.detect()` hides the flags above the
    cap), then unset the variable again. Returns that setting, or None when there was nothing to do."""
    env = os.environ if environ is None else environ
    if not env.get("ONEDNN_MAX_CPU_ISA") or env.get(VARIABLE) is not None or "tensorflow" in sys.modules:
        return None
    from tfcpu.session.runtime import runtime_info
    from tfcpu.topology import Topology

    on = Topology.detect().onednn_default
    env[VARIABLE] = "1" if on else "0"
    try:
        if runtime_info().onednn_enabled is not on:  # imports TensorFlow, which reads the variable once
            raise RuntimeError(f"TensorFlow did not start with oneDNN {'on' if on else 'off'}")
    finally:
        del env[VARIABLE]
    return on


def capped_hides() -> tuple[str, ...]:
    """The flags of this CPU the capped leg hides (empty on a CPU with nothing above AVX2, where the
    README's command already ran the leg's tests as they would run capped)."""
    from tfcpu.topology import Topology
    from tfcpu.topology.isa import cap_isa

    return cap_isa(Topology.detect().isa, CAP["ONEDNN_MAX_CPU_ISA"])[1]


def state(environ: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """Whether TensorFlow will run with oneDNN in this process, and why (read without importing TF).

    Args:
        environ: the environment to read (default ``os.environ``).
    """
    from tfcpu.session.precision import decide_onednn
    from tfcpu.topology import Topology

    env = os.environ if environ is None else environ
    value = decide_onednn(needs_onednn=False, environ=env).value
    if value is not None:
        return value, f"{VARIABLE}={env[VARIABLE]}"
    topo = Topology.detect()
    why = ", ".join(f for f in ("avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile") if f in topo.isa)
    return topo.onednn_default, f"{VARIABLE} unset, TensorFlow's default on this CPU: {why or 'no VNNI/BF16/AMX'}"


def header(environ: Mapping[str, str] | None = None) -> str:
    """The line pytest prints at the top of a run.

    Args:
        environ: the environment to read (default ``os.environ``).
    """
    on, why = state(environ)
    return f"tfcpu: oneDNN {'on' if on else 'off'} in this run ({why}); the other leg: {VARIABLE}={opposite(environ)}"


def opposite(environ: Mapping[str, str] | None = None) -> str:
    """``"0"`` when this run has oneDNN on, else ``"1"``: the value of the second CI leg.

    Args:
        environ: the environment to read (default ``os.environ``).
    """
    return "0" if state(environ)[0] else "1"


if __name__ == "__main__":
    # ``python -m tests.onednn``: the second leg's value; ``python -m tests.onednn capped``: the flags the
    # capped-ISA leg hides on this CPU (an empty line: nothing to cap, the leg adds nothing here).
    print(" ".join(capped_hides()) if sys.argv[1:] == ["capped"] else opposite())
    sys.exit(0)
