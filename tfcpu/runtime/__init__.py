"""Running models: the Runner, benchmarks, many pinned instances, launching, tuning."""

from tfcpu.runtime.results import BenchmarkResult, InstanceResult, MultiInstanceResult
from tfcpu.runtime.runner import Runner

__all__ = ["BenchmarkResult", "InstanceResult", "MultiInstanceResult", "Runner"]
