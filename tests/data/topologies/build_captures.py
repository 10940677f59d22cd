"""Write the synthetic topology captures in this folder (``python build_captures.py``).

``this_machine.json`` (AMD EPYC Milan, AVX2) and ``zen5_2vcpu.json`` (AMD EPYC Zen 5, AVX-512 with
VNNI and BF16, no AMX) are real captures (``tfcpu topology --capture``); the others are
built here from the facts of well-known machines, file by file as the Linux kernel lays
them out, so each test reads exactly what ``Topology.detect`` reads on such a machine.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).parent
FORMAT = "tfcpu-topology-capture/1"

XEON_CLX_FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr "
    "sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc pni pclmulqdq ssse3 fma cx16 "
    "sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand lahf_lm abm 3dnowprefetch bmi1 "
    "avx2 smep bmi2 erms invpcid mpx avx512f avx512dq rdseed adx smap clflushopt clwb avx512cd "
    "avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves pku ospke avx512_vnni md_clear arch_capabilities"
)
EPYC_FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 "
    "ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl pni pclmulqdq monitor "
    "ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt aes xsave avx f16c rdrand lahf_lm cmp_legacy svm "
    "bmi1 avx2 smep bmi2 erms invpcid cqm rdt_a rdseed adx smap clflushopt clwb sha_ni xsaveopt vaes"
)
ALDER_FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 "
    "ss ht syscall nx pdpe1gb rdtscp lm constant_tsc pni pclmulqdq ssse3 fma cx16 sse4_1 sse4_2 "
    "x2apic movbe popcnt aes xsave avx f16c rdrand lahf_lm abm 3dnowprefetch bmi1 avx2 smep bmi2 erms "
    "invpcid rdseed adx smap clflushopt clwb sha_ni xsaveopt xsavec xgetbv1 xsaves avx_vnni umip pku "
    "ospke waitpkg gfni vaes vpclmulqdq rdpid movdiri movdir64b fsrm serialize arch_lbr"
)
SPR_FLAGS = XEON_CLX_FLAGS + " avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8 hypervisor"


def cpulist(cpus: Iterable[int]) -> str:
    ordered = sorted(set(cpus))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


class Machine:
    """Describe CPUs one by one, then render the sysfs/procfs files."""

    def __init__(self, model: str, vendor: str, flags: str) -> None:
        self.model, self.vendor, self.flags = model, vendor, flags
        # cpu -> (socket, core_id, core_key, l3_key, node or None, online)
        self.cpus: dict[int, tuple[int, int, object, object, int | None, bool]] = {}
        self.extra: dict[str, str] = {}

    def cpu(
        self,
        cpu: int,
        socket: int,
        core_id: int,
        *,
        core_key: object = None,
        l3: object = None,
        node: int | None = 0,
        online: bool = True,
    ) -> None:
        key = core_key if core_key is not None else (socket, core_id)
        self.cpus[cpu] = (socket, core_id, key, l3 if l3 is not None else socket, node, online)

    def files(self, *, numa: bool = True, allowed: Iterable[int] | None = None) -> dict[str, str]:
        f: dict[str, str] = {}
        online = [c for c, v in self.cpus.items() if v[5]]
        f["sys/devices/system/cpu/online"] = cpulist(online) + "\n"
        for cpu, (sock, cid, key, l3, _node, on) in sorted(self.cpus.items()):
            base = f"sys/devices/system/cpu/cpu{cpu}"
            if cpu != 0:
                f[f"{base}/online"] = "1\n" if on else "0\n"
            if not on:
                continue  # the kernel hides topology/ and cache/ of offline CPUs
            sib = [c for c, v in self.cpus.items() if v[2] == key]
            l3cpus = [c for c, v in self.cpus.items() if v[3] == l3 and v[5]]
            f[f"{base}/topology/physical_package_id"] = f"{sock}\n"
            f[f"{base}/topology/core_id"] = f"{cid}\n"
            f[f"{base}/topology/thread_siblings_list"] = cpulist(c for c in sib if self.cpus[c][5]) + "\n"
            f[f"{base}/cache/index3/level"] = "3\n"
            f[f"{base}/cache/index3/type"] = "Unified\n"
            f[f"{base}/cache/index3/shared_cpu_list"] = cpulist(l3cpus) + "\n"
        if numa:
            nodes = sorted({v[4] for v in self.cpus.values() if v[4] is not None})
            for n in nodes:
                cpus = [c for c, v in self.cpus.items() if v[4] == n]
                f[f"sys/devices/system/node/node{n}/cpulist"] = cpulist(cpus) + "\n"
        blocks = []
        for cpu, (sock, cid, _key, _l3, _node, on) in sorted(self.cpus.items()):
            if not on:
                continue
            siblings = sum(1 for v in self.cpus.values() if v[0] == sock and v[5])
            cores = len({v[2] for v in self.cpus.values() if v[0] == sock and v[5]})
            blocks.append(
                f"processor\t: {cpu}\nvendor_id\t: {self.vendor}\nmodel name\t: {self.model}\n"
                f"physical id\t: {sock}\nsiblings\t: {siblings}\ncore id\t\t: {cid}\n"
                f"cpu cores\t: {cores}\nflags\t\t: {self.flags}\n"
            )
        f["proc/cpuinfo"] = "\n".join(blocks) + "\n"
        allowed_cpus = online if allowed is None else list(allowed)
        f["proc/self/status"] = f"Cpus_allowed_list:\t{cpulist(allowed_cpus)}\n"
        f["proc/self/cgroup"] = "0::/\n"
        f.update(self.extra)
        return f


def xeon_gold_6252_2s() -> dict[str, str]:
    """The white paper's machine: 2 × 24 cores, HT on; node0 = 0-23,48-71; 0 and 48 siblings."""
    m = Machine("Intel(R) Xeon(R) Gold 6252 CPU @ 2.10GHz", "GenuineIntel", XEON_CLX_FLAGS)
    # Cascade Lake core ids are sparse (mesh tiles with disabled cores).
    core_ids = [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 16, 17, 18, 19, 20, 21, 24, 25, 26, 27, 29]
    for sock in range(2):
        for i, cid in enumerate(core_ids):
            for thread in range(2):
                m.cpu(sock * 24 + i + 48 * thread, sock, cid, node=sock)
    return m.files()


