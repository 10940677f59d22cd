"""Shared rendering helpers."""

from __future__ import annotations

from tfcpu._render import drop_empty_last_column


def test_an_empty_trailing_note_column_is_left_out_and_a_used_one_kept() -> None:
    cols, rows = drop_empty_last_column(["a", "note"], [("1", ""), ("2", "")])
    assert cols == ["a"] and rows == [["1"], ["2"]]
    cols, rows = drop_empty_last_column(["a", "note"], [("1", ""), ("2", "failed")])
    assert cols == ["a", "note"] and rows == [["1", ""], ["2", "failed"]]
    assert drop_empty_last_column(["a", "note"], []) == (["a", "note"], [])


SETTINGS = [
    ("intra_op_parallelism_threads", "2", "yes", "sizes the pool each op runs on; TF_NUM_INTRAOP_THREADS", "cores"),
    ("inter_op_parallelism_threads", "1", "yes", "independent ops run at once; ConfigProto", "white paper default"),
    ("KMP_AFFINITY", "granularity=fine,verbose,compact,1,0", "no", "no OpenMP runtime here", "white paper default"),
    ("TF_ENABLE_ONEDNN_OPTS", "not set (oneDNN on)", "yes", "read once at import", "TensorFlow default"),
]
COLUMNS = ("setting", "value", "takes effect", "why", "source")


def _lines(width: int, rows: list[tuple[str, ...]] = SETTINGS) -> list[str]:
    from tfcpu._render import render_text, rich_table

    return render_text(rich_table("Session settings", COLUMNS, rows), width=width).splitlines()


def test_setting_names_are_never_split_at_80_columns() -> None:
    lines = _lines(80)
    assert all(len(line) <= 80 for line in lines)
    for name, *_ in SETTINGS:
        assert any(name in line for line in lines), f"{name} was split:\n" + "\n".join(lines)
    assert any("ConfigProto" in line for line in lines)  # prose keeps its words where the room allows


def test_when_the_words_fit_no_word_of_any_column_is_split() -> None:
    rows = [("intra_op_parallelism_threads", "2", "sizes the pool each op runs on, read at session creation")] * 3
    from tfcpu._render import render_text, rich_table

    lines = render_text(rich_table(None, ("setting", "value", "why"), rows), width=60).splitlines()
    assert all(len(line) <= 60 for line in lines)
    cells = " ".join(part.strip() for line in lines for part in line.split("│"))
    for word in rows[0][0].split() + rows[0][2].split():
        assert word in cells.split(), (word, lines)


def test_fit_widths_keeps_natural_widths_narrows_to_words_and_guards_the_first_column() -> None:
    from tfcpu._render import fit_widths

    cols = [["setting", "intra_op_parallelism_threads"], ["why", "a b c d e f g h i j k l m n o p"]]
    assert fit_widths(cols, 200) is None
    widths = fit_widths(cols, 40)
    assert widths is not None and sum(widths) <= 40 and widths[0] == 28 and widths[1] >= 1
    cols = [
        ["setting", "intra_op_parallelism_threads"],
        ["value", "granularity=fine,verbose,compact,1,0"],
        ["s", "yes"],
    ]
    widths = fit_widths(cols, 45)
    assert widths is not None and widths[0] == 28 and widths[2] == 3 and sum(widths) <= 45


def test_a_real_session_explanation_at_80_columns_keeps_its_names(topology) -> None:  # type: ignore[no-untyped-def]
    from tfcpu import SessionConfig
    from tfcpu._render import render_text

    explanation = SessionConfig.for_topology(topology("xeon_gold_6252_2s")).explain()
    lines = render_text(explanation.__rich__(), width=80).splitlines()
    assert all(len(line) <= 80 for line in lines)
    text = "\n".join(lines)
    for name in ("intra_op_parallelism_threads", "inter_op_parallelism_threads", "TF_ENABLE_ONEDNN_OPTS"):
        assert name in text, text
