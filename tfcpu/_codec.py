"""One codec for tfcpu's typed values: a frozen dataclass to JSON-ready data and back.

The fields (`dataclasses.fields`) and their type hints (`typing.get_type_hints`) say everything::

    to_data(obj)          -> dicts, lists, str, int, float, bool, None (json.dumps-ready)
    from_data(cls, data)  -> cls, each field read back as its hint says

Types it reads: ``str``, ``int``, ``float``, ``bool``, ``None`` and ``X | None``, ``tuple[X, ...]``,
``tuple[X, Y]``, ``list[X]``, ``dict[str, X]`` and ``Mapping[str, X]`` (a Mapping class such as
`tfcpu.graph.model.Metadata` is built from the dict), nested dataclasses, `Enum` (by value), `Path`,
and ``Any`` (taken as it is). Tuples become lists in the data and tuples again on the way back.

A nested type that writes and reads itself (its own ``to_dict``/``from_dict``) is asked to: a class
moves to the codec on its own, and its containers keep working meanwhile.

A field that needs more says so in its metadata, ``field(metadata={"codec": FieldCodec(...)})``:
another key, its own encoder/decoder, or `SKIP` (neither written nor read; it needs a default).
Reading ignores keys it does not know (newer reports, computed extras); a missing key falls back to
the field's default, and without one raises `ConfigError` naming the class and the key.

`Serializable` gives a dataclass ``to_dict``/``from_dict``/``to_json``/``from_json`` from the codec.
A class whose JSON also shows computed values (a ``median`` property...) names them once in
``_extra_fields``: ``to_dict`` writes them after the fields, ``from_dict`` ignores them.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from pathlib import PurePath
from typing import Any, ClassVar, Self, TypeVar, cast

from tfcpu.errors import ConfigError

__all__ = ["CODEC", "SKIP", "FieldCodec", "Serializable", "from_data", "to_data"]

T = TypeVar("T")

#: The `dataclasses.field` metadata key that holds a field's `FieldCodec`.
CODEC = "codec"


@dataclasses.dataclass(frozen=True)
class FieldCodec:
    """How one field is written and read when its type alone does not say.

    Attributes:
        key: its key in the data, when that is not the field's name.
        encode: value -> JSON-ready data (default: `to_data`).
        decode: data -> value (default: read as the field's type hint says).
        skip: neither written nor read (the field must have a default).
    """

    key: str | None = None
    encode: Callable[[Any], Any] | None = None
    decode: Callable[[Any], Any] | None = None
    skip: bool = False


#: Metadata value for a field that stays out of the data: ``field(default=None, metadata={CODEC: SKIP})``.
SKIP = FieldCodec(skip=True)
_PLAIN = FieldCodec()


def _codec_of(f: dataclasses.Field[Any]) -> FieldCodec:
    codec = f.metadata.get(CODEC, _PLAIN)
    if not isinstance(codec, FieldCodec):
        raise TypeError(f"field {f.name!r}: metadata[{CODEC!r}] must be a FieldCodec, not {type(codec).__name__}")
    return codec


# -- writing --------------------------------------------------------------------------------------
def to_data(obj: Any) -> Any:
    """JSON-ready data of ``obj``: a dataclass becomes a dict of its fields (or what its own
    ``to_dict`` returns), tuples/lists/sets become lists, mappings dicts with str keys, an Enum its
    value, a Path its string, a numpy scalar or array its Python value(s).

    Raises:
        TypeError: ``obj`` holds something the codec cannot write.
    """
    if isinstance(obj, enum.Enum):
        return to_data(obj.value)
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, PurePath):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        own = getattr(obj, "to_dict", None)
        return own() if callable(own) else encode_fields(obj)
    if isinstance(obj, Mapping):
        return {str(k): to_data(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_data(v) for v in obj]
    tolist = getattr(obj, "tolist", None)  # numpy scalars and arrays, without importing numpy
    if callable(tolist):
        return to_data(tolist())
    raise TypeError(f"tfcpu's codec cannot write a {type(obj).__name__}: {obj!r}")


def encode_fields(obj: Any) -> dict[str, Any]:
    """The dict of a dataclass instance's fields, each through its `FieldCodec` or `to_data`."""
    data: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        codec = _codec_of(f)
        if codec.skip:
            continue
        value = getattr(obj, f.name)
        data[codec.key or f.name] = codec.encode(value) if codec.encode else to_data(value)
    return data


# -- reading --------------------------------------------------------------------------------------
def from_data(cls: type[T], data: Any) -> T:
    """``cls`` read back from `to_data` output (after a JSON round trip).

    Raises:
        ConfigError: ``data`` does not fit ``cls`` (names the class, the key and what was found).
    """
    return cast(T, _decode(cls, data, cls.__name__))


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except NameError as exc:  # a hint imported under TYPE_CHECKING only
        raise TypeError(
            f"{cls.__name__}: the codec cannot resolve its field types ({exc}); import the type at module "
            "level or give the field a FieldCodec with a decoder"
        ) from exc


def decode_fields(cls: type[T], data: Any, where: str | None = None) -> T:
    """``cls(**fields)`` from a dict: each field read as its hint says, defaults for missing keys."""
    where = where or cls.__name__
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"not a {cls.__name__} record",
            where=where,
            why=f"expected a JSON object, found {type(data).__name__}",
            hint=f"pass what {cls.__name__}.to_dict() or to_json() wrote",
        )
    hints = _hints(cast(type, cls))
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cast(Any, cls)):
        codec = _codec_of(f)
        if not f.init or codec.skip:
            continue
        key = codec.key or f.name
        if key not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(
                    f"{cls.__name__} record has no {key!r}",
                    where=where,
                    why=f"{key!r} is required and has no default; the record has {sorted(map(str, data))}",
                    hint=f"pass what {cls.__name__}.to_dict() or to_json() wrote, or add {key!r}",
                )
            continue
        value = data[key]
        if codec.decode is not None:
            try:
                kwargs[f.name] = codec.decode(value)
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                raise _bad(f"{where}.{key}", value, f"{type(exc).__name__}: {exc}") from exc
        else:
            kwargs[f.name] = _decode(hints[f.name], value, f"{where}.{key}")
    return cls(**kwargs)


