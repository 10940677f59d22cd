"""Compatibility module: the attribute passes now live one per module.

`tfcpu.graph.passes.strip_unknown_attrs` (with `newer_producer()` and
`for_installed_tensorflow()`) and `tfcpu.graph.passes.strip_default_attrs`. Imports
from here keep working.
"""

from __future__ import annotations

from tfcpu.graph.passes.strip_default_attrs import strip_default_attrs
from tfcpu.graph.passes.strip_unknown_attrs import for_installed_tensorflow, newer_producer, strip_unknown_attrs

__all__ = ["for_installed_tensorflow", "newer_producer", "strip_default_attrs", "strip_unknown_attrs"]
