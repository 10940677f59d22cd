"""Graphs: load any TensorFlow model as a frozen graph, summarise it, optimise it."""

from tfcpu.graph.model import Model, TensorSpec, tensor_name

__all__ = ["Model", "TensorSpec", "tensor_name"]
