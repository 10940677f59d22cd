"""The adapter to Intel Neural Compressor 3.x — the only module of tfcpu that imports it.

It builds ``StaticQuantConfig`` (plus ``SmoothQuantConfig`` when asked), wraps tfcpu's
checked calibration batches in the small data-loader protocol INC expects (a ``batch_size``
attribute, iteration yielding ``(inputs, labels)``), forwards INC's chatty logger to tfcpu's
debug log for the duration of the call, and wraps any INC failure in
`QuantizationError` with the original exception chained.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfcpu.errors import MissingDependencyError, QuantizationError, runtime_reason

__all__ = ["INC_INSTALL", "IncSettings", "inc_version", "quantize_graph"]

log = logging.getLogger(__name__)

INC_INSTALL = "neural-compressor[tf]"
_MIN_VERSION = (3, 0)


@dataclass(frozen=True)
class IncSettings:
    """What tfcpu asks INC for (derived from the Quantizer plan)."""

    per_channel: bool = True
    symmetric: bool = True
    algorithm: str = "minmax"
    smooth_quant_alpha: float | None = None
    fp32_nodes: tuple[str, ...] = ()


def _import_inc() -> Any:
    # INC reads its calibration ranges from what TensorFlow's Print ops write to file
    # descriptor 2, captured through a helper whose default stream is bound to ``sys.stderr``
    # *at import time*. Under pytest or Jupyter ``sys.stderr`` is a different file, and INC then
    # finds no ranges (IndexError deep inside). Importing it with the process's real stderr in
    # place binds the right descriptor.
    import sys

    try:
        with contextlib.redirect_stderr(sys.__stderr__ or sys.stderr):
            import neural_compressor
            from neural_compressor import tensorflow as inc_tf
    except ImportError as exc:
        raise MissingDependencyError(INC_INSTALL, purpose="INT8 quantisation uses Intel Neural Compressor 3.x") from exc
    version = getattr(neural_compressor, "__version__", "0")
    if _parse(version) < _MIN_VERSION or not hasattr(inc_tf, "quantize_model"):
        purpose = f"tfcpu needs Intel Neural Compressor >= 3.0, found {version}"
        raise MissingDependencyError(INC_INSTALL, purpose=purpose)
    return inc_tf


def _parse(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:2]:
        digits = re.match(r"\d+", piece)
        parts.append(int(digits.group()) if digits else 0)
    return tuple(parts)


def inc_version() -> str | None:
    """The installed INC version, without importing it."""
    import importlib.metadata

    try:
        return importlib.metadata.version("neural-compressor")
    except importlib.metadata.PackageNotFoundError:
        return None


class _Loader:
    """INC's data-loader protocol over tfcpu's checked batches."""

    def __init__(self, batches: Sequence[dict[str, np.ndarray]], input_names: Sequence[str]) -> None:
        self._batches = batches
        self._names = list(input_names)
        first = batches[0][self._names[0]]
        self.batch_size = int(first.shape[0]) if first.ndim else 1

    def __iter__(self) -> Iterator[tuple[Any, np.ndarray]]:
        for batch in self._batches:
            arrays = [batch[n] for n in self._names]
            inputs: Any = arrays[0] if len(arrays) == 1 else arrays
            yield inputs, np.zeros(len(arrays[0]) if arrays[0].ndim else 1, dtype=np.int64)


class _ForwardToDebug(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        log.debug("INC: %s", record.getMessage())


@contextlib.contextmanager
def _quiet_inc() -> Iterator[io.StringIO]:
    """Send INC's own logger (which has its own stream handler) and stdout to tfcpu's debug log."""
    inc_logger = logging.getLogger("neural_compressor")
    saved = (list(inc_logger.handlers), inc_logger.level, inc_logger.propagate)
    inc_logger.handlers = [_ForwardToDebug()]
    inc_logger.propagate = False
    inc_logger.setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.WARNING)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            yield captured
    finally:
        inc_logger.handlers, level, inc_logger.propagate = saved[0], saved[1], saved[2]
        inc_logger.setLevel(level)
        if captured.getvalue().strip():
            log.debug("INC stdout: %s", captured.getvalue().strip())


@contextlib.contextmanager
def _private_tempdir() -> Iterator[str]:
    """A temporary directory that is also ``tempfile``'s default for the block, removed afterwards.

    ``tempfile.tempdir`` is process-wide: while INC runs, other threads' temporary files land here
    too (and go away with it); quantisation is not meant to run concurrently with itself. Descriptors
    INC's ``mkstemp`` left open on files in the directory are closed, so their space is freed.
    """
    import tempfile

    saved = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix="tfcpu-inc-") as workspace:
        tempfile.tempdir = workspace
        try:
            yield workspace
        finally:
            tempfile.tempdir = saved
            _close_descriptors_under(workspace)


def _close_descriptors_under(directory: str) -> None:
    """Close this process's descriptors on files inside ``directory`` (Linux ``/proc/self/fd``)."""
    import os

    fd_dir = "/proc/self/fd"
    if not os.path.isdir(fd_dir):
        return
    prefix = os.path.realpath(directory) + os.sep
    for name in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue
        if target.startswith(prefix):
            with contextlib.suppress(OSError):
                os.close(int(name))
                log.debug("closed descriptor %s INC left open on %s", name, target)


