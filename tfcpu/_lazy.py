"""Lazy imports of heavy optional packages, with install guidance when they are missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from tfcpu.errors import MissingDependencyError

__all__ = ["import_optional", "import_tensorflow"]


def import_optional(
    module: str, *, package: str | None = None, extra: str | None = None, purpose: str | None = None
) -> ModuleType:
    """Import ``module`` or raise `MissingDependencyError` naming what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package or module, extra=extra, purpose=purpose) from exc


def import_tensorflow() -> ModuleType:
    """Import TensorFlow quietly (its C++ INFO logs are noise for tfcpu users).

    The environment is left to the precision policy (`tfcpu.session.precision.library_log_default()`):
    ``TF_CPP_MIN_LOG_LEVEL=2`` unless the user, or tfcpu's CLI (``quiet_tensorflow``), chose a level.
    """
    from tfcpu.session.precision import library_log_default

    library_log_default()
    return import_optional("tensorflow", package="tensorflow", purpose="tfcpu needs TensorFlow to run models")
