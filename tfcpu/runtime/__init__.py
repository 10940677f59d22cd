"""Running models: the Runner and its backends, benchmarks, many pinned instances, launching, tuning."""

from tfcpu.runtime.backends._base import BenchmarkOptions
from tfcpu.runtime.multi import InstanceSettings
from tfcpu.runtime.results import BenchmarkResult, InstanceResult, MultiInstanceResult
from tfcpu.runtime.runner import Runner

__all__ = ["BenchmarkOptions", "BenchmarkResult", "InstanceResult", "InstanceSettings", "MultiInstanceResult", "Runner"]