def _configs(inc_tf: Any, settings: IncSettings) -> list[Any]:
    granularity = "per_channel" if settings.per_channel else "per_tensor"
    static = inc_tf.StaticQuantConfig(
        weight_sym=settings.symmetric,
        weight_granularity=granularity,
        weight_algorithm="minmax",
        act_sym=settings.symmetric,
        act_algorithm=settings.algorithm,
    )
    for name in settings.fp32_nodes:
        static.set_local("^" + re.escape(name) + "$", inc_tf.StaticQuantConfig(weight_dtype="fp32", act_dtype="fp32"))
    configs = [static]
    if settings.smooth_quant_alpha is not None:
        configs.insert(0, inc_tf.SmoothQuantConfig(alpha=settings.smooth_quant_alpha))
    return configs


def quantize_graph(
    graph_def: Any,
    input_names: Sequence[str],
    output_names: Sequence[str],
    batches: Sequence[dict[str, np.ndarray]],
    settings: IncSettings,
    *,
    source: str,
) -> Any:
    """Run INC static quantisation on a frozen GraphDef; return the quantised GraphDef."""
    inc_tf = _import_inc()
    configs = _configs(inc_tf, settings)

    try:
        # INC writes work files (nc_workspace/, fp32_logged_graph.pb, requant_min_max.log) relative
        # to the current directory unless told otherwise, and its calibration log (the min/max lines
        # TensorFlow's Print ops write) to tempfile.mkstemp(suffix=".log") in the system temp dir,
        # never deleting it (~200 KB per run) nor closing its descriptor: keep all of it in a private
        # temporary directory that goes away with the call (_private_tempdir).
        with _quiet_inc(), _private_tempdir() as workspace:
            wrapped = inc_tf.Model(graph_def, conf={"workspace_path": workspace})
            wrapped.workspace_path = workspace
            wrapped.input_tensor_names = list(input_names)
            wrapped.output_tensor_names = list(output_names)
            q_model = inc_tf.quantize_model(
                wrapped,
                configs if len(configs) > 1 else configs[0],
                _Loader(batches, input_names),
                calib_iteration=len(batches),
            )
    except MissingDependencyError:
        raise
    except Exception as exc:
        raise QuantizationError(
            "Intel Neural Compressor failed to quantise the graph",
            where=source,
            why=f"{type(exc).__name__}: {runtime_reason(exc)}",
            hint="run with --debug / logging at DEBUG for INC's log; try .optimize(False) or fewer options",
        ) from exc
    if q_model is None or getattr(q_model, "graph_def", None) is None:
        raise QuantizationError("Intel Neural Compressor returned no model", where=source)
    return q_model.graph_def
