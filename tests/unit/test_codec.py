"""tfcpu._codec: dataclass <-> JSON-ready data, driven by fields and type hints."""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tfcpu._codec import CODEC, SKIP, FieldCodec, Serializable, from_data, to_data
from tfcpu.errors import ConfigError
from tfcpu.graph.model import Metadata


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Inner(Serializable):
    name: str
    value: float = 0.0


@dataclass(frozen=True)
class Outer(Serializable):
    count: int
    ratio: float
    flag: bool
    label: str
    maybe: int | None
    many: tuple[int, ...]
    pair: tuple[str, float]
    items: list[str]
    table: dict[str, int]
    mapping: Mapping[str, float]
    inner: Inner
    inners: tuple[Inner, ...]
    optional_inner: Inner | None
    colour: Colour
    path: Path
    meta: Metadata
    anything: Any = None
    default: str = "d"


def _outer() -> Outer:
    return Outer(
        count=3,
        ratio=0.5,
        flag=True,
        label="x",
        maybe=None,
        many=(1, 2, 3),
        pair=("a", 1.5),
        items=["p", "q"],
        table={"a": 1},
        mapping={"m": 2.0},
        inner=Inner("i", 1.0),
        inners=(Inner("j"), Inner("k", 2.0)),
        optional_inner=Inner("o"),
        colour=Colour.BLUE,
        path=Path("/tmp/model.pb"),
        meta=Metadata({"passes": ["fold"], "nested": {"k": [1, 2]}}),
        anything={"free": [1, "form"]},
    )


def test_every_supported_type_is_written_as_json_ready_data() -> None:
    data = _outer().to_dict()
    assert data == {
        "count": 3,
        "ratio": 0.5,
        "flag": True,
        "label": "x",
        "maybe": None,
        "many": [1, 2, 3],
        "pair": ["a", 1.5],
        "items": ["p", "q"],
        "table": {"a": 1},
        "mapping": {"m": 2.0},
        "inner": {"name": "i", "value": 1.0},
        "inners": [{"name": "j", "value": 0.0}, {"name": "k", "value": 2.0}],
        "optional_inner": {"name": "o", "value": 0.0},
        "colour": "blue",
        "path": "/tmp/model.pb",
        "meta": {"passes": ["fold"], "nested": {"k": [1, 2]}},
        "anything": {"free": [1, "form"]},
        "default": "d",
    }
    assert json.loads(json.dumps(data)) == data


def test_every_supported_type_reads_back_to_an_equal_value() -> None:
    original = _outer()
    back = Outer.from_json(original.to_json())
    assert back == original
    assert isinstance(back.many, tuple) and isinstance(back.pair, tuple) and isinstance(back.items, list)
    assert isinstance(back.inner, Inner) and all(isinstance(i, Inner) for i in back.inners)
    assert back.colour is Colour.BLUE and isinstance(back.path, Path)
    assert isinstance(back.meta, Metadata) and back.meta["nested"]["k"] == (1, 2)
    assert isinstance(back.pair[1], float)


def test_optional_values_and_defaults() -> None:
    data = _outer().to_dict()
    data.update(maybe=7, optional_inner=None)
    del data["default"]
    back = Outer.from_dict(data)
    assert back.maybe == 7 and back.optional_inner is None and back.default == "d"


def test_numbers_read_as_their_hint_says() -> None:
    data = {**_outer().to_dict(), "ratio": 2, "count": 4.0}
    back = Outer.from_dict(data)
    assert back.ratio == 2.0 and isinstance(back.ratio, float)
    assert back.count == 4 and isinstance(back.count, int)
    nan = Inner.from_json(json.dumps({"name": "n", "value": math.nan}))
    assert math.isnan(nan.value)


def test_a_missing_required_key_names_the_class_and_the_key() -> None:
    data = _outer().to_dict()
    del data["label"]
    with pytest.raises(ConfigError, match=r"Outer record has no 'label'") as info:
        Outer.from_dict(data)
    assert info.value.where == "Outer" and info.value.hint


