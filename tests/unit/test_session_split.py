"""SessionConfig after the split (issue 15 items 4 and 6): old import paths still work, properties are
resolved once (not from os.environ on every call), builders do not read the machine, from_dict errors
are tfcpu errors, and ``tfcpu config --env`` exports only what takes effect here (issue 19 item 12)."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tfcpu.errors import ConfigError
from tfcpu.session.config import SessionConfig
from tfcpu.session.runtime import RuntimeInfo
from tfcpu.topology import Topology

TopologyFactory = Callable[[str], Topology]


def _runtime(threading: str) -> RuntimeInfo:
    return RuntimeInfo(
        tf_version="2.21.0",
        keras_version=None,
        onednn_enabled=True,
        onednn_reason="default",
        threading=threading,
        itex_installed=False,
        itex_version=None,
        neural_compressor_version=None,
        python="3.12",
    )


def test_public_names_are_still_importable_from_config() -> None:
    from tfcpu.session import config, explain, itex

    for name in ("ItexSettings", "itex_installed", "Explanation", "ExplainRow", "DEFAULT_KMP_AFFINITY", "MANAGED"):
        assert hasattr(config, name), name
    assert config.ItexSettings is itex.ItexSettings and config.Explanation is explain.Explanation
    assert config._check_threads("x", 3) == 3 and callable(config._check_itex_bf16)


def test_properties_do_not_read_os_environ_on_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "5")
    config = SessionConfig(intra_op=2)
    assert config.intra_op_threads == 5  # the environment when it was built

    class Exploding(dict[str, str]):
        def __getitem__(self, key: str) -> str:
            raise AssertionError("a property read os.environ")

        def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
            raise AssertionError("a property read os.environ")

        def __contains__(self, key: object) -> bool:
            raise AssertionError("a property read os.environ")

    monkeypatch.setattr(os, "environ", Exploding())
    assert (config.intra_op_threads, config.omp_threads, config.onednn) == (5, 5, None)
    assert config.with_inter_op_threads(2).intra_op_threads == 5  # a with_* copy keeps the snapshot


def test_terminal_calls_take_an_explicit_environment() -> None:
    config = SessionConfig(intra_op=2)
    assert config.env(environ={"OMP_NUM_THREADS": "7"})["OMP_NUM_THREADS"] == "7"
    assert config.env(environ={})["OMP_NUM_THREADS"] == "2"
    row = config.explain(_runtime("eigen"), environ={"KMP_BLOCKTIME": "0"}).row("KMP_BLOCKTIME")
    assert (row.value, row.source) == ("0", "from environment")


def test_with_itex_does_not_read_the_machine_and_apply_checks_bf16(
    monkeypatch: pytest.MonkeyPatch, topology: TopologyFactory
) -> None:
    import tfcpu.session.config as config_module

    avx2 = SessionConfig.for_topology(topology("this_machine"))  # AVX2 EPYC: no AVX-512

    def detect(*args: object, **kwargs: object) -> Topology:
        raise AssertionError("with_itex read the machine")

    monkeypatch.setattr(Topology, "detect", staticmethod(detect))
    monkeypatch.setattr(config_module, "require_itex", lambda where: None)  # as if ITEX were installed
    planned = avx2.with_itex(amp="bf16")
    assert planned.itex is not None and planned.itex.amp == "bf16"
    with pytest.raises(ConfigError, match="needs AVX-512"):
        planned.apply()


@pytest.mark.parametrize("data", [{}, {"intra_op": "many"}, {"intra_op": 2, "cpus": [None]}])
def test_from_dict_of_a_bad_record_is_a_config_error(data: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="SessionConfig"):
        SessionConfig.from_dict(data)


def test_shell_exports_comment_out_what_takes_no_effect() -> None:
    config = SessionConfig(intra_op=2).with_trust_env(False)
    eigen = config.explain(_runtime("eigen")).shell_exports()
    assert "export TF_NUM_INTRAOP_THREADS=2" in eigen
    kmp = [line for line in eigen if "KMP_AFFINITY" in line]
    assert kmp and kmp[0].startswith("# export KMP_AFFINITY=") and "takes effect: no" in kmp[0]
    assert not any(line.startswith("export KMP_") or line.startswith("export OMP_") for line in eigen)
    openmp = config.explain(_runtime("openmp")).shell_exports()
    assert any(line.startswith("export KMP_AFFINITY=") for line in openmp)  # an OpenMP build honours them


def test_config_env_cli_exports_no_inert_kmp(capsys: pytest.CaptureFixture[str]) -> None:
    from tfcpu.cli.main import main
    from tfcpu.session.runtime import runtime_info

    assert main(["config", "--env"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("export TF_NUM_INTRAOP_THREADS=") for line in lines)
    if not runtime_info().kmp_effective:  # stock TensorFlow: Eigen pool, KMP_* inert
        assert not any(line.startswith("export KMP_") for line in lines)
        assert any(line.startswith("# export KMP_BLOCKTIME=") for line in lines)
