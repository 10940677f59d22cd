"""Session configuration: threads, environment, and what takes effect on this runtime."""

from tfcpu.session.config import Explanation, SessionConfig
from tfcpu.session.runtime import RuntimeInfo, runtime_info

__all__ = ["Explanation", "RuntimeInfo", "SessionConfig", "runtime_info"]
