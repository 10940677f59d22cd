"""The field's Xeon runtime settings: oneDNN's frozen weights and a preloaded allocator (children only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.graphs import echo_ids
from tfcpu import ConfigError, SessionConfig
from tfcpu.plan import InstancePlan
from tfcpu.runtime._settings import with_session_settings
from tfcpu.runtime.backends._base import BenchmarkOptions
from tfcpu.runtime.launch import launch
from tfcpu.runtime.multi import InstanceSettings, _env
from tfcpu.runtime.sweep import RuntimeSweep, parse_sweep, sweep_runtime
from tfcpu.session.runtime import RuntimeInfo
from tfcpu.session.xeon import FROZEN_WEIGHTS, PRELOAD, find_allocator, preload_env
from tfcpu.topology import Topology

_MAPS = "import sys; sys.stdout.write(open('/proc/self/maps').read())"


def _runtime(onednn: bool) -> RuntimeInfo:
    return RuntimeInfo(
        tf_version="2.21.0",
        keras_version=None,
        onednn_enabled=onednn,
        onednn_reason="test runtime",
        threading="eigen",
        itex_installed=False,
        itex_version=None,
        neural_compressor_version=None,
        python="3.11",
    )


def test_frozen_weights_row_says_it_needs_onednn_and_env_carries_it() -> None:
    config = SessionConfig(intra_op=2).with_frozen_weights(True)
    assert config.env({})[FROZEN_WEIGHTS] == "1"
    on = config.explain(_runtime(True), environ={}).row(FROZEN_WEIGHTS)
    off = config.explain(_runtime(False), environ={}).row(FROZEN_WEIGHTS)
    assert (on.takes_effect, off.takes_effect) == (True, False)
    assert "AreWeightsFrozen" in on.why and "oneDNN is off" in off.why
    assert FROZEN_WEIGHTS not in SessionConfig(intra_op=2).env({})
    assert SessionConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ConfigError, match="with_frozen_weights"):
        config.with_frozen_weights("yes")  # type: ignore[arg-type]


def test_allocator_is_never_in_this_process_and_its_row_names_the_library() -> None:
    # threads left to TensorFlow (0): apply() must not conflict with a TensorFlow an earlier test started
    config = SessionConfig(intra_op=0, inter_op=0).with_allocator("tcmalloc")
    assert PRELOAD not in config.env({})
    config.apply()
    assert PRELOAD not in os.environ
    row = config.explain(_runtime(True), environ={}).row("allocator")
    path = find_allocator("tcmalloc")
    assert path is not None, "CI installs libtcmalloc-minimal4 (.ci/run)"
    assert row.takes_effect is True and path in row.value and "children" in row.why
    assert config.preload_env({PRELOAD: "/x/other.so"})[PRELOAD] == f"{path} /x/other.so"
    with pytest.raises(ConfigError, match="unknown allocator") as info:
        config.with_allocator("tcmaloc")
    assert "tcmalloc" in str(info.value)


def test_a_missing_allocator_is_refused_naming_the_package(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found") as info:
        preload_env("jemalloc", {}, "test", dirs=[str(tmp_path)])
    assert "apt-get install libjemalloc2" in str(info.value)
    (tmp_path / "libjemalloc.so.2").write_bytes(b"")
    assert preload_env("jemalloc", {}, "test", dirs=[str(tmp_path)]) == {PRELOAD: str(tmp_path / "libjemalloc.so.2")}


def test_instance_children_run_on_the_allocator_and_with_frozen_weights() -> None:
    """The environment run_instances gives a child, used by a real child: the library is mapped in it."""
    plan = InstancePlan.for_topology(Topology.detect(), instances=1)
    config = SessionConfig(intra_op=1).with_allocator("jemalloc").with_frozen_weights(True)
    settings = with_session_settings(None, config)
    assert settings is not None and settings.allocator == "jemalloc"
    env = _env(echo_ids(), plan.instances[0], settings)
    assert env[FROZEN_WEIGHTS] == "1"
    maps = subprocess.run([sys.executable, "-c", _MAPS], env=env, capture_output=True, text=True, check=True).stdout
    assert "libjemalloc" in maps
    plain = _env(echo_ids(), plan.instances[0], InstanceSettings())
    maps = subprocess.run([sys.executable, "-c", _MAPS], env=plain, capture_output=True, text=True, check=True).stdout
    assert "libjemalloc" not in maps and "libtcmalloc" not in maps


def test_launch_copies_get_the_allocator() -> None:
    plan = InstancePlan.for_topology(Topology.detect(), instances=1)
    env = SessionConfig(intra_op=1).with_allocator("tcmalloc").preload_env({})
    code = "print(sum('libtcmalloc' in line for line in open('/proc/self/maps')))"
    result = launch([sys.executable, "-c", code], plan, env=env, timeout=60)
    assert result.ok
    assert int(result.copies[0].tail[-1]) > 0


def test_instance_settings_refuse_an_unknown_allocator_and_round_trip() -> None:
    with pytest.raises(ConfigError, match="unknown allocator"):
        InstanceSettings(allocator="mimalloc")
    settings = InstanceSettings(allocator="tcmalloc", env=((FROZEN_WEIGHTS, "1"),))
    assert InstanceSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings


def test_sweep_items_become_the_product_of_variants_and_bad_ones_are_refused() -> None:
    variants = parse_sweep(["allocator=none,jemalloc", "frozen-weights=0,1"])
    assert [(v.allocator, v.frozen_weights) for v in variants] == [
        (None, False),
        (None, True),
        ("jemalloc", False),
        ("jemalloc", True),
    ]
    settings = variants[3].settings(InstanceSettings(env=(("A", "1"),)))
    assert settings.allocator == "jemalloc" and dict(settings.env) == {"A": "1", FROZEN_WEIGHTS: "1"}
    with pytest.raises(ConfigError, match="cannot sweep") as info:
        parse_sweep(["alocator=tcmalloc"])
    assert "allocator" in str(info.value)
    with pytest.raises(ConfigError, match="unknown allocator"):
        parse_sweep(["allocator=mimalloc"])
    with pytest.raises(ConfigError, match="on/off"):
        parse_sweep(["frozen_weights=maybe"])


@pytest.mark.slow
def test_a_runtime_sweep_runs_each_variant_in_real_children_and_round_trips() -> None:
    variants = parse_sweep(["allocator=none,jemalloc"])
    result = sweep_runtime(
        echo_ids(), variants, cores_per_instance=[1], options=BenchmarkOptions(batch_size=4, warmup=1, steps=3)
    )
    assert [v.allocator for v, _ in result.variants] == [None, "jemalloc"]
    assert all(r.rows and r.rows[0].throughput > 0 for _, r in result.variants)
    assert result.best is not None and result.best[1].throughput == max(
        r.best.throughput for _, r in result.variants if r.best
    )
    assert RuntimeSweep.from_dict(json.loads(result.to_json())) == result
    from tfcpu._render import render_text

    assert "jemalloc malloc" in render_text(result.__rich__(), width=260)  # the table names each variant


def test_bench_refuses_an_allocator_without_children_before_loading(tmp_path: Path) -> None:
    argv = ["tfcpu", "bench", str(tmp_path / "absent.pb"), "--allocator", "tcmalloc"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--allocator needs instance children" in proc.stderr, proc.stderr
    assert "--instances" in proc.stderr
