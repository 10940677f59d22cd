"""Runner backends: the seam between ``Runner`` and the runtime that executes a model.

``Runner(model, config, backend="tensorflow" | "openvino")`` picks one by name; each backend is a
`Backend` subclass with the same lifecycle
(activate -> infer / warm / timed -> deactivate). Backends are imported on first use, so naming
one whose package is missing raises `MissingDependencyError` naming the extra.
"""

from tfcpu.runtime.backends._base import (
    BACKENDS,
    Backend,
    BenchmarkOptions,
    Timing,
    backend_class,
    check_backend,
    timed_loop,
)

__all__ = ["BACKENDS", "Backend", "BenchmarkOptions", "Timing", "backend_class", "check_backend", "timed_loop"]
