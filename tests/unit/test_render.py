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


def test_prose_columns_spill_under_a_narrow_table_and_no_number_is_split() -> None:
    from tfcpu._render import render_text, rich_table
    from tfcpu.demo._result import DemoResult, DemoRow

    note = "25 FullyConnected:f32, 8 MatMul:f32; 1 stream(s), 2 thread(s)"
    kernels = "matmul avx512_core_vnni u8/s8/f32, 51% outside oneDNN"
    rows = tuple(
        DemoRow(name, "", throughput=t, speedup=t / 83.5, p99_ms=25.0, rounds=(t, t, t), note=note, kernels=kernels)
        for name, t in (("frozen graph, oneDNN, tuned threads", 234.1), ("OpenVINO INT8", 560.12))
    )
    result = DemoResult(model="encoder", rows=rows, batch_size=8, duration=1.0, machine="m", unit="seq/s")
    narrow = render_text(result.__rich__(), width=80)
    table = [line for line in narrow.splitlines() if line.startswith(("┃", "│"))]
    assert "seq/s" in table[0] and "kernels" not in table[0] and "note" not in table[0]
    assert any("560.1" in line for line in table) and any("234.1" in line for line in table)
    below = narrow.split("└")[1]
    assert "OpenVINO INT8 — kernels: matmul avx512_core_vnni" in below and "note: 25 FullyConnected" in below
    wide = render_text(result.__rich__(), width=250)
    header = next(line for line in wide.splitlines() if line.startswith("┃"))
    assert "kernels" in header and "note" in header and "— kernels:" not in wide  # room: nothing spills
    # a table whose words fit keeps its prose columns in place
    small = render_text(rich_table("t", ["step", "note"], [["a", "b c"]], spill=("note",)), width=80)
    assert "note" in small and "—" not in small
