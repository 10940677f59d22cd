"""``InstanceSettings``: how the children of a multi-instance run start and are supervised (a frozen value),
and the folding of ``run_instances``' former keyword arguments into it and ``BenchmarkOptions``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from tfcpu.errors import ConfigError, did_you_mean
from tfcpu.runtime.backends._base import BenchmarkOptions, check_backend

__all__ = ["InstanceSettings", "from_keywords"]


@dataclass(frozen=True)
class InstanceSettings:
    """How the children of a multi-instance run are started and supervised (everything but the timing).

    Attributes:
        backend: the registered backend every child runs (a key of `tfcpu.runtime.backends.BACKENDS`).
        backend_options: the backend's options as ``(key, value)`` pairs.
        threads: ``(intra, inter)`` for every child instead of the plan's; ``0`` lets the runtime
            choose (its defaults), for baselines.
        env: extra environment for every child, as ``(name, value)`` pairs.
        onednn: oneDNN on/off for the children; None = what `decide_onednn()`
            says for the model's ops (INT8/BF16 turn it on) and the environment.
        collect_outputs: with a dataset, return the outputs in dataset order (``result.outputs``).
        startup_timeout: seconds an instance may take to load and warm up.
        timeout: seconds an instance may run after the common start before it is killed;
            default: 3 x duration + 120 s, or 600 s.
        strict: raise `InstanceError` when an instance fails, instead of
            returning a partial result.
        debug: let TensorFlow's C++ start-up lines through in the children's logs.
        allocator: ``"tcmalloc"``/``"jemalloc"`` preloaded (``LD_PRELOAD``) into every child; None:
            libc's malloc. A library missing on this OS is refused when the children are started.
    """

    backend: str = "tensorflow"
    backend_options: tuple[tuple[str, Any], ...] = ()
    threads: tuple[int, int] | None = None
    env: tuple[tuple[str, str], ...] = ()
    onednn: bool | None = None
    collect_outputs: bool = False
    startup_timeout: float = 600.0
    timeout: float | None = None
    strict: bool = False
    debug: bool = False
    allocator: str | None = None

    def __post_init__(self) -> None:
        from tfcpu.session.xeon import check_allocator

        check_backend(self.backend, where="InstanceSettings(backend=...)")
        object.__setattr__(self, "allocator", check_allocator(self.allocator, "InstanceSettings(allocator=...)"))
        if self.startup_timeout <= 0 or (self.timeout is not None and self.timeout <= 0):
            raise ConfigError("timeouts must be > 0 seconds", where="InstanceSettings")

    def deadline_after_start(self, options: BenchmarkOptions) -> float:
        if self.timeout is not None:
            return self.timeout
        return 3 * options.duration + 120 if options.duration else 600.0

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["backend_options"] = dict(self.backend_options)
        data["env"] = dict(self.env)
        data["threads"] = None if self.threads is None else list(self.threads)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstanceSettings:
        kwargs = dict(data)
        kwargs["backend_options"] = tuple(sorted(dict(data.get("backend_options") or {}).items()))
        kwargs["env"] = tuple(sorted(dict(data.get("env") or {}).items()))
        threads = data.get("threads")
        kwargs["threads"] = None if threads is None else (int(threads[0]), int(threads[1]))
        return cls(**kwargs)


_OPTION_KEYS = ("batch_size", "warmup", "steps", "duration", "shapes", "seed")
_SETTING_KEYS = ("threads", "env", "collect_outputs", "startup_timeout", "timeout")


def with_session_settings(settings: InstanceSettings | None, config: Any) -> InstanceSettings | None:
    """``settings`` plus a `SessionConfig`'s allocator and frozen-weights switch (what the settings leave unset).

    Args:
        settings: the caller's settings (None: defaults, returned as None when ``config`` adds nothing).
        config: a `tfcpu.session.config.SessionConfig` (its ``allocator`` and ``frozen_weights``).
    """
    from tfcpu.session.xeon import FROZEN_WEIGHTS

    env = dict(settings.env) if settings is not None else {}
    allocator = settings.allocator if settings is not None else None
    if config.frozen_weights is not None:
        env.setdefault(FROZEN_WEIGHTS, "1" if config.frozen_weights else "0")
    allocator = allocator or config.allocator
    if settings is None and not env and allocator is None:
        return None
    return replace(settings or InstanceSettings(), env=tuple(sorted(env.items())), allocator=allocator)


def from_keywords(
    options: BenchmarkOptions | None, settings: InstanceSettings | None, legacy: Mapping[str, Any]
) -> tuple[BenchmarkOptions, InstanceSettings]:
    """Fold the keyword arguments of the former 15-parameter ``run_instances`` into the two values."""
    from tfcpu.runtime.runner import benchmark_options

    for key in legacy:
        if key not in _OPTION_KEYS + _SETTING_KEYS:
            hint = did_you_mean(key, _OPTION_KEYS + _SETTING_KEYS + ("options", "settings", "data", "progress"))
            raise ConfigError(f"unknown argument {key!r}", where="run_instances", hint=hint)
    opts = benchmark_options(options, **{k: v for k, v in legacy.items() if k in _OPTION_KEYS})
    found = {k: v for k, v in legacy.items() if k in _SETTING_KEYS}
    if "env" in found:
        found["env"] = tuple(sorted(dict(found["env"] or {}).items()))
    if found.get("threads") is not None:
        found["threads"] = (int(found["threads"][0]), int(found["threads"][1]))
    return opts, replace(settings or InstanceSettings(), **found)
