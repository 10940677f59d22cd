"""The TensorFlow backend: one ``tf.compat.v1.Session`` per Runner, threads from the session's ConfigProto.

Threads are applied through the ConfigProto (intra/inter-op), which takes effect even after
TensorFlow has started. Whether oneDNN runs is decided by `tfcpu.session.precision`:
before TensorFlow is imported, activating sets what the graph needs; afterwards a graph whose
INT8/BF16 kernels exist only in oneDNN is refused with the fix, instead of failing inside
TensorFlow with "Missing 0-th output".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from tfcpu.errors import RunnerError, runtime_reason
from tfcpu.runtime.backends._base import Backend

__all__ = ["TensorFlowBackend"]

log = logging.getLogger(__name__)


class TensorFlowBackend(Backend):
    """Runs a frozen GraphDef in one TensorFlow session (``make_callable`` in input order).

    The config's intra/inter-op threads go into the session's ConfigProto (``0`` = TensorFlow's own
    default); without a config, TensorFlow's defaults apply. It takes no options.
    """

    name = "tensorflow"

    _session: Any = None
    _callable: Any = None

    def _threads(self) -> tuple[int, int]:
        cfg = self.config
        return (cfg.intra_op_threads, cfg.inter_op_threads) if cfg is not None else (0, 0)

    def _config_proto(self, tf: Any) -> Any:
        if self.config is not None:
            return self.config.config_proto()
        return tf.compat.v1.ConfigProto()

    def activate(self) -> None:
        if self.model.preferred_backend != "tensorflow":
            from tfcpu.errors import RunnerError

            raise RunnerError(
                "the TensorFlow backend cannot run this model",
                where=self.model.source,
                why=f"it holds no TensorFlow graph (it is a {self.model.preferred_backend} model)",
                hint=f"use backend={self.model.preferred_backend!r} (tfcpu bench picks it for an .xml file)",
            )
        if self.options:
            from tfcpu.errors import ConfigError

            raise ConfigError(
                f"the tensorflow backend takes no options, got {', '.join(sorted(self.options))}",
                where="Runner(backend='tensorflow', options=...)",
                hint="set threads through the SessionConfig, or choose a backend that takes these options",
            )
        from tfcpu._lazy import import_tensorflow
        from tfcpu.graph.passes.strip_attrs import for_installed_tensorflow
        from tfcpu.session.precision import decide_for, prepare_process

        prepare_process(decide_for(self.model), where=self.model.source)
        tf = import_tensorflow()
        graph = tf.Graph()
        try:
            with graph.as_default():
                tf.compat.v1.import_graph_def(for_installed_tensorflow(self.model.graph_def), name="")
            fetches = [graph.get_tensor_by_name(n) for n in self.model.output_names]
            feeds = [graph.get_tensor_by_name(n) for n in self.model.input_names]
        except (ValueError, KeyError, TypeError) as exc:
            raise RunnerError(
                "TensorFlow could not import the graph", where=self.model.source, why=runtime_reason(exc)
            ) from exc
        session = tf.compat.v1.Session(graph=graph, config=self._config_proto(tf))
        self._session = session
        self._callable = session.make_callable(fetches, feed_list=feeds)
        log.debug("tensorflow backend activated for %s", self.model.source)

    def infer(self, ordered: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self._callable is None:
            raise RunnerError("the TensorFlow backend is not active", hint="call activate() first")
        try:
            return list(self._callable(*ordered))
        except Exception as exc:
            raise RunnerError(
                "TensorFlow failed to run the graph", where=self.model.source, why=runtime_reason(exc)
            ) from exc

    def deactivate(self) -> None:
        if self._session is not None:
            self._session.close()
        self._session = None
        self._callable = None

    def describe(self) -> dict[str, Any]:
        from tfcpu.session.runtime import runtime_info

        info = runtime_info()
        intra, inter = self._threads()
        return {
            "backend": self.name,
            "precision": _precision(self.model.graph_def),
            "onednn": bool(info.onednn_enabled),
            "tf_version": info.tf_version,
            "intra_op_threads": intra,
            "inter_op_threads": inter,
        }


def _precision(graph_def: Any) -> str:
    """What the graph's ops compute in: int8 (quantised kernels), bf16 (bfloat16 tensors) or fp32."""
    from tfcpu.graph.model import is_quantized_op

    bf16 = False
    for node in graph_def.node:
        if is_quantized_op(node.op):
            return "int8"
        if not bf16:
            bf16 = any(attr.type == 14 for key, attr in node.attr.items() if key in ("T", "DstT", "dtype"))
    return "bf16" if bf16 else "fp32"