def xeon_1s_18c() -> dict[str, str]:
    """The paper's single-socket example: 18 cores, HT on; CPU 0 and 18 are siblings."""
    m = Machine("Intel(R) Xeon(R) Gold 6154 CPU @ 3.00GHz", "GenuineIntel", XEON_CLX_FLAGS.replace(" avx512_vnni", ""))
    for i in range(18):
        for thread in range(2):
            m.cpu(i + 18 * thread, 0, i, node=0)
    return m.files()


def vm_no_numa() -> dict[str, str]:
    """A 4-vCPU cloud VM (2 cores × 2 threads, adjacent siblings) without a NUMA directory."""
    m = Machine("Intel(R) Xeon(R) Platinum 8480C", "GenuineIntel", SPR_FLAGS)
    for cpu in range(4):
        m.cpu(cpu, 0, cpu // 2, node=None)
    return m.files(numa=False)


def xeon_amx_2vcpu() -> dict[str, str]:
    """A 2-vCPU Sapphire Rapids KVM guest (1 core x 2 threads): AMX_INT8/AMX_BF16, AVX512_VNNI/BF16/FP16, AVX_VNNI."""
    m = Machine("Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz", "GenuineIntel", SPR_FLAGS + " avx_vnni")
    for cpu in range(2):
        m.cpu(cpu, 0, 0, node=0)
    return m.files()


def container_quota() -> dict[str, str]:
    """A container on a 16-core/32-thread host: cpuset 0-3,16-19 and cgroup v2 quota of 2 CPUs."""
    m = Machine("Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", "GenuineIntel", XEON_CLX_FLAGS)
    for i in range(16):
        for thread in range(2):
            m.cpu(i + 16 * thread, 0, i, node=0)
    f = m.files(allowed=[0, 1, 2, 3, 16, 17, 18, 19])
    f["proc/self/cgroup"] = "0::/kubepods/pod42/ctr\n"
    f["sys/fs/cgroup/cpu.max"] = "max 100000\n"
    f["sys/fs/cgroup/kubepods/cpu.max"] = "800000 100000\n"
    f["sys/fs/cgroup/kubepods/pod42/ctr/cpu.max"] = "200000 100000\n"
    return f


def container_v1_quota() -> dict[str, str]:
    """A cgroup v1 container: 8 CPUs visible, CFS quota 150 ms per 100 ms (1.5 CPUs)."""
    m = Machine("AMD EPYC 7R13 Processor", "AuthenticAMD", EPYC_FLAGS)
    for i in range(4):
        for thread in range(2):
            m.cpu(i + 4 * thread, 0, i, node=0)
    f = m.files()
    f["proc/self/cgroup"] = "12:cpu,cpuacct:/docker/0123abcd\n11:memory:/docker/0123abcd\n"
    f["sys/fs/cgroup/cpu,cpuacct/docker/0123abcd/cpu.cfs_quota_us"] = "150000\n"
    f["sys/fs/cgroup/cpu,cpuacct/docker/0123abcd/cpu.cfs_period_us"] = "100000\n"
    return f


def epyc_8_l3() -> dict[str, str]:
    """AMD EPYC 7543: 1 socket, 32 cores in 8 CCDs (8 L3 domains of 4 cores), SMT siblings N, N+32."""
    m = Machine("AMD EPYC 7543 32-Core Processor", "AuthenticAMD", EPYC_FLAGS)
    for i in range(32):
        for thread in range(2):
            m.cpu(i + 32 * thread, 0, i, l3=i // 4, node=0)
    return m.files()


def hybrid_alder_lake() -> dict[str, str]:
    """Intel Core i7-12700: 8 P cores with HT (0-15, siblings adjacent) + 4 E cores (16-19)."""
    m = Machine("12th Gen Intel(R) Core(TM) i7-12700", "GenuineIntel", ALDER_FLAGS)
    for i in range(8):
        for thread in range(2):
            m.cpu(2 * i + thread, 0, 4 * i, node=0)
    for j in range(4):
        m.cpu(16 + j, 0, 32 + j, node=0)
    f = m.files()
    f["sys/devices/cpu_core/cpus"] = "0-15\n"
    f["sys/devices/cpu_atom/cpus"] = "16-19\n"
    return f


def smt_off() -> dict[str, str]:
    """8 cores with SMT disabled in firmware/kernel: CPUs 8-15 exist but are offline."""
    m = Machine("Intel(R) Xeon(R) Silver 4314 CPU @ 2.40GHz", "GenuineIntel", XEON_CLX_FLAGS)
    for i in range(8):
        m.cpu(i, 0, i, node=0)
        m.cpu(i + 8, 0, i, node=0, online=False)
    return m.files()


def interleaved() -> dict[str, str]:
    """2 sockets × 4 cores × 2 threads numbered round-robin: node0 = even CPUs; 0 and 8 siblings."""
    m = Machine("Intel(R) Xeon(R) Gold 5218 CPU @ 2.30GHz", "GenuineIntel", XEON_CLX_FLAGS)
    for cpu in range(16):
        sock = cpu % 2
        m.cpu(cpu, sock, (cpu // 2) % 4, node=sock)
    return m.files()


CAPTURES = {
    "xeon_gold_6252_2s": xeon_gold_6252_2s,
    "xeon_1s_18c": xeon_1s_18c,
    "vm_no_numa": vm_no_numa,
    "xeon_amx_2vcpu": xeon_amx_2vcpu,
    "container_quota": container_quota,
    "container_v1_quota": container_v1_quota,
    "epyc_8_l3": epyc_8_l3,
    "hybrid_alder_lake": hybrid_alder_lake,
    "smt_off": smt_off,
    "interleaved": interleaved,
}


def main() -> None:
    for name, build in CAPTURES.items():
        data = {"format": FORMAT, "description": (build.__doc__ or "").strip(), "files": build()}
        (HERE / f"{name}.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
