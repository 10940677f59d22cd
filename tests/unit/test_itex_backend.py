"""ITEX support as seen from the main environment, where ITEX is NOT installed.

The ITEX-side behaviour (graphs from TF 2.21 running on TF 2.15 + ITEX) is tested in tests/itex
by ``nox -s itex``. Here: the refusal without ITEX, the settings and explain() logic, and the
attribute-stripping that makes newer graphs run on an older TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tests.graphs import dense_softmax, dense_softmax_reference
from tfcpu.errors import ConfigError, MissingDependencyError
from tfcpu.graph.model import Model
from tfcpu.session.config import ItexSettings, SessionConfig, itex_installed
from tfcpu.session.runtime import RuntimeInfo, _env_bool


def test_this_environment_has_no_itex():
    # The premise of the refusal tests below; tests/itex covers the installed case.
    assert itex_installed() is False


def test_with_itex_without_itex_names_the_extra(topology):
    config = SessionConfig.for_topology(topology("this_machine"))
    with pytest.raises(MissingDependencyError) as err:
        config.with_itex(amp="bf16")
    assert 'pip install "tfcpu[itex]"' in str(err.value)
    assert err.value.extra == "itex"


def test_bench_itex_without_itex_fails_with_install_hint(capsys):
    from tfcpu.cli.main import main

    code = main(["bench", "no-such-model.pb", "--itex"])
    err = capsys.readouterr().err
    assert code == 1
    assert 'pip install "tfcpu[itex]"' in err
    assert err.splitlines()[0].startswith("tfcpu bench: error: intel-extension-for-tensorflow is not installed")


def test_bench_amp_without_itex_flag_is_a_usage_error(capsys):
    from tfcpu.cli.main import main

    assert main(["bench", "no-such-model.pb", "--amp", "bf16"]) == 2
    assert "--amp needs --itex" in capsys.readouterr().err


def test_itex_settings_env_uses_itex_variable_names():
    assert ItexSettings().env() == {"ITEX_OMP_THREADPOOL": "1"}
    assert ItexSettings(amp="bf16", layout=False, threadpool="eigen").env() == {
        "ITEX_OMP_THREADPOOL": "0",
        "ITEX_AUTO_MIXED_PRECISION": "1",
        "ITEX_AUTO_MIXED_PRECISION_DATA_TYPE": "BFLOAT16",
        "ITEX_LAYOUT_OPT": "0",
    }


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"amp": "fp16"}, "bf16"), ({"threadpool": "openmpp"}, "openmp"), ({"layout": "yes"}, "layout")],
)
def test_itex_settings_validate_eagerly(kwargs, needle):
    with pytest.raises(ConfigError) as err:
        ItexSettings(**kwargs)
    assert needle in str(err.value)


def _itex_config(topology, **kwargs):
    # with_itex refuses without ITEX; build the same value directly to test the logic here.
    base = SessionConfig.for_topology(topology("this_machine"))
    return dataclasses.replace(
        base, itex=ItexSettings(**kwargs), onednn_opts=True, explicit=frozenset({"TF_ENABLE_ONEDNN_OPTS"})
    )


def _runtime(*, itex: bool) -> RuntimeInfo:
    return RuntimeInfo(
        tf_version="2.15.1",
        keras_version="2.15.0",
        onednn_enabled=True,
        onednn_reason="TF_ENABLE_ONEDNN_OPTS=1",
        threading="openmp" if itex else "eigen",
        itex_installed=itex,
        itex_version="2.15.0.0" if itex else None,
        neural_compressor_version=None,
        python="3.11",
    )


def test_explain_with_itex_openmp_pool_says_kmp_takes_effect(topology):
    exp = _itex_config(topology).explain(runtime=_runtime(itex=True))
    for name in ("KMP_AFFINITY", "KMP_BLOCKTIME", "OMP_NUM_THREADS"):
        assert exp.row(name).takes_effect is True, name
    assert exp.row("ITEX_OMP_THREADPOOL").value == "1"
    assert exp.row("TF_ENABLE_ONEDNN_OPTS").value == "1"
    assert any("OMP_NUM_THREADS and KMP_*" in n for n in exp.notes)


def test_explain_with_itex_eigen_pool_says_kmp_is_inert(topology):
    exp = _itex_config(topology, threadpool="eigen", amp="bf16").explain(runtime=_runtime(itex=True))
    assert exp.row("KMP_AFFINITY").takes_effect is False
    assert "ITEX_OMP_THREADPOOL=0" in exp.row("KMP_AFFINITY").why
    assert exp.row("ITEX_AUTO_MIXED_PRECISION").takes_effect is True
    assert dict(exp.env)["ITEX_OMP_THREADPOOL"] == "0"


def test_explain_itex_settings_on_a_runtime_without_itex(topology):
    exp = _itex_config(topology).explain(runtime=_runtime(itex=False))
    assert exp.row("ITEX_OMP_THREADPOOL").takes_effect is False
    assert exp.row("KMP_AFFINITY").takes_effect is False
    assert any("tfcpu[itex]" in n for n in exp.notes)


def test_itex_settings_round_trip_and_conflicts(topology):
    config = _itex_config(topology, amp="bf16", layout=True)
    again = SessionConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.env() == config.env()
    assert again.env()["ITEX_LAYOUT_OPT"] == "1"
    with pytest.raises(ConfigError, match="TF_ENABLE_ONEDNN_OPTS=1"):
        config.with_onednn(False)
    with pytest.raises(ConfigError, match="with_itex"):
        config.with_env(ITEX_OMP_THREADPOOL="0")
    assert "ITEX_OMP_THREADPOOL" not in config.without_itex().env()


def test_itex_config_needs_settings(topology):
    with pytest.raises(ConfigError, match="no ITEX settings"):
        SessionConfig.for_topology(topology("this_machine")).itex_config()


@pytest.mark.parametrize(
    ("text", "expected"), [(None, True), ("", True), ("0", False), ("false", False), ("1", True), ("junk", True)]
)
def test_itex_threadpool_variable_parsed_like_itex(text, expected):
    assert _env_bool(text, default=True) is expected


# -- graphs from a newer TensorFlow ----------------------------------------------------------


def _from_the_future() -> Model:
    """dense_softmax as if a far newer TensorFlow wrote it: a huge producer and an attribute
    (on MatMul, like TF 2.21's grad_a) that this TensorFlow's op registry does not define."""
    model = dense_softmax()
    graph_def = type(model.graph_def)()
    graph_def.CopyFrom(model.graph_def)
    graph_def.versions.producer = 10**6
    matmul = next(n for n in graph_def.node if n.op == "MatMul")
    matmul.attr["from_the_future"].b = True
    return dataclasses.replace(model, graph_def=graph_def)


def test_strip_unknown_attrs_only_when_the_producer_is_newer():
    from tfcpu.graph.passes import PassContext, run_pass

    future = _from_the_future()
    stripped, report = run_pass("strip_unknown_attrs", future.graph_def, PassContext(), only_newer_producer=True)
    assert [c for c in report.changed if c.endswith(".from_the_future")] and not report.skipped
    assert not any("from_the_future" in n.attr for n in stripped.node)
    assert any("from_the_future" in n.attr for n in future.graph_def.node)  # input untouched

    same_age = type(future.graph_def)()
    same_age.CopyFrom(future.graph_def)
    same_age.versions.producer = 1
    kept, report = run_pass("strip_unknown_attrs", same_age, PassContext(), only_newer_producer=True)
    assert not report.changed and report.skipped
    assert any("from_the_future" in n.attr for n in kept.node)


def test_default_plan_starts_with_the_compatibility_pass():
    from tfcpu.graph.optimizer import GraphOptimizer

    first = GraphOptimizer.default().steps[0]
    assert first.name == "strip_unknown_attrs" and first.kwargs()["only_newer_producer"] is True


def test_runner_runs_a_graph_from_a_newer_tensorflow():
    from tfcpu.runtime.runner import Runner

    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    with Runner(_from_the_future()) as runner:
        out = runner.run(x)["probs:0"]
    np.testing.assert_allclose(out, dense_softmax_reference(x), rtol=1e-5, atol=1e-6)


def test_optimizer_on_a_graph_from_a_newer_tensorflow_strips_and_checks():
    from tfcpu.graph.optimizer import GraphOptimizer

    result = GraphOptimizer.default().run(_from_the_future())
    assert any(c.endswith(".from_the_future") for c in result.report("strip_unknown_attrs").changed)
    assert result.check is not None and result.check.passed
