"""Compatibility module: the attribute passes now live one per module.

:mod:`tfcpu.graph.passes.strip_unknown_attrs` (with :func:`newer_producer` and
:func:`for_installed_tensorflow`) and :mod:`tfcpu.graph.passes.strip_default_attrs`. Imports
from here keep working.
"""

from __future__ import annotations

from tfcpu.graph.passes.strip_default_attrs import strip_default_attrs
from tfcpu.graph.passes.strip_unknown_attrs import for_installed_tensorflow, newer_producer, strip_unknown_attrs

__all__ = ["for_installed_tensorflow", "newer_producer", "strip_default_attrs", "strip_unknown_attrs"]
