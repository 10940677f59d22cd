"""tfcpu: TensorFlow inference on x86 CPUs, as fast as the hardware allows.

Importing tfcpu is cheap and side-effect free: it imports neither TensorFlow nor Neural
Compressor and changes no environment variable or CPU affinity. Heavy stages are
imported on first use of their names.

    >>> import tfcpu
    >>> topo = tfcpu.Topology.detect()
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from tfcpu.errors import (
    ConfigError,
    GraphError,
    InstanceError,
    MissingDependencyError,
    ModelError,
    OutputError,
    PassError,
    PlanError,
    QuantizationError,
    RunnerError,
    TfcpuError,
    TopologyError,
    UnsafeModelError,
)
from tfcpu.topology import Topology

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

# Public names that live in modules importing heavier packages: resolved on first access.
_LAZY: dict[str, str] = {
    "RuntimeInfo": "tfcpu.session.runtime",
    "runtime_info": "tfcpu.session.runtime",
    "SessionConfig": "tfcpu.session.config",
    "InstancePlan": "tfcpu.plan",
    "Instance": "tfcpu.plan",
    "load": "tfcpu.graph.load",
    "load_signatures": "tfcpu.graph.load",
    "save_signatures": "tfcpu.formats.savedmodel",
    "Model": "tfcpu.graph.model",
    "TensorSpec": "tfcpu.graph.model",
    "GraphOptimizer": "tfcpu.graph.optimizer",
    "OptimizationResult": "tfcpu.graph.optimizer",
    "SafetyReport": "tfcpu.graph.safety",
    "Comparison": "tfcpu.graph.compare",
    "compare_outputs": "tfcpu.graph.compare",
    "Quantizer": "tfcpu.quantize",
    "QuantizationResult": "tfcpu.quantize",
    "Runner": "tfcpu.runtime.runner",
    "BenchmarkOptions": "tfcpu.runtime.backends._base",
    "BenchmarkResult": "tfcpu.runtime.results",
    "MultiInstanceResult": "tfcpu.runtime.results",
    "InstanceSettings": "tfcpu.runtime.multi",
    "Pool": "tfcpu.runtime.pool",
    "PoolStats": "tfcpu.runtime.pool",
    "TuneResult": "tfcpu.runtime.tune",
    "DispatchReport": "tfcpu.runtime.dispatch",
    "Stopped": "tfcpu._stop",
    "stop_signals": "tfcpu._stop",
}

if TYPE_CHECKING:
    from tfcpu._stop import Stopped, stop_signals
    from tfcpu.formats.savedmodel import save_signatures
    from tfcpu.graph.compare import Comparison, compare_outputs
    from tfcpu.graph.load import load, load_signatures
    from tfcpu.graph.model import Model, TensorSpec
    from tfcpu.graph.optimizer import GraphOptimizer, OptimizationResult
    from tfcpu.graph.safety import SafetyReport
    from tfcpu.plan import Instance, InstancePlan
    from tfcpu.quantize import QuantizationResult, Quantizer
    from tfcpu.runtime.backends._base import BenchmarkOptions
    from tfcpu.runtime.dispatch import DispatchReport
    from tfcpu.runtime.multi import InstanceSettings
    from tfcpu.runtime.pool import Pool, PoolStats
    from tfcpu.runtime.results import BenchmarkResult, MultiInstanceResult
    from tfcpu.runtime.runner import Runner
    from tfcpu.runtime.tune import TuneResult
    from tfcpu.session.config import SessionConfig
    from tfcpu.session.runtime import RuntimeInfo, runtime_info

__all__ = [
    "BenchmarkOptions",
    "BenchmarkResult",
    "Comparison",
    "ConfigError",
    "DispatchReport",
    "GraphError",
    "GraphOptimizer",
    "Instance",
    "InstanceError",
    "InstancePlan",
    "InstanceSettings",
    "MissingDependencyError",
    "Model",
    "ModelError",
    "MultiInstanceResult",
    "OptimizationResult",
    "OutputError",
    "PassError",
    "PlanError",
    "Pool",
    "PoolStats",
    "QuantizationError",
    "QuantizationResult",
    "Quantizer",
    "Runner",
    "RunnerError",
    "RuntimeInfo",
    "SafetyReport",
    "SessionConfig",
    "Stopped",
    "TensorSpec",
    "TfcpuError",
    "Topology",
    "TopologyError",
    "TuneResult",
    "UnsafeModelError",
    "__version__",
    "compare_outputs",
    "load",
    "load_signatures",
    "runtime_info",
    "save_signatures",
    "stop_signals",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tfcpu' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
