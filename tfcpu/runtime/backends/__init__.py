"""Runner backends: the seam between ``Runner`` and the runtime that executes a model.

``Runner(model, config, backend=NAME)`` picks one by its name in `BACKENDS` (TensorFlow by default;
OpenVINO with ``tfcpu[openvino]``); each backend is a `Backend` subclass with the same lifecycle
(activate -> infer / warm / timed -> deactivate). Backends are imported on first use, so naming
one whose package is missing raises `MissingDependencyError` naming the extra.
"""

from tfcpu.runtime.backends._base import (
    BACKENDS,
    DEFAULT_BACKEND,
    Backend,
    BackendEntry,
    BenchmarkOptions,
    Timing,
    backend_class,
    backend_entry,
    check_backend,
    timed_loop,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "Backend",
    "BackendEntry",
    "BenchmarkOptions",
    "Timing",
    "backend_class",
    "backend_entry",
    "check_backend",
    "timed_loop",
]
