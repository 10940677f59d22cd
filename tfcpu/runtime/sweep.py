"""``tfcpu tune --sweep KEY=V1,V2``: the layout sweep repeated per runtime setting (allocator, frozen weights).

`parse_sweep()` turns ``["allocator=none,tcmalloc", "frozen_weights=0,1"]`` into the variants to run
(their product); `sweep_runtime()` runs `tfcpu.runtime.tune.tune()` once per variant, each with the
variant's `InstanceSettings` (``allocator`` preloaded in the children, ``TF_ONEDNN_ASSUME_FROZEN_WEIGHTS``
in their environment), and picks the best row over all of them. A missing allocator library is
refused before anything runs.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tfcpu._render import TextTable, html_table, rich_table
from tfcpu.errors import ConfigError, did_you_mean
from tfcpu.graph.model import Model
from tfcpu.runtime.multi import InstanceSettings
from tfcpu.runtime.tune import TuneResult, TuneRow

__all__ = ["RuntimeSweep", "RuntimeVariant", "parse_sweep", "sweep_runtime"]

SWEEP_KEYS = ("allocator", "frozen_weights")
_BOOL = {"1": True, "on": True, "true": True, "yes": True, "0": False, "off": False, "false": False, "no": False}


@dataclass(frozen=True)
class RuntimeVariant:
    """One runtime setting of the sweep: an allocator (None: libc) and the frozen-weights switch."""

    allocator: str | None = None
    frozen_weights: bool = False

    @property
    def label(self) -> str:
        return f"{self.allocator or 'libc'} malloc{', frozen weights' if self.frozen_weights else ''}"

    def settings(self, base: InstanceSettings) -> InstanceSettings:
        """``base`` with this variant's allocator and frozen-weights variable.

        Args:
            base: the sweep's common settings.
        """
        from tfcpu.session.xeon import FROZEN_WEIGHTS

        env = dict(base.env)
        env[FROZEN_WEIGHTS] = "1" if self.frozen_weights else "0"
        return replace(base, env=tuple(sorted(env.items())), allocator=self.allocator)

    def to_dict(self) -> dict[str, Any]:
        return {"allocator": self.allocator, "frozen_weights": self.frozen_weights}


def _values(key: str, raw: str) -> list[Any]:
    from tfcpu.session.xeon import check_allocator

    out: list[Any] = []
    for text in (v.strip().lower() for v in raw.split(",") if v.strip()):
        if key == "allocator":
            out.append(None if text in ("none", "libc", "default") else check_allocator(text, "--sweep allocator=..."))
        elif text in _BOOL:
            out.append(_BOOL[text])
        else:
            raise ConfigError(f"not an on/off value: {text!r}", where=f"--sweep {key}=...", hint="use 0,1")
    if not out:
        raise ConfigError("no values", where=f"--sweep {key}=", hint=f"--sweep {key}=V1,V2")
    return out


def parse_sweep(items: Sequence[str]) -> tuple[RuntimeVariant, ...]:
    """The variants ``KEY=V1,V2`` items ask for (the product over keys), checked.

    Args:
        items: ``"allocator=none,tcmalloc,jemalloc"``, ``"frozen_weights=0,1"`` (``frozen-weights`` too).
    """
    axes: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in SWEEP_KEYS:
            hint = did_you_mean(key, list(SWEEP_KEYS)) or "--sweep allocator=none,tcmalloc --sweep frozen_weights=0,1"
            raise ConfigError(
                f"cannot sweep {item!r}", where="--sweep", why=f"keys: {', '.join(SWEEP_KEYS)}", hint=hint
            )
        axes[key] = _values(key, raw)
    allocators = axes.get("allocator", [None])
    frozen = axes.get("frozen_weights", [False])
    return tuple(RuntimeVariant(a, f) for a, f in itertools.product(allocators, frozen))


@dataclass(frozen=True)
class RuntimeSweep(TextTable):
    """The layout sweep per runtime variant, and the best row over all of them."""

    variants: tuple[tuple[RuntimeVariant, TuneResult], ...]
    best: tuple[RuntimeVariant, TuneRow] | None

    _COLUMNS = ("runtime", "cores/instance", "instances", "batch", "oneDNN", "items/s", "p99 ms", "")

    def _cells(self) -> list[tuple[str, ...]]:
        out: list[tuple[str, ...]] = []
        for variant, result in self.variants:
            for row, cells in zip(result.rows, result.table_rows(), strict=True):
                mark = "best" if self.best is not None and self.best == (variant, row) else ""
                out.append((variant.label, *cells[:-1], mark))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "variants": [{"runtime": v.to_dict(), "sweep": r.to_dict()} for v, r in self.variants],
            "best": None if self.best is None else {"runtime": self.best[0].to_dict(), "row": self.best[1].to_dict()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuntimeSweep:
        variants = tuple((RuntimeVariant(**v["runtime"]), TuneResult.from_dict(v["sweep"])) for v in data["variants"])
        best = data.get("best")
        return cls(
            variants, None if best is None else (RuntimeVariant(**best["runtime"]), TuneRow.from_dict(best["row"]))
        )

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def __rich__(self) -> Any:
        return rich_table("Runtime sweep", self._COLUMNS, self._cells())

    def _repr_html_(self) -> str:
        return html_table("Runtime sweep", self._COLUMNS, self._cells())


def sweep_runtime(
    model: Model,
    variants: Sequence[RuntimeVariant],
    *,
    settings: InstanceSettings | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    **tune_kwargs: Any,
) -> RuntimeSweep:
    """Run `tfcpu.runtime.tune.tune()` once per variant; best = the fastest eligible row of all.

    Args:
        model: the model to run.
        variants: from `parse_sweep()`.
        settings: the common child settings (backend, environment).
        progress: callback ``(done, total, label)`` over the whole sweep.
        **tune_kwargs: the other arguments of `tune()` (cores_per_instance, batch_sizes, options...).

    Raises:
        ConfigError: an allocator of a variant is not on this machine (before anything runs).
    """
    from tfcpu.runtime.tune import tune
    from tfcpu.session.xeon import require_allocator

    for v in variants:
        if v.allocator is not None:
            require_allocator(v.allocator, "tfcpu tune --sweep allocator=...")
    base = settings or InstanceSettings()
    done: list[tuple[RuntimeVariant, TuneResult]] = []
    for i, variant in enumerate(variants):

        def step(n: int, total: int, label: str, i: int = i, name: str = variant.label) -> None:
            if progress is not None:
                progress(i * total + n, len(variants) * total, f"{name}: {label}")

        done.append((variant, tune(model, settings=variant.settings(base), progress=step, **tune_kwargs)))
    ranked = [(v, r.best) for v, r in done if r.best is not None]
    best = max(ranked, key=lambda vr: vr[1].throughput) if ranked else None
    return RuntimeSweep(tuple(done), best)
