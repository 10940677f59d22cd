"""Reports written by the hand-written ``to_json`` of earlier tfcpu versions (tests/data/json/) still
load through the codec, and serialise back to the same data: the JSON shape did not change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tfcpu.plan.model import InstancePlan
from tfcpu.runtime._pool_stats import PoolStats
from tfcpu.runtime.results import MultiInstanceResult
from tfcpu.serve.loadtest import LoadTestResult
from tfcpu.topology import Topology

DATA = Path(__file__).parents[1] / "data" / "json"


#: Fields added after the reports were written, and what an old report reads them as.
ADDED_SINCE: dict[str, Any] = {"contention": {}}


def _same(data: Any) -> str:
    return json.dumps(data, sort_keys=True)  # NaN compares equal as text


def _without_added(new: Any, old: Any) -> Any:
    """``new`` without the keys `ADDED_SINCE` that ``old`` lacks (each must hold its default)."""
    if isinstance(new, dict) and isinstance(old, dict):
        for key, default in ADDED_SINCE.items():
            if key in new and key not in old:
                assert new[key] == default, key
        return {k: _without_added(v, old.get(k)) for k, v in new.items() if k in old or k not in ADDED_SINCE}
    if isinstance(new, list) and isinstance(old, list):
        return [_without_added(n, o) for n, o in zip(new, old, strict=False)] + new[len(old) :]
    return new


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("topology", Topology),
        ("instance_plan", InstancePlan),
        ("multi_instance_result", MultiInstanceResult),
        ("pool_stats", PoolStats),
        ("loadtest_result", LoadTestResult),
    ],
)
def test_a_report_written_by_the_old_code_loads_and_writes_the_same_data(name: str, cls: Any) -> None:
    old = json.loads((DATA / f"{name}.json").read_text())
    value = cls.from_dict(old)
    assert isinstance(value, cls)
    assert _same(_without_added(value.to_dict(), old)) == _same(old)
    again = cls.from_dict(json.loads(json.dumps(value.to_dict())))
    assert _same(_without_added(again.to_dict(), old)) == _same(old)
