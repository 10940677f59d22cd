"""``Model`` is a value: its GraphDef is copied on entry and its metadata is read-only (issue 15, item 4)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tests.graphs import dense_softmax
from tfcpu.graph.model import OPTIMIZED, Model


def test_graph_def_is_copied_on_entry() -> None:
    original = dense_softmax()
    graph_def = original.graph_def
    model = Model(graph_def, original.inputs, original.outputs, source="copy")
    nodes = model.node_count
    graph_def.node.add(name="added_after", op="NoOp")  # the caller changes its own protobuf...
    assert model.node_count == nodes  # ...the Model does not see it
    assert model.graph_def is not graph_def


def test_metadata_is_read_only_and_round_trips_through_json() -> None:
    model = replace(dense_softmax(), metadata={"precision": "int8", "fp32_nodes": ["a", "b"], "nested": {"k": [1]}})
    assert model.metadata.get("precision") == "int8" and model.metadata.get("missing") is None
    with pytest.raises(TypeError):
        model.metadata["precision"] = "fp32"  # type: ignore[index]
    assert model.metadata["fp32_nodes"] == ("a", "b")  # nested lists are frozen too
    with pytest.raises(TypeError):
        model.metadata["nested"]["k"] = 2  # type: ignore[index]
    data = json.loads(json.dumps(model.to_dict()))
    assert data["metadata"] == {"precision": "int8", "fp32_nodes": ["a", "b"], "nested": {"k": [1]}}
    assert {**model.metadata, "x": 1}["x"] == 1  # building a new Model's metadata still works


def test_optimized_with_reads_the_metadata_key() -> None:
    model = dense_softmax()
    assert model.optimized_with is None
    done = replace(model, metadata={OPTIMIZED: ["fold_constants", "strip_attrs"]})
    assert done.optimized_with == ("fold_constants", "strip_attrs")


def test_graph_optimizer_marks_its_result_as_optimized() -> None:
    from tfcpu.graph.optimizer import GraphOptimizer

    result = GraphOptimizer.default().run(dense_softmax())
    assert result.model.optimized_with  # the key Quantizer.run reads to skip a second optimisation


def test_save_into_an_unwritable_place_is_a_user_error(tmp_path: Path) -> None:
    from tfcpu.errors import OutputError

    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(OutputError) as info:  # the one writer's error (tfcpu._io), not a bare OSError
        dense_softmax().save(blocker / "model.pb")  # a path under a regular file: ENOTDIR
    assert str(blocker / "model.pb") in str(info.value) and info.value.exit_code == 2
    assert not list(tmp_path.glob("**/*.tmp"))
