"""``Model.summary()``: what TF's ``summarize_graph`` prints, as a frozen, renderable value."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tfcpu.graph._graphdef import const_elements, parse_input
from tfcpu.graph.model import TensorSpec

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.graph.model import Model

__all__ = ["GraphSummary", "summarize"]

_VARIABLE_OPS = ("VariableV2", "Variable", "VarHandleOp", "AutoReloadVariable", "TemporaryVariable")
_BN_OPS = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", "BatchNormWithGlobalNormalization", "Rsqrt")


@dataclass(frozen=True)
class GraphSummary:
    """Inputs, outputs, variables, parameters, control edges, op histogram and the next command."""

    source: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    nodes: int
    variables: tuple[str, ...]
    const_parameters: int
    const_nodes: int
    control_edges: int
    op_counts: dict[str, int] = field(default_factory=dict)
    functions: int = 0
    next_command: str = ""

    @property
    def unfolded_batch_norms(self) -> int:
        """FusedBatchNorm*/BatchNormWithGlobalNormalization/Rsqrt nodes still in the graph."""
        return sum(self.op_counts.get(op, 0) for op in _BN_OPS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "nodes": self.nodes,
            "variables": list(self.variables),
            "const_parameters": self.const_parameters,
            "const_nodes": self.const_nodes,
            "control_edges": self.control_edges,
            "op_counts": dict(self.op_counts),
            "functions": self.functions,
            "unfolded_batch_norms": self.unfolded_batch_norms,
            "next_command": self.next_command,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GraphSummary:
        return cls(
            source=data["source"],
            inputs=tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
            outputs=tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
            nodes=data["nodes"],
            variables=tuple(data["variables"]),
            const_parameters=data["const_parameters"],
            const_nodes=data["const_nodes"],
            control_edges=data["control_edges"],
            op_counts=dict(data["op_counts"]),
            functions=data.get("functions", 0),
            next_command=data.get("next_command", ""),
        )

    def _sections(self) -> list[tuple[str, list[str], list[list[Any]]]]:
        def shape(t: TensorSpec) -> str:
            return (
                "unknown" if t.shape is None else "[" + ", ".join("?" if d is None else str(d) for d in t.shape) + "]"
            )

        facts: list[list[Any]] = [
            ["nodes", self.nodes],
            ["constant parameters", f"{self.const_parameters:,} in {self.const_nodes} Const nodes"],
            ["variables", len(self.variables)],
            ["control edges", self.control_edges],
            ["library functions", self.functions],
            ["unfolded batch-norm ops", self.unfolded_batch_norms],
            ["next", self.next_command],
        ]
        return [
            (f"Model {self.source}", ["", ""], facts),
            ("Inputs", ["name", "dtype", "shape", "op"], [[t.name, t.dtype, shape(t), t.op] for t in self.inputs]),
            ("Outputs", ["name", "dtype", "shape", "op"], [[t.name, t.dtype, shape(t), t.op] for t in self.outputs]),
            ("Op types", ["op", "count"], [[k, v] for k, v in self.op_counts.items()]),
        ]

    def __rich__(self) -> Any:
        from rich.console import Group

        from tfcpu._render import rich_table

        return Group(*(rich_table(t, c, r) for t, c, r in self._sections()))

    def _repr_html_(self) -> str:
        from tfcpu._render import html_table

        return "".join(html_table(t, c, r) for t, c, r in self._sections())

    def __str__(self) -> str:
        lines = []
        for title, _cols, rows in self._sections():
            lines.append(f"{title}:")
            lines.extend("  " + "  ".join(str(c) for c in row) for row in rows)
        return "\n".join(lines)


def summarize(model: Model) -> GraphSummary:
    graph_def = model.graph_def
    control = sum(1 for n in graph_def.node for t in n.input if parse_input(t).control)
    consts = [n for n in graph_def.node if n.op == "Const"]
    source = model.source
    if source.startswith("<"):
        command = ""
    else:
        command = "tfcpu bench " + shlex.quote(source)
        command += " --inputs " + " ".join(model.input_names) + " --outputs " + " ".join(model.output_names)
    return GraphSummary(
        source=source,
        inputs=model.inputs,
        outputs=model.outputs,
        nodes=len(graph_def.node),
        variables=tuple(n.name for n in graph_def.node if n.op in _VARIABLE_OPS),
        const_parameters=sum(const_elements(n) for n in consts),
        const_nodes=len(consts),
        control_edges=control,
        op_counts=model.op_counts(),
        functions=len(graph_def.library.function),
        next_command=command,
    )