def _bad(where: str, value: Any, why: str) -> ConfigError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return ConfigError(f"cannot read {shown}", where=where, why=why, hint="pass what to_dict() or to_json() wrote")


def _decode(tp: Any, data: Any, where: str) -> Any:
    if tp is Any or tp is object:
        return data
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return _decode_union(typing.get_args(tp), data, where)
    if tp is None or tp is type(None):
        if data is not None:
            raise _bad(where, data, "expected null")
        return None
    if origin is not None:
        return _decode_generic(origin, typing.get_args(tp), data, where)
    if isinstance(tp, type):
        return _decode_class(tp, data, where)
    raise TypeError(f"{where}: tfcpu's codec cannot read the type {tp!r}")


def _decode_union(args: tuple[Any, ...], data: Any, where: str) -> Any:
    if data is None:
        if type(None) in args:
            return None
        raise _bad(where, data, f"expected {' | '.join(getattr(a, '__name__', str(a)) for a in args)}, found null")
    options = [a for a in args if a is not type(None)]
    exact = [a for a in options if isinstance(a, type) and type(data) is a]  # int | float keeps an int an int
    last: ConfigError | None = None
    for option in exact or options:
        try:
            return _decode(option, data, where)
        except ConfigError as exc:
            last = exc
    assert last is not None
    raise last