def test_a_missing_key_in_a_nested_value_says_where() -> None:
    data = _outer().to_dict()
    del data["inners"][1]["name"]
    with pytest.raises(ConfigError, match="Inner record has no 'name'") as info:
        Outer.from_dict(data)
    assert info.value.where == "Outer.inners[1]"


def test_a_value_of_the_wrong_type_is_refused_with_its_place() -> None:
    data = {**_outer().to_dict(), "many": [1, "two"]}
    with pytest.raises(ConfigError, match="expected an integer") as info:
        Outer.from_dict(data)
    assert info.value.where == "Outer.many[1]"
    with pytest.raises(ConfigError, match="expected 2 items"):
        Outer.from_dict({**_outer().to_dict(), "pair": ["a"]})
    with pytest.raises(ConfigError, match="expected one of"):
        Outer.from_dict({**_outer().to_dict(), "colour": "green"})
    with pytest.raises(ConfigError, match="not a Inner record"):
        Inner.from_dict([1, 2])  # type: ignore[arg-type]


def test_unknown_keys_are_ignored() -> None:
    data = {**_outer().to_dict(), "added_later": {"x": 1}}
    data["inner"]["also_new"] = 3
    assert Outer.from_dict(data) == _outer()


@dataclass(frozen=True)
class WithExtras(Serializable):
    values: tuple[float, ...]
    _extra_fields = ("median", "count")

    @property
    def median(self) -> float:
        ordered = sorted(self.values)
        return ordered[len(ordered) // 2]

    @property
    def count(self) -> int:
        return len(self.values)


def test_extra_fields_are_written_after_the_fields_and_ignored_on_reading() -> None:
    value = WithExtras((3.0, 1.0, 2.0))
    data = value.to_dict()
    assert list(data) == ["values", "median", "count"]
    assert data["median"] == 2.0 and data["count"] == 3
    assert WithExtras.from_dict(data) == value
    assert WithExtras.from_dict({"values": [1.0], "median": 99.0}).median == 1.0


def _encode_pairs(pairs: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return dict(pairs)


def _decode_pairs(data: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in data.items())


@dataclass(frozen=True)
class WithFieldCodecs(Serializable):
    env_items: tuple[tuple[str, str], ...] = field(
        metadata={CODEC: FieldCodec(key="env", encode=_encode_pairs, decode=_decode_pairs)}
    )
    cache: object = field(default=None, compare=False, metadata={CODEC: SKIP})


def test_a_field_can_use_its_own_key_and_codec_or_opt_out() -> None:
    value = WithFieldCodecs((("A", "1"), ("B", "2")), cache=object())
    data = value.to_dict()
    assert data == {"env": {"A": "1", "B": "2"}}
    back = WithFieldCodecs.from_dict(data)
    assert back == value and back.cache is None
    with pytest.raises(ConfigError, match="cannot read") as info:
        WithFieldCodecs.from_dict({"env": ["not", "a", "dict"]})
    assert info.value.where == "WithFieldCodecs.env"


@dataclass(frozen=True)
class HandWritten:
    """A class that still writes and reads itself: the codec asks it to."""

    x: int

    def to_dict(self) -> dict[str, Any]:
        return {"X": self.x}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HandWritten:
        return cls(int(data["X"]))


@dataclass(frozen=True)
class HoldsHandWritten(Serializable):
    items: tuple[HandWritten, ...]


def test_a_nested_type_with_its_own_pair_is_asked_to_write_and_read_itself() -> None:
    value = HoldsHandWritten((HandWritten(1), HandWritten(2)))
    assert value.to_dict() == {"items": [{"X": 1}, {"X": 2}]}
    assert HoldsHandWritten.from_dict(value.to_dict()) == value


def test_to_data_and_from_data_work_on_plain_dataclasses() -> None:
    @dataclass(frozen=True)
    class Plain:
        a: int
        b: tuple[str, ...] = ()

    assert to_data(Plain(1, ("x",))) == {"a": 1, "b": ["x"]}
    assert from_data(Plain, {"a": 1, "b": ["x"]}) == Plain(1, ("x",))
    already = Inner("read")
    assert Outer.from_dict({**_outer().to_dict(), "inner": already}).inner is already


def test_to_data_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(TypeError, match="cannot write"):
        to_data(object())
