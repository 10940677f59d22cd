"""Graphs: load any TensorFlow model as a frozen graph, summarise it, optimise it, compare outputs.

Importing this package stays cheap: `load()`, `GraphOptimizer` and the passes
import TensorFlow only when they run. ``tfcpu.load`` lives in `tfcpu.graph.load` (not
re-exported here, so the module name stays importable).
"""

from tfcpu.graph.compare import Comparison, OutputComparison, compare_outputs, random_inputs
from tfcpu.graph.model import Model, ModelRecord, TensorSpec, tensor_name
from tfcpu.graph.optimizer import CheckResult, GraphOptimizer, OptimizationResult
from tfcpu.graph.summary import GraphSummary

__all__ = [
    "CheckResult",
    "Comparison",
    "GraphOptimizer",
    "GraphSummary",
    "Model",
    "ModelRecord",
    "OptimizationResult",
    "OutputComparison",
    "TensorSpec",
    "compare_outputs",
    "random_inputs",
    "tensor_name",
]
