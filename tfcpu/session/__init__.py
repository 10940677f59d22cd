"""Session configuration: threads, environment, and what takes effect on this runtime."""

from tfcpu.session.runtime import RuntimeInfo, runtime_info

__all__ = ["RuntimeInfo", "runtime_info"]
