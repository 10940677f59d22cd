"""Shared rendering helpers."""

from __future__ import annotations

from tfcpu._render import drop_empty_last_column


def test_an_empty_trailing_note_column_is_left_out_and_a_used_one_kept() -> None:
    cols, rows = drop_empty_last_column(["a", "note"], [("1", ""), ("2", "")])
    assert cols == ["a"] and rows == [["1"], ["2"]]
    cols, rows = drop_empty_last_column(["a", "note"], [("1", ""), ("2", "failed")])
    assert cols == ["a", "note"] and rows == [["1", ""], ["2", "failed"]]
    assert drop_empty_last_column(["a", "note"], []) == (["a", "note"], [])