def _decode_generic(origin: Any, args: tuple[Any, ...], data: Any, where: str) -> Any:
    if origin is typing.Literal:
        if data not in args:
            raise _bad(where, data, f"expected one of {args}")
        return data
    if origin is typing.ClassVar:
        return _decode(args[0], data, where)
    if isinstance(origin, type) and issubclass(origin, Mapping):
        if not isinstance(data, Mapping):
            raise _bad(where, data, f"expected a JSON object, found {type(data).__name__}")
        key_t, value_t = args or (Any, Any)
        decoded = {_decode(key_t, k, where): _decode(value_t, v, f"{where}[{k!r}]") for k, v in data.items()}
        if origin in (dict, Mapping):
            return decoded
        return cast(Any, origin)(decoded)  # a Mapping class, such as Metadata
    if isinstance(data, str | bytes) or not isinstance(data, Sequence | set | frozenset):
        raise _bad(where, data, f"expected a JSON array, found {type(data).__name__}")
    items = list(data)
    if origin is tuple:
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            item_t = args[0] if args else Any
            return tuple(_decode(item_t, v, f"{where}[{i}]") for i, v in enumerate(items))
        if len(items) != len(args):
            raise _bad(where, data, f"expected {len(args)} items, found {len(items)}")
        return tuple(_decode(t, v, f"{where}[{i}]") for i, (t, v) in enumerate(zip(args, items, strict=True)))
    item_t = args[0] if args else Any
    values = [_decode(item_t, v, f"{where}[{i}]") for i, v in enumerate(items)]
    if origin is set:
        return set(values)
    if origin in (frozenset, AbstractSet):
        return frozenset(values)
    if origin is list:
        return values
    return tuple(values)  # Sequence[X] and other read-only sequences


def _decode_class(tp: type, data: Any, where: str) -> Any:  # noqa: C901 - one branch per kind of type
    if tp is bool:
        if isinstance(data, bool):
            return data
        raise _bad(where, data, "expected true or false")
    if tp is int:
        if isinstance(data, int) and not isinstance(data, bool):
            return data
        if isinstance(data, float) and data.is_integer():
            return int(data)
        raise _bad(where, data, "expected an integer")
    if tp is float:
        if isinstance(data, int | float) and not isinstance(data, bool):
            return float(data)
        if isinstance(data, str):  # "NaN", "Infinity" from writers that quote them
            try:
                return float(data)
            except ValueError:
                pass
        raise _bad(where, data, "expected a number")
    if tp is str:
        if isinstance(data, str):
            return data
        raise _bad(where, data, "expected a string")
    if issubclass(tp, enum.Enum):
        try:
            return tp(data)
        except ValueError:
            if isinstance(data, str) and data in tp.__members__:
                return tp.__members__[data]
            raise _bad(where, data, f"expected one of {[m.value for m in tp]}") from None
    if issubclass(tp, PurePath):
        if isinstance(data, str):
            return tp(data)
        raise _bad(where, data, "expected a path string")
    if isinstance(data, tp):  # already read (a from_dict that reads some fields itself passes them on)
        return data
    own = getattr(tp, "from_dict", None)
    if dataclasses.is_dataclass(tp):
        if own is None or getattr(own, "__func__", None) is _SERIALIZABLE_FROM_DICT:
            return decode_fields(tp, data, where)
        return own(data)  # the class reads itself (not migrated, or a subclass picks the type)
    if issubclass(tp, Mapping):
        return tp(_decode_generic(dict, (str, Any), data, where))  # type: ignore[call-arg]
    if callable(own):
        return own(data)
    raise TypeError(f"{where}: tfcpu's codec cannot read a {tp.__name__}; give the field a FieldCodec")


# -- the mixin ------------------------------------------------------------------------------------
class Serializable:
    """``to_dict``/``from_dict``/``to_json``/``from_json`` for a dataclass, from the codec.

    ``_extra_fields`` names computed attributes (properties) the dict shows after the fields;
    reading ignores them.
    """

    _extra_fields: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data; `from_dict` reads it back to an equal value."""
        data = encode_fields(self)
        for name in self._extra_fields:
            data[name] = to_data(getattr(self, name))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Read back what `to_dict` wrote (unknown keys are ignored).

        Raises:
            ConfigError: a required key is missing or a value has the wrong type.
        """
        return decode_fields(cls, data)

    def to_json(self, **kwargs: Any) -> str:
        """`to_dict` as JSON text; ``kwargs`` go to `json.dumps` (``indent=2``...)."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> Self:
        """Read back what `to_json` wrote."""
        return cls.from_dict(json.loads(text))


_SERIALIZABLE_FROM_DICT = Serializable.from_dict.__func__  # type: ignore[attr-defined]
