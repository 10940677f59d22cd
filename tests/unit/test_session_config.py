"""SessionConfig: the white paper's Section 5 settings, derived from the Topology."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable

import pytest
from rich.console import Console

from tfcpu import ConfigError, SessionConfig, Topology
from tfcpu.session.config import DEFAULT_KMP_AFFINITY, Explanation
from tfcpu.session.runtime import RuntimeInfo

MANAGED = (
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "OMP_NUM_THREADS",
    "KMP_BLOCKTIME",
    "KMP_SETTINGS",
    "KMP_AFFINITY",
    "TF_ENABLE_ONEDNN_OPTS",
)


@pytest.fixture(autouse=True)
def _clean_env() -> None:
    """Start from an environment without the managed variables (conftest restores it after)."""
    for name in MANAGED:
        os.environ.pop(name, None)


def _runtime(threading: str, onednn: bool = False) -> RuntimeInfo:
    return RuntimeInfo(
        tf_version="2.21.0",
        keras_version=None,
        onednn_enabled=onednn,
        onednn_reason="test runtime",
        threading=threading,
        itex_installed=threading == "openmp",
        itex_version="2.15.0" if threading == "openmp" else None,
        neural_compressor_version=None,
        python="3.11",
    )


def test_paper_defaults_from_the_two_socket_machine(topology: Callable[[str], Topology]) -> None:
    topo = topology("xeon_gold_6252_2s")
    config = SessionConfig.for_topology(topo)
    assert config.intra_op_threads == topo.usable_physical_cores == 48
    assert config.inter_op_threads == 1
    assert config.omp_threads == 48
    assert config.onednn is None
    assert config.env() == {
        "TF_NUM_INTRAOP_THREADS": "48",
        "TF_NUM_INTEROP_THREADS": "1",
        "OMP_NUM_THREADS": "48",
        "KMP_BLOCKTIME": "1",
        "KMP_SETTINGS": "1",
        "KMP_AFFINITY": "granularity=fine,verbose,compact,1,0",
    }


def test_budget_respects_the_container_quota(topology: Callable[[str], Topology]) -> None:
    config = SessionConfig.for_topology(topology("container_quota"))
    assert config.intra_op_threads == 2 and config.env()["OMP_NUM_THREADS"] == "2"
    v1 = SessionConfig.for_topology(topology("container_v1_quota"))
    assert v1.intra_op_threads == 1


def test_default_topology_is_this_machine() -> None:
    assert SessionConfig.for_topology().intra_op_threads == Topology.detect().usable_physical_cores


def test_builders_return_new_frozen_objects(topology: Callable[[str], Topology]) -> None:
    base = SessionConfig.for_topology(topology("xeon_1s_18c"))
    changed = base.with_intra_op_threads(4).with_inter_op_threads(2)
    assert (base.intra_op_threads, base.inter_op_threads) == (18, 1)
    assert (changed.intra_op_threads, changed.inter_op_threads) == (4, 2)
    assert changed.omp_threads == 4  # follows intra-op threads
    assert changed.with_omp_threads(3).omp_threads == 3
    assert changed.with_omp_threads(3).with_omp_threads(None).omp_threads == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.intra_op = 3  # type: ignore[misc]


def test_kmp_onednn_and_extra_env() -> None:
    config = (
        SessionConfig(intra_op=4)
        .with_kmp(blocktime=0, settings=False, affinity="granularity=fine,compact,1,0")
        .with_onednn(True)
        .with_env(TF_CPP_MIN_LOG_LEVEL=2)
    )
    env = config.env()
    assert env["KMP_BLOCKTIME"] == "0" and env["KMP_SETTINGS"] == "0"
    assert env["KMP_AFFINITY"] == "granularity=fine,compact,1,0"
    assert env["TF_ENABLE_ONEDNN_OPTS"] == "1" and config.onednn is True
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "2"
    unset = config.with_kmp(affinity=None, settings=None).with_onednn(None)
    assert "KMP_AFFINITY" not in unset.env() and "KMP_SETTINGS" not in unset.env()
    assert "TF_ENABLE_ONEDNN_OPTS" not in unset.env() and unset.onednn is None
    assert config.with_kmp(blocktime="infinite").env()["KMP_BLOCKTIME"] == "infinite"
    assert SessionConfig(intra_op=1).env()["KMP_AFFINITY"] == DEFAULT_KMP_AFFINITY


@pytest.mark.parametrize(
    "build",
    [
        lambda c: c.with_intra_op_threads(-1),
        lambda c: c.with_intra_op_threads("4"),
        lambda c: c.with_intra_op_threads(True),
        lambda c: c.with_inter_op_threads(10_000),
        lambda c: c.with_omp_threads(0),
        lambda c: c.with_kmp(blocktime=-1),
        lambda c: c.with_kmp(blocktime="forever"),
        lambda c: c.with_kmp(settings="yes"),
        lambda c: c.with_kmp(affinity="compact, 1"),
        lambda c: c.with_onednn("1"),
        lambda c: c.with_env(**{"1BAD": "x"}),
        lambda c: c.with_env(FOO=[1]),
        lambda c: c.with_trust_env("no"),
    ],
)
def test_invalid_values_raise_at_once(build: Callable[[SessionConfig], SessionConfig]) -> None:
    with pytest.raises(ConfigError):
        build(SessionConfig(intra_op=2))


def test_managed_variables_point_to_their_builder() -> None:
    with pytest.raises(ConfigError) as info:
        SessionConfig(intra_op=2).with_env(OMP_NUM_THREADS="4")
    assert "with_omp_threads" in str(info.value)


def test_user_environment_overrides_defaults_and_says_so() -> None:
    os.environ["OMP_NUM_THREADS"] = "7"
    os.environ["TF_NUM_INTRAOP_THREADS"] = "5"
    os.environ["KMP_BLOCKTIME"] = "200"
    config = SessionConfig(intra_op=2)
    assert config.intra_op_threads == 5 and config.omp_threads == 7
    assert config.env()["KMP_BLOCKTIME"] == "200"
    explanation = config.explain(_runtime("eigen"))
    assert explanation.row("OMP_NUM_THREADS").source == "from environment"
    assert explanation.row("intra_op_parallelism_threads").value == "5"
    # an explicit builder call beats the environment
    assert config.with_omp_threads(3).omp_threads == 3
    assert config.with_omp_threads(3).explain(_runtime("eigen")).row("OMP_NUM_THREADS").source == "set explicitly"
    # without trust_env the environment is ignored
    strict = config.with_trust_env(False)
    assert strict.intra_op_threads == 2 and strict.env()["OMP_NUM_THREADS"] == "2"
    assert strict.env()["KMP_BLOCKTIME"] == "1"


def test_invalid_environment_value_is_ignored() -> None:
    os.environ["TF_NUM_INTRAOP_THREADS"] = "lots"
    config = SessionConfig(intra_op=3)
    assert config.intra_op_threads == 3
    assert "invalid" in config.explain(_runtime("eigen")).row("intra_op_parallelism_threads").source


def test_explain_on_stock_tensorflow() -> None:
    explanation = SessionConfig(intra_op=4, cpus=(0, 1, 2, 3)).explain(_runtime("eigen"))
    effect = {r.setting: r.takes_effect for r in explanation.rows}
    assert effect["intra_op_parallelism_threads"] is True
    assert effect["inter_op_parallelism_threads"] is True
    assert effect["CPU affinity"] is True
    for name in ("KMP_BLOCKTIME", "KMP_SETTINGS", "KMP_AFFINITY", "OMP_NUM_THREADS"):
        assert effect[name] is False, name
        assert "Eigen" in explanation.row(name).why
    assert explanation.row("CPU affinity").value == "0-3"


def test_explain_on_an_openmp_build() -> None:
    explanation = SessionConfig(intra_op=4).explain(_runtime("openmp", onednn=True))
    for name in ("KMP_BLOCKTIME", "KMP_SETTINGS", "KMP_AFFINITY", "OMP_NUM_THREADS"):
        assert explanation.row(name).takes_effect is True, name
    assert "oneDNN on" in explanation.row("TF_ENABLE_ONEDNN_OPTS").value


def test_explain_flags_oversubscription_and_unknown_rows() -> None:
    explanation = SessionConfig(intra_op=8, budget=2).with_env(MY_FLAG="1").explain(_runtime("eigen"))
    assert any("exceed the usable CPUs" in n for n in explanation.notes)
    assert explanation.row("MY_FLAG").takes_effect is None
    with pytest.raises(ConfigError) as info:
        explanation.row("KMP_AFINITY")
    assert "KMP_AFFINITY" in str(info.value)


def test_explain_on_this_machine_and_its_renderings() -> None:
    from tfcpu import runtime_info

    rt = runtime_info()
    explanation = SessionConfig.for_topology().explain()
    assert isinstance(explanation, Explanation)
    assert explanation.row("KMP_AFFINITY").takes_effect is rt.kmp_effective
    assert explanation.row("intra_op_parallelism_threads").takes_effect is True
    data = json.loads(json.dumps(explanation.to_dict()))
    assert data["runtime"]["TensorFlow"] == rt.tf_version
    assert {r["setting"] for r in data["rows"]} >= {"KMP_BLOCKTIME", "OMP_NUM_THREADS", "CPU affinity"}
    console = Console(record=True, width=200)
    console.print(explanation)
    assert "KMP_BLOCKTIME" in console.export_text()
    assert "<table" in explanation._repr_html_() and "KMP_SETTINGS" in explanation._repr_html_()
    assert explanation.to_markdown().count("\n") == len(explanation.rows) + 1


def test_config_proto_carries_the_threads() -> None:
    proto = SessionConfig(intra_op=3).with_inter_op_threads(2).config_proto()
    assert proto.intra_op_parallelism_threads == 3
    assert proto.inter_op_parallelism_threads == 2
    assert proto.use_per_session_threads is True


def test_zero_threads_leave_the_choice_to_tensorflow() -> None:
    config = SessionConfig(intra_op=4).with_intra_op_threads(0).with_inter_op_threads(0)
    env = config.env()
    assert "TF_NUM_INTRAOP_THREADS" not in env and "OMP_NUM_THREADS" not in env
    assert config.intra_op_threads == 0
    assert config.explain(_runtime("eigen")).row("intra_op_parallelism_threads").value.startswith("0")


def test_round_trip(topology: Callable[[str], Topology]) -> None:
    config = (
        SessionConfig.for_topology(topology("epyc_8_l3"))
        .with_inter_op_threads(2)
        .with_onednn(False)
        .with_env(TF_CPP_MIN_LOG_LEVEL="1")
    )
    again = SessionConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert again.env() == config.env()


def test_explain_prints_as_a_table_and_credits_its_own_values(topology, monkeypatch) -> None:
    config = SessionConfig.for_topology(topology("xeon_1s_18c"))
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", str(config.intra_op_threads))  # what apply() would set
    monkeypatch.setenv("KMP_BLOCKTIME", "0")  # a real user override
    sources = {row.setting: row.source for row in config.explain().rows}
    assert sources["intra_op_parallelism_threads"] == "usable physical cores"  # not "from environment"
    assert sources["KMP_BLOCKTIME"] == "from environment"
    text = str(config.explain())
    assert "takes effect" in text and "KMP_BLOCKTIME" in text and "ExplainRow(" not in text
