"""SessionConfig as a JSON record and back (``to_dict`` / ``from_dict``), with tfcpu errors for bad records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tfcpu.errors import ConfigError
from tfcpu.session._resolve import DEFAULT_KMP_AFFINITY
from tfcpu.session.itex import ItexSettings

if TYPE_CHECKING:  # pragma: no cover
    from tfcpu.session.config import SessionConfig

__all__ = ["fields_from_record", "record"]

_PLAIN = (
    "intra_op",
    "inter_op",
    "omp",
    "kmp_blocktime",
    "kmp_settings",
    "kmp_affinity",
    "onednn_opts",
    "trust_env",
    "per_session_threads",
    "budget",
    "frozen_weights",
    "allocator",
)


def record(config: SessionConfig) -> dict[str, Any]:
    """The configured values of ``config``, JSON-ready (without the derived ``env``).

    Args:
        config: the SessionConfig to record.
    """
    out = {name: getattr(config, name) for name in _PLAIN}
    out.update(
        extra_env=dict(config.extra_env),
        cpus=list(config.cpus),
        explicit=sorted(config.explicit),
        itex=None if config.itex is None else config.itex.to_dict(),
        isa=list(config.isa),
    )
    return out


def fields_from_record(data: Mapping[str, Any]) -> dict[str, Any]:
    """The SessionConfig fields of a record `record()` wrote (a ``ConfigError`` for a bad one).

    Args:
        data: the record (extra keys such as ``env`` are ignored).
    """
    try:
        return {
            "intra_op": int(data["intra_op"]),
            "inter_op": int(data.get("inter_op", 1)),
            "omp": None if data.get("omp") is None else int(data["omp"]),
            "kmp_blocktime": data.get("kmp_blocktime", "1"),
            "kmp_settings": data.get("kmp_settings", "1"),
            "kmp_affinity": data.get("kmp_affinity", DEFAULT_KMP_AFFINITY),
            "onednn_opts": data.get("onednn_opts"),
            "extra_env": tuple((str(k), str(v)) for k, v in dict(data.get("extra_env", {})).items()),
            "trust_env": bool(data.get("trust_env", True)),
            "per_session_threads": bool(data.get("per_session_threads", True)),
            "cpus": tuple(int(c) for c in data.get("cpus", ())),
            "budget": None if data.get("budget") is None else int(data["budget"]),
            "explicit": frozenset(str(n) for n in data.get("explicit", ())),
            "itex": None if data.get("itex") is None else ItexSettings.from_dict(data["itex"]),
            "frozen_weights": data.get("frozen_weights"),
            "allocator": data.get("allocator"),
            "isa": tuple(str(f) for f in data.get("isa", ())),
        }
    except ConfigError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            "not a SessionConfig record", why=f"{type(exc).__name__}: {exc}", hint="pass what to_dict() wrote"
        ) from exc
