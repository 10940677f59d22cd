"""tfcpu.ray pieces that need no Ray cluster: slot locks, pool sizing, column names, payloads, batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.graphs import dense_softmax, dense_softmax_reference, two_inputs
from tfcpu.errors import ConfigError, PlanError, RunnerError
from tfcpu.plan import InstancePlan
from tfcpu.ray import ModelPayload, NodeSlots, Predictor, claim_slot, column_name, pool_size
from tfcpu.ray._report import aggregate
from tfcpu.ray._slots import plan_key


def test_column_names_are_sanitized_tensor_names() -> None:
    assert column_name("probs:0") == "probs"
    assert column_name("model/dense/BiasAdd:0") == "model_dense_BiasAdd"
    assert column_name("split:1") == "split_1"
    assert column_name("x") == "x"
    assert column_name("a-b.c:0", "pred_") == "pred_a_b_c"


def plan(topology, name: str = "xeon_1s_18c", k: int = 4) -> InstancePlan:  # type: ignore[no-untyped-def]
    return InstancePlan.for_topology(topology(name), cores_per_instance=k, method="sched_setaffinity")


def test_slots_are_exclusive_and_freed_on_release(topology, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = plan(topology)
    claims = [claim_slot(p, lock_dir=tmp_path, timeout=0) for _ in range(len(p))]
    cpus = [c.instance.cpus for c in claims]
    assert len(set(cpus)) == len(p) and sorted(c.instance.index for c in claims) == list(range(len(p)))
    assert not set(cpus[0]) & set(cpus[1])
    with pytest.raises(PlanError, match="slots on this machine are taken"):
        claim_slot(p, lock_dir=tmp_path, timeout=0.3, poll=0.05)
    claims[1].release()
    again = claim_slot(p, lock_dir=tmp_path, timeout=0)
    assert again.instance.index == 1
    for c in [*claims, again]:
        c.release()


def test_a_dead_process_frees_its_slot(topology, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = plan(topology, "xeon_gold_6252_2s", 24)  # 2 slots, one per socket
    assert len(p) == 2
    directory = tmp_path / plan_key(p)
    directory.mkdir()
    holder = textwrap.dedent(
        f"""
        import fcntl, os, sys, time
        fd = os.open({str(directory / "slot-0.lock")!r}, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("held", flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        first = claim_slot(p, lock_dir=tmp_path, timeout=0)
        assert first.instance.index == 1  # slot 0 belongs to the other process
        first.release()
    finally:
        child.kill()
        child.wait()
    freed = claim_slot(p, lock_dir=tmp_path, timeout=0)
    assert freed.instance.index == 0
    freed.release()


def test_different_plans_have_different_slots(topology) -> None:  # type: ignore[no-untyped-def]
    assert plan_key(plan(topology, k=4)) != plan_key(plan(topology, k=2))
    assert plan_key(plan(topology, k=4)) == plan_key(plan(topology, k=4))


def test_pool_size_puts_at_most_one_actor_per_slot() -> None:
    smt = NodeSlots("a", "a", ray_cpus=16.0, slots=4, cpulists=("0-1,8-9",) * 4)  # 4 cores x 2 threads per slot
    plain = NodeSlots("b", "b", ray_cpus=8.0, slots=4, cpulists=("0-1",) * 4)
    assert pool_size((smt,)) == (4, 4.0)
    actors, per_actor = pool_size((smt, plain))
    assert per_actor == 4.0 and actors == 4 + 2  # the no-SMT node fits 2 actors of 4 Ray CPUs
    assert pool_size((smt, plain), num_cpus=2.0) == (4 + 4, 2.0)
    small = NodeSlots("c", "c", ray_cpus=2.0, slots=2, cpulists=("0", "1"))
    assert pool_size((small,)) == (2, 1.0)
    with pytest.raises(PlanError, match="no actor fits"):
        pool_size((small,), num_cpus=3.0)
    with pytest.raises(PlanError):
        pool_size((NodeSlots("d", "d", 0.0, 2, ("0", "1")),))


def test_payload_round_trip_without_tensorflow_objects() -> None:
    model = dense_softmax()
    payload = ModelPayload.from_model(model)
    assert isinstance(payload.graph, bytes) and payload.input_names == ("x:0",)
    back = payload.to_model()
    assert back.inputs == model.inputs and back.outputs == model.outputs
    assert back.to_bytes() == model.to_bytes()
    with pytest.raises(ConfigError, match="expected a tfcpu Model"):
        ModelPayload.from_model("not a model")  # type: ignore[arg-type]


def test_payload_unpickles_without_importing_tensorflow() -> None:
    import pickle

    blob = pickle.dumps(ModelPayload.from_model(dense_softmax()))
    probe = f"import pickle, sys; p = pickle.loads({blob!r}); print('tensorflow' in sys.modules, p.input_names)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "False"


def test_an_actor_turns_onednn_on_before_tensorflow_for_an_int8_payload() -> None:
    """An INT8 graph's kernels exist only with oneDNN on; an actor reads that from the payload and sets
    TF_ENABLE_ONEDNN_OPTS before its Runner imports TensorFlow (an FP32 payload leaves it alone)."""
    import dataclasses
    import pickle

    from tfcpu.graph.model import NEEDS_ONEDNN

    fp32 = dense_softmax()
    int8_like = dataclasses.replace(fp32, metadata={NEEDS_ONEDNN: True})  # what the Quantizer marks
    for model, expected in ((int8_like, "1"), (fp32, None)):
        payload = ModelPayload.from_model(model)
        assert payload.needs_onednn is (expected == "1")
        probe = (
            "import os, pickle, sys; from tfcpu.ray import Predictor; "
            f"p = Predictor(pickle.loads({pickle.dumps(payload)!r}), instances=1, pin=False); "
            "from tfcpu.session.runtime import runtime_info; "
            "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), runtime_info().onednn_enabled)"
        )
        env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        value, running = out.stdout.split()[-2:]
        assert value == str(expected)
        if expected == "1":
            assert running == "True"  # the actor's TensorFlow really has it on


def test_importing_tfcpu_ray_imports_neither_ray_nor_tensorflow() -> None:
    probe = "import sys, tfcpu.ray; print(sorted(m for m in ('ray', 'tensorflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_ray_names_the_extra() -> None:
    probe = textwrap.dedent(
        """
        import sys
        sys.modules["ray"] = None  # as if ray were not installed
        import tfcpu.ray
        try:
            tfcpu.ray.survey(cores_per_instance=1)
        except tfcpu.MissingDependencyError as exc:
            print(str(exc).replace("\\n", " "))
        """
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert 'pip install "tfcpu[ray]"' in out.stdout


def test_predict_validates_before_touching_ray() -> None:
    from tfcpu.ray import predict

    with pytest.raises(PlanError, match="exactly one"):
        predict(None, dense_softmax())
    with pytest.raises(PlanError, match="exactly one"):
        predict(None, dense_softmax(), cores_per_instance=1, instances=2)


# -- the predictor's batch function, in this process, unpinned ------------------------------
def test_predictor_maps_columns_and_adds_outputs() -> None:
    pred = Predictor(ModelPayload.from_model(dense_softmax()), instances=1, pin=False, output_prefix="p_")
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    out = pred({"x": x, "id": np.arange(5)})
    assert set(out) == {"x", "id", "p_probs"}
    np.testing.assert_allclose(out["p_probs"], dense_softmax_reference(x), rtol=1e-5, atol=1e-6)
    meta = Predictor(dense_softmax(), instances=1, pin=False, keep_columns=False, metadata=True)({"x": x})
    assert meta["tfcpu_slot"].tolist() == [-1] * 5 and set(meta) >= {"probs", "tfcpu_cpus", "tfcpu_pid"}
    assert "x" not in meta


def test_predictor_input_mappings() -> None:
    payload = ModelPayload.from_model(two_inputs())
    a = np.ones((3, 3), np.float32)
    n = np.array([1, 2, 3], np.int32)
    want = a * n[:, None]
    by_map = Predictor(payload, instances=1, pin=False, input_columns={"feat": "a", "count": "n:0"})
    np.testing.assert_array_equal(by_map({"feat": a, "count": n})["out"], want)
    by_order = Predictor(payload, instances=1, pin=False, input_columns=["feat", "count"])
    np.testing.assert_array_equal(by_order({"feat": a, "count": n})["out"], want)
    with pytest.raises(ConfigError, match="names one column but the model has 2 inputs"):
        Predictor(payload, instances=1, pin=False, input_columns="feat")
    with pytest.raises(ConfigError, match="unknown input 'nn'"):
        Predictor(payload, instances=1, pin=False, input_columns={"feat": "a", "count": "nn"})
    with pytest.raises(ConfigError, match="does not feed"):
        Predictor(payload, instances=1, pin=False, input_columns={"feat": "a"})


def test_predictor_errors_name_the_column() -> None:
    pred = Predictor(ModelPayload.from_model(dense_softmax()), instances=1, pin=False)
    with pytest.raises(ConfigError, match="no column 'x'") as info:
        pred({"xx": np.zeros((2, 4), np.float32)})
    assert "did you mean 'xx'" in str(info.value)
    with pytest.raises(ConfigError, match="overwrite an input column"):
        pred({"x": np.zeros((2, 4), np.float32), "probs": np.zeros(2)})


def test_predictor_rejects_outputs_that_are_not_per_row() -> None:
    import tensorflow as tf

    from tfcpu.graph.model import Model, TensorSpec

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
        tf.reduce_sum(x, name="total")
    model = Model(
        g.as_graph_def(),
        (TensorSpec("x:0", "float32", (None, 2), "Placeholder"),),
        (TensorSpec("total:0", "float32", (), "Sum"),),
    )
    with pytest.raises(RunnerError, match="cannot be a column"):
        Predictor(model, instances=1, pin=False)({"x": np.ones((3, 2), np.float32)})


def test_report_counts_batches_once_per_node() -> None:
    cols = {
        "tfcpu_node": np.array(["n1"] * 4 + ["n2"] * 2, dtype=object),
        "tfcpu_host": np.array(["h1"] * 4 + ["h2"] * 2, dtype=object),
        "tfcpu_pid": np.array([10, 10, 11, 11, 20, 20]),
        "tfcpu_slot": np.array([0, 0, 1, 1, 0, 0]),
        "tfcpu_cpus": np.array(["0", "0", "1", "1", "0-3", "0-3"], dtype=object),
        "tfcpu_start": np.array([100.0, 100.0, 100.5, 100.5, 50.0, 50.0]),
        "tfcpu_end": np.array([101.0, 101.0, 102.0, 102.0, 52.0, 52.0]),
        "tfcpu_batch_rows": np.array([2, 2, 2, 2, 2, 2]),
    }
    report = aggregate(cols, seconds=10.0, actors=3, pinned=True)
    n1, n2 = report.nodes
    assert (n1.items, n1.instances, n1.batches, n1.cpus) == (4, 2, 2, ("0", "1"))
    assert n1.busy_seconds == pytest.approx(1.0 + 1.5) and n1.wall_seconds == pytest.approx(2.0)
    assert n1.throughput == pytest.approx(2.0) and n2.throughput == pytest.approx(1.0)
    assert report.items == 6 and report.throughput == pytest.approx(0.6)
    assert json.loads(report.to_json())["nodes"][0]["items"] == 4
    assert "h1" in report._repr_html_()
