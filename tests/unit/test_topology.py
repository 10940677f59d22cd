"""Topology.detect on captured trees of real machine layouts."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tfcpu.errors import ConfigError, TopologyError
from tfcpu.topology import Topology, format_cpulist, parse_cpulist

Detect = Callable[[str], Topology]


def r(a: int, b: int) -> list[int]:
    return list(range(a, b + 1))


def test_paper_two_socket_xeon(topology: Detect) -> None:
    t = topology("xeon_gold_6252_2s")
    assert t.vendor == "GenuineIntel"
    assert "Gold 6252" in t.model_name
    assert (t.sockets, t.physical_cores, t.logical_cpus, t.threads_per_core) == (2, 48, 96, 2)
    assert [(n.id, list(n.cpus)) for n in t.numa_nodes] == [
        (0, r(0, 23) + r(48, 71)),
        (1, r(24, 47) + r(72, 95)),
    ]
    assert t.core_of(0).cpus == (0, 48)
    assert t.core_of(47).cpus == (47, 95)
    assert t.core_of(30).socket == 1 and t.core_of(30).numa_node == 1
    assert len(t.l3_domains) == 2
    assert t.usable_cpus == 96 and t.cpu_quota is None
    assert {"avx512f", "avx512_vnni"} <= set(t.isa)
    assert t.precisions["int8"].accelerated and t.precisions["int8"].instruction == "avx512_vnni"
    assert not t.precisions["bf16"].accelerated
    assert not t.is_vm and not t.hybrid
    # sparse kernel core ids are kept as the kernel reports them, not renumbered
    assert t.core_of(7).core_id == 8


def test_paper_one_socket_18_cores(topology: Detect) -> None:
    t = topology("xeon_1s_18c")
    assert (t.sockets, t.physical_cores, t.logical_cpus, t.threads_per_core) == (1, 18, 36, 2)
    assert t.core_of(0).cpus == (0, 18)
    assert t.core_of(17).cpus == (17, 35)
    assert "avx512_vnni" not in t.isa
    assert not t.precisions["int8"].accelerated
    assert "smaller and model-dependent" in t.precisions["int8"].advice


def test_this_machine_capture(topology: Detect) -> None:
    t = topology("this_machine")
    assert t.vendor == "AuthenticAMD"
    assert (t.sockets, t.physical_cores, t.logical_cpus, t.threads_per_core) == (1, 2, 2, 1)
    assert t.usable_cpus == 2
    assert t.is_vm
    assert "avx2" in t.isa and "avx512f" not in t.isa
    assert not t.onednn_default
    assert t.cpu_quota is None  # cgroup v1 quota of -1 means unlimited


def test_vm_without_numa_directory(topology: Detect) -> None:
    t = topology("vm_no_numa")
    assert [(n.id, list(n.cpus)) for n in t.numa_nodes] == [(0, [0, 1, 2, 3])]
    assert any("synthetic" in n for n in t.notes)
    assert (t.physical_cores, t.threads_per_core) == (2, 2)
    assert t.core_of(1).cpus == (0, 1)
    assert t.is_vm
    assert t.precisions["int8"].instruction == "amx_int8"
    assert t.precisions["bf16"].instruction == "amx_bf16"
    assert t.onednn_default


def test_container_with_cpuset_and_v2_quota(topology: Detect) -> None:
    t = topology("container_quota")
    assert t.logical_cpus == 32 and t.physical_cores == 16
    assert t.allowed_cpus == (0, 1, 2, 3, 16, 17, 18, 19)
    # the tightest cpu.max along /kubepods/pod42/ctr wins: 200000/100000
    assert t.cpu_quota == 2.0
    assert t.usable_cpus == 2
    assert len(t.usable_cores) == 4
    assert t.usable_physical_cores == 2


def test_container_with_v1_quota_rounds_down(topology: Detect) -> None:
    t = topology("container_v1_quota")
    assert t.cpu_quota == 1.5
    assert t.usable_cpus == 1


def test_epyc_eight_l3_domains(topology: Detect) -> None:
    t = topology("epyc_8_l3")
    assert (t.sockets, t.physical_cores, t.logical_cpus) == (1, 32, 64)
    assert len(t.numa_nodes) == 1
    assert len(t.l3_domains) == 8
    assert t.l3_domains[0] == (0, 1, 2, 3, 32, 33, 34, 35)
    assert t.core_of(5).l3 == 1 and t.core_of(37).l3 == 1
    assert t.core_of(0).cpus == (0, 32)


def test_hybrid_p_and_e_cores(topology: Detect) -> None:
    t = topology("hybrid_alder_lake")
    assert t.hybrid
    assert (t.physical_cores, t.logical_cpus, t.threads_per_core) == (12, 20, 2)
    p = [c for c in t.cores if c.kind == "P"]
    e = [c for c in t.cores if c.kind == "E"]
    assert len(p) == 8 and len(e) == 4
    assert p[0].cpus == (0, 1)
    assert [c.cpus for c in e] == [(16,), (17,), (18,), (19,)]
    assert t.precisions["int8"].instruction == "avx_vnni"


def test_smt_off_with_offline_siblings(topology: Detect) -> None:
    t = topology("smt_off")
    assert t.online_cpus == tuple(range(8))
    assert (t.physical_cores, t.logical_cpus, t.threads_per_core) == (8, 8, 1)
    assert not t.smt


def test_interleaved_numbering(topology: Detect) -> None:
    t = topology("interleaved")
    assert [(n.id, list(n.cpus)) for n in t.numa_nodes] == [
        (0, [0, 2, 4, 6, 8, 10, 12, 14]),
        (1, [1, 3, 5, 7, 9, 11, 13, 15]),
    ]
    assert t.core_of(0).cpus == (0, 8)
    assert t.core_of(3).cpus == (3, 11)
    assert t.core_of(3).socket == 1
    assert (t.sockets, t.physical_cores, t.threads_per_core) == (2, 8, 2)


@pytest.mark.parametrize(
    "name",
    ["xeon_gold_6252_2s", "epyc_8_l3", "hybrid_alder_lake", "container_quota", "vm_no_numa", "this_machine"],
)
def test_json_round_trip(topology: Detect, name: str) -> None:
    t = topology(name)
    again = Topology.from_json(t.to_json())
    assert again == t
    data = json.loads(t.to_json())
    for key in (
        "vendor",
        "model_name",
        "sockets",
        "physical_cores",
        "logical_cpus",
        "threads_per_core",
        "numa_nodes",
        "cores",
        "l3_domains",
        "allowed_cpus",
        "cpu_quota",
        "usable_cpus",
        "isa",
        "precisions",
    ):
        assert key in data
    assert set(data["precisions"]["int8"]) == {"accelerated", "instruction", "advice", "flags", "kernels"}
    assert data["cores"][0].keys() >= {"socket", "core_id", "cpus", "kind"}


def test_renderings_show_the_tree(topology: Detect) -> None:
    from rich.console import Console

    t = topology("xeon_gold_6252_2s")
    html = t._repr_html_()
    assert "<table" in html and "NUMANode 1" in html and "PU 48" in html
    console = Console(record=True, width=120)
    console.print(t)
    text = console.export_text()
    assert "Package 1" in text and "Core 0 [P]: PU 0 PU 48" in text


def test_only_cpuinfo_still_works(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text(
        "".join(
            f"processor\t: {i}\nvendor_id\t: GenuineIntel\nmodel name\t: X\nphysical id\t: 0\n"
            f"core id\t\t: {i // 2}\nflags\t\t: avx avx2 fma\n\n"
            for i in range(4)
        )
    )
    t = Topology.detect(tmp_path)
    assert (t.logical_cpus, t.physical_cores, t.threads_per_core) == (4, 2, 2)
    assert t.isa == ("avx", "fma", "avx2")
    assert t.notes


def test_empty_root_raises_topology_error(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="no CPU found"):
        Topology.detect(tmp_path)


def test_real_machine_matches_affinity() -> None:
    t = Topology.detect()
    assert set(t.allowed_cpus) == set(os.sched_getaffinity(0)) & set(t.online_cpus)
    assert 1 <= t.usable_cpus <= len(os.sched_getaffinity(0))
    assert sum(len(c.cpus) for c in t.cores) == t.logical_cpus


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("0-3,8", (0, 1, 2, 3, 8)), ("", ()), ("5", (5,)), ("0-7:2", (0, 2, 4, 6)), (" 1,0 \n", (0, 1))],
)
def test_parse_cpulist(text: str, cpus: tuple[int, ...]) -> None:
    assert parse_cpulist(text) == cpus


@pytest.mark.parametrize("bad", ["a", "3-1", "1-", "0-7:0"])
def test_parse_cpulist_rejects(bad: str) -> None:
    with pytest.raises(ConfigError, match="not a CPU list") as info:
        parse_cpulist(bad)
    assert isinstance(info.value, ValueError) and info.value.hint and "0-3,8" in info.value.hint


def test_core_of_an_unknown_cpu_names_the_cpus_there_are() -> None:
    t = Topology.detect()
    cpus = format_cpulist(c for core in t.cores for c in core.cpus)
    with pytest.raises(ConfigError, match="no logical CPU 100000") as info:
        t.core_of(100000)
    assert info.value.hint is not None and cpus in info.value.hint


def test_format_cpulist_round_trip() -> None:
    cpus = (0, 1, 2, 3, 48, 49, 50, 51, 60)
    assert format_cpulist(cpus) == "0-3,48-51,60"
    assert parse_cpulist(format_cpulist(cpus)) == cpus


def test_int8_advice_depends_on_the_vector_units() -> None:
    from tfcpu.topology.isa import precisions

    def advice(*flags: str) -> str:
        return {p.name: p for p in precisions(flags)}["int8"].advice

    assert "smaller and model-dependent" in advice("avx", "avx2", "fma")
    assert "may be slower than FP32" in advice("avx", "sse4_2")
    assert "2-4x" in advice("avx2", "avx512f", "avx512_vnni")


def test_zen5_capture_has_vnni_and_bf16_without_amx(topology: Detect) -> None:
    t = topology("zen5_2vcpu")
    assert t.vendor == "AuthenticAMD" and t.logical_cpus == 2
    assert {"avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni"} <= set(t.isa) and "amx_tile" not in t.isa
    assert t.onednn_default
    int8, bf16 = t.precisions["int8"], t.precisions["bf16"]
    assert int8.instruction == "avx512_vnni" and int8.flags == ("avx512_vnni", "avx_vnni")
    assert int8.kernels == "avx512_core_vnni"
    assert bf16.accelerated and bf16.kernels == "avx512_core_bf16"
    assert "without AMX" in bf16.advice and "measure first" in bf16.advice
    assert t.summary().endswith("AVX512F AVX512_VNNI AVX_VNNI AVX512_BF16")


def test_amx_xeon_capture_names_amx_int8_and_bf16(topology: Detect) -> None:
    t = topology("xeon_amx_2vcpu")
    assert (t.physical_cores, t.logical_cpus, t.threads_per_core) == (1, 2, 2)
    int8, bf16, fp16 = t.precisions["int8"], t.precisions["bf16"], t.precisions["fp16"]
    assert int8.flags == ("amx_int8", "avx512_vnni", "avx_vnni") and int8.kernels == "avx512_core_amx"
    assert bf16.flags == ("amx_bf16", "avx512_bf16") and bf16.kernels == "avx512_core_amx"
    assert "AMX_BF16 tiles" in bf16.advice and "AMX_INT8 tiles" in int8.advice
    assert fp16.kernels == "avx512_core_fp16"
    line = t.summary()
    assert "AMX_INT8" in line and "AMX_BF16" in line and "AVX512_VNNI" in line and "AVX512_BF16" in line
    assert "AMX_TILE" not in line


def test_avx2_only_summary_says_what_is_missing(topology: Detect) -> None:
    t = topology("this_machine")
    assert t.summary().endswith("AVX2, no VNNI/BF16/AMX")
    assert t.precisions["int8"].kernels == "avx2" and not t.precisions["int8"].flags
    assert t.precisions["bf16"].kernels == "" and not t.precisions["bf16"].accelerated


def test_avx_vnni_only_uses_the_256_bit_kernels() -> None:
    from tfcpu.topology.isa import precisions

    int8 = {p.name: p for p in precisions(("avx", "fma", "avx2", "avx_vnni"))}["int8"]
    assert int8.instruction == "avx_vnni" and int8.kernels == "avx2_vnni"
    assert "256-bit" in int8.advice


def test_table_shows_flags_and_kernels_per_precision(topology: Detect) -> None:
    from tfcpu.topology.render import table_rows

    rows = dict(table_rows(topology("xeon_amx_2vcpu")))
    assert rows["int8 accelerated"].startswith(
        "yes via AMX_INT8, AVX512_VNNI, AVX_VNNI (oneDNN avx512_core_amx kernels)"
    )
    assert "AMX_INT8 AMX_BF16" in rows["inference ISA"]
