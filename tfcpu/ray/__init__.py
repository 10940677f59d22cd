"""Batch inference on Ray Data with tfcpu's pinned instances on every node (``pip install "tfcpu[ray]"``).

Ray Data's ``map_batches`` with a callable class on an actor pool is the standard way to run
batch inference over a cluster. Ray reserves CPUs per actor but does not pin actors to CPUs,
so two TensorFlow actors on a node share every core and oversubscribe them. tfcpu adds:

* `Predictor`: each actor claims one instance of its node's
  `InstancePlan` through a node-local lock file, pins itself to the instance's
  CPUs before TensorFlow starts, and runs one session with the instance's threads;
* `predict()`: sizes the actor pool from every node's topology (`survey()`) and
  returns the mapped dataset; `predict_with_report()` also returns per-node throughput;
* `serve()`: the same placement for online inference: one pinned Ray Serve replica per slot,
  requests merged with ``@serve.batch``, KServe v2 and TF Serving REST over HTTP (`tfcpu.ray._serve`).

Importing ``tfcpu.ray`` does not import Ray or TensorFlow; Ray is imported on first use.

    >>> import ray, tfcpu, tfcpu.ray
    >>> model = tfcpu.GraphOptimizer.default().run(tfcpu.load("model.pb")).model
    >>> ds = ray.data.read_parquet("s3://bucket/images/")
    >>> out = tfcpu.ray.predict(ds, model, cores_per_instance=4, batch_size=64, input_columns="image")
"""

from tfcpu.ray._cluster import NodeSlots, pool_size, predict, predict_with_report, survey
from tfcpu.ray._payload import ModelPayload
from tfcpu.ray._predictor import METADATA_COLUMNS, Predictor, column_name
from tfcpu.ray._report import ClusterReport, NodeReport
from tfcpu.ray._serve import ReplicaStats, ServeDeployment, ServeReplica, serve
from tfcpu.ray._slots import SlotClaim, claim_slot, default_lock_dir

__all__ = [
    "METADATA_COLUMNS",
    "ClusterReport",
    "ModelPayload",
    "NodeReport",
    "NodeSlots",
    "Predictor",
    "ReplicaStats",
    "ServeDeployment",
    "ServeReplica",
    "SlotClaim",
    "claim_slot",
    "column_name",
    "default_lock_dir",
    "pool_size",
    "predict",
    "predict_with_report",
    "serve",
    "survey",
]
