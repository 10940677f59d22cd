"""The pass contract: modified, requires, ensures, instruments, naming the diverging pass, fluent methods."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
from test_graph_builders import tf1_style_graph

import tfcpu
from tfcpu.errors import ConfigError, PassError
from tfcpu.graph._graphdef import const_array, set_const_value
from tfcpu.graph.instruments import PassInstrument
from tfcpu.graph.optimizer import GraphOptimizer, PassStep
from tfcpu.graph.passes import PASSES, Outcome, PassContext, register_pass, run_pass


@pytest.fixture
def registered():
    """Register passes for one test and remove them afterwards."""
    names: list[str] = []

    def add(name, summary="test only", **kwargs):
        def decorate(function):
            register_pass(name, summary, **kwargs)(function)
            names.append(name)
            return function

        return decorate

    yield add
    for name in names:
        del PASSES[name]


def _corrupt_first_weight(graph_def, ctx):
    """Scale the first float weight tensor by 1.01: a wrong rewrite."""
    for node in graph_def.node:
        if node.op == "Const" and node.attr["dtype"].type == 1 and node.attr["value"].tensor.tensor_shape.dim:
            set_const_value(node, const_array(node) * 1.01)
            return Outcome(changed=[node.name])
    return Outcome()


@pytest.fixture
def model():
    return tfcpu.load(tf1_style_graph(), outputs="out")


def test_modified_is_computed_when_a_pass_does_not_say_and_checked_when_it_does(registered, model):
    @registered("test_noop")
    def noop(graph_def, ctx):
        return Outcome(changed=["looked at everything"])

    @registered("test_liar")
    def liar(graph_def, ctx):
        _corrupt_first_weight(graph_def, ctx)
        return Outcome(modified=False)

    ctx = PassContext(("x",), ("out",))
    assert run_pass("test_noop", model.graph_def, ctx)[1].modified is False
    assert run_pass("remove_nodes", model.graph_def, ctx)[1].modified is True
    with pytest.raises(PassError, match="'test_liar' says it did not modify the graph, but it did"):
        run_pass("test_liar", model.graph_def, ctx)
    result = GraphOptimizer().add("test_noop").strip_unused_nodes().run(model)
    assert [r.modified for r in result.reports] == [False, True]
    assert result.to_dict()["reports"][0]["modified"] is False


def test_requires_is_checked_when_the_plan_is_built(registered):
    @registered("test_needs_folding", requires=("fold_constants",))
    def needs(graph_def, ctx):
        return Outcome()

    with pytest.raises(
        ConfigError, match=r"(?s)'test_needs_folding' requires 'fold_constants'.*add \.fold_constants\(\)"
    ):
        GraphOptimizer().remove_nodes().add("test_needs_folding")
    with pytest.raises(ConfigError, match="requires 'fold_constants'"):
        GraphOptimizer(steps=(PassStep("test_needs_folding"),))  # construction is checked too
    with pytest.raises(ConfigError, match="requires 'fold_constants'"):
        GraphOptimizer.from_transforms("test_needs_folding fold_constants")  # order matters
    plan = GraphOptimizer.from_transforms("fold_constants test_needs_folding")
    assert [s.name for s in plan.steps] == ["fold_constants", "test_needs_folding"]
    assert "(requires fold_constants)" in plan.explain()
    with pytest.raises(ConfigError, match="requires 'fold_constantz'"):

        @registered("test_needs_typo", requires=("fold_constantz",))
        def typo(graph_def, ctx):
            return Outcome()

        GraphOptimizer().fold_constants().add("test_needs_typo")


def test_ensures_runs_after_the_pass_and_names_it(registered, model):
    def no_mul_left(graph_def, ctx):
        left = [n.name for n in graph_def.node if n.op == "Mul"]
        return f"Mul nodes left: {left}" if left else None

    @registered("test_promises_no_mul", ensures=no_mul_left)
    def promise(graph_def, ctx):
        return Outcome()

    with pytest.raises(
        PassError, match=r"'test_promises_no_mul' broke its post-condition.*Mul nodes left: \['fc_scale'\]"
    ):
        GraphOptimizer().add("test_promises_no_mul").run(model, check=False)
    # the built-in ensures hold on a real plan
    GraphOptimizer.default().run(model, check=False)


def test_a_failed_check_names_the_first_pass_whose_output_diverged(registered, model):
    registered("test_break_weights")(_corrupt_first_weight)
    plan = GraphOptimizer().strip_unused_nodes().remove_nodes().add("test_break_weights").fold_constants()
    with pytest.raises(PassError) as info:
        plan.run(model)
    text = str(info.value)
    assert "does not compute what the original computes" in text
    assert "pass 3 of 4, 'test_break_weights', is the first whose output diverges" in text
    assert "drop 'test_break_weights'" in text
    # with check_each_pass the run stops right after the culprit
    with pytest.raises(PassError, match=r"after pass 'test_break_weights'.*pass 3 'test_break_weights' is the first"):
        plan.run(model, check_each_pass=True)


def test_instruments_time_dump_and_check_each_pass(model, tmp_path):
    calls: list[str] = []

    class Recorder(PassInstrument):
        def before_run(self, m):
            calls.append("start")

        def before_pass(self, index, name, m):
            calls.append(f"before {index} {name}")

        def after_pass(self, index, name, m, report):
            assert report.name == name and m.node_count == report.nodes_after
            calls.append(f"after {index} {name}")

        def after_run(self, m):
            calls.append("end")

    plan = GraphOptimizer().strip_unused_nodes().remove_nodes().fold_constants()
    result = plan.run(model, timing=True, dump_dir=tmp_path / "dump", check_each_pass=True, instruments=[Recorder()])
    assert calls == ["start", "before 0 strip_unused_nodes", "after 0 strip_unused_nodes", "before 1 remove_nodes",
                     "after 1 remove_nodes", "before 2 fold_constants", "after 2 fold_constants", "end"]  # fmt: skip
    assert [n for n, _ in result.timings] == ["strip_unused_nodes", "remove_nodes", "fold_constants"]
    assert all(s >= 0 for _, s in result.timings)
    # each pass that changed the graph is checked against the original; unchanged ones need no run
    assert [r.modified for r in result.reports] == [True, True, False]
    assert [n for n, _ in result.pass_checks] == ["strip_unused_nodes", "remove_nodes"]
    assert all(c.passed for _, c in result.pass_checks)
    names = sorted(p.split("/")[-1] for p in result.dumped)
    assert names == ["00_input.pb", "01_strip_unused_nodes.pb", "02_remove_nodes.pb", "03_fold_constants.pb",
                     "passes.json"]  # fmt: skip
    last = tfcpu.load(tmp_path / "dump" / "03_fold_constants.pb", outputs="out")
    assert last.op_counts() == result.model.op_counts()
    assert [r["name"] for r in json.loads((tmp_path / "dump" / "passes.json").read_text())] == [
        s.name for s in plan.steps
    ]
    data = result.to_dict()
    assert len(data["pass_checks"]) == 2 and len(data["timings"]) == 3 and len(data["dumped"]) == 5


def test_every_registered_pass_has_a_fluent_method_with_its_signature(registered, model):
    @registered("test_generated", scale=2.0, enabled=True)
    def generated(graph_def, ctx, scale, enabled):
        return Outcome()

    opt = GraphOptimizer()
    for name, info in PASSES.items():
        method = getattr(opt, name)
        params = inspect.signature(method).parameters
        assert {k: p.default for k, p in params.items()} == info.defaults, name
        step = method().steps[-1] if not info.requires else None
        assert step is None or (step.name == name and step.kwargs() == info.defaults)
    plan = GraphOptimizer().test_generated(scale=3.0)
    assert plan.steps[0].kwargs() == {"scale": 3.0, "enabled": True}
    with pytest.raises(ConfigError, match="has no parameter 'scal'"):
        GraphOptimizer().test_generated(scal=1.0)
    with pytest.raises(ConfigError, match="enabled must be true or false"):
        GraphOptimizer().test_generated(enabled="yes")
    with pytest.raises(AttributeError, match="did you mean 'fold_constants'"):
        GraphOptimizer().fold_constant()  # type: ignore[operator]
    assert GraphOptimizer().test_generated().run(model).reports[0].modified is False


def test_pass_names_must_be_identifiers(registered):
    with pytest.raises(ConfigError, match="not a public Python identifier"):
        registered("fold-things")(lambda graph_def, ctx: Outcome())
    with pytest.raises(ConfigError, match="registered twice"):
        registered("fold_constants")(lambda graph_def, ctx: Outcome())


def test_check_result_keeps_its_fields_on_the_comparator(model):
    result = GraphOptimizer.default().run(model)
    check = result.check
    assert check is not None and check.comparison is not None
    assert check.max_abs_error == check.comparison.max_abs and check.worst_output == check.comparison.worst
    assert set(check.per_output) == {o.name for o in check.comparison.outputs}
    assert check.comparison.label == "original vs optimised"
    assert np.isfinite(check.max_rel_error) and check.diverged_at is None
