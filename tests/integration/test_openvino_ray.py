"""``tfcpu.ray.predict(..., backend="openvino")`` on a local 2-CPU Ray cluster, on a tiny classifier:
every actor runs its pinned instance on OpenVINO (read back from the actor's own Runner), and the
outputs equal TensorFlow's row by row."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.openvino_nets import bn_classifier
from tfcpu.errors import ConfigError
from tfcpu.ray import Predictor, predict
from tfcpu.runtime.runner import Runner

ROOT = Path(__file__).resolve().parents[2]


class Reporting(Predictor):
    """Writes what its Runner runs (``describe()``) next to the slot locks, one file per actor."""

    def __init__(self, model: Any, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        info = {"describe": self._runner.describe(), "cpus": sorted(self.instance.cpus)}
        (Path(kwargs["lock_dir"]) / f"actor-{os.getpid()}.json").write_text(json.dumps(info, default=str))


def test_predict_runs_every_actor_on_openvino_pinned(ray_cluster: Any, tmp_path: Path) -> None:
    model = bn_classifier()
    n = 64
    images = np.random.default_rng(5).standard_normal((n, 8, 8, 3)).astype(np.float32)
    ds = ray_cluster.data.from_items([{"id": i, "image": images[i]} for i in range(n)], override_num_blocks=4)
    out = predict(
        ds,
        model,
        cores_per_instance=1,
        batch_size=8,
        input_columns="image",
        output_prefix="pred_",
        lock_dir=str(tmp_path),
        predictor_class=Reporting,
        backend="openvino",
        backend_options={"hint": "latency"},
    ).materialize()
    rows = sorted(out.take_all(), key=lambda r: int(r["id"]))
    assert [int(r["id"]) for r in rows] == list(range(n))
    with Runner(model) as runner:  # TensorFlow, in this process
        want = runner.run(images)["probs:0"]
    np.testing.assert_allclose(np.stack([r["pred_probs"] for r in rows]), want, rtol=1e-4, atol=1e-5)
    actors = [json.loads(p.read_text()) for p in tmp_path.glob("actor-*.json")]
    assert actors, "no actor reported"
    for actor in actors:
        info = actor["describe"]
        assert info["backend"] == "openvino" and info["precision"] == "fp32", info
        assert info["hint"] == "LATENCY" and info["threads"] == len(actor["cpus"]) == 1, info
    assert len({tuple(a["cpus"]) for a in actors}) == len(actors)  # each actor on its own slot


def test_an_unknown_backend_is_refused_before_ray_starts_actors(ray_cluster: Any) -> None:
    ds = ray_cluster.data.from_items([{"x": np.zeros((8, 8, 3), np.float32)}])
    with pytest.raises(ConfigError, match="did you mean 'openvino'"):
        predict(ds, bn_classifier(), cores_per_instance=1, backend="openvin")
