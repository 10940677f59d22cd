"""Pinned multi-instance plans (white paper Section 7): InstancePlan, Instance, pinning probe."""

from tfcpu.plan.model import Instance, InstancePlan, kmp_affinity_for
from tfcpu.plan.pinning import METHODS, PinningProbe, clear_probe_cache, probe_pinning

__all__ = [
    "METHODS",
    "Instance",
    "InstancePlan",
    "PinningProbe",
    "clear_probe_cache",
    "kmp_affinity_for",
    "probe_pinning",
]
