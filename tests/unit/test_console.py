"""edgefinder.console: tables fit their content in a pipe, COLUMNS and terminals keep Rich's width."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from rich.console import Console as RichConsole
from rich.table import Table

from edgefinder.console import Console, check_format, table_width, write_records
from edgefinder.errors import EdgefinderError
from tests.terminal import broken_table_lines


def _wide_table() -> Table:
    t = Table(title="Effect of each intent on round win: naive vs adjusted (probability points)")
    for col in ("feature", "outcome", "naive diff", "AIPW ATE [95% CI]", "IPW", "q", "sig.", "n"):
        t.add_column(col, justify="left" if col in ("feature", "outcome") else "right")
    t.add_row(
        "retreat_count",
        "round_win",
        "-0.260",
        "-0.126 [-0.216, -0.036]",
        "-0.113",
        "0.025",
        "✓",
        "2,682",
    )
    t.add_row(
        "trade_count",
        "round_win",
        "+0.083",
        "+0.070 [+0.033, +0.107]",
        "+0.071",
        "0.001",
        "✓",
        "2,682",
    )
    return t


def _render(console_cls: type, **kw: object) -> str:
    buf = io.StringIO()
    console_cls(file=buf, **kw).print(_wide_table())
    return buf.getvalue()


def test_rich_fallback_wraps_cells_at_80_columns_and_the_check_sees_it() -> None:
    out = _render(RichConsole, _environ={})  # a pipe without COLUMNS: Rich's 80-column fallback
    assert max(len(line) for line in out.splitlines()) <= 80
    assert broken_table_lines(out), "the wrap check must notice wrapped cells"


def test_pipe_without_columns_prints_the_table_at_the_width_it_needs() -> None:
    out = _render(Console, _environ={})
    lines = out.splitlines()
    widest = max(len(line) for line in lines)
    assert widest > 80 and broken_table_lines(out) == []
    assert widest == table_width(RichConsole(file=io.StringIO(), width=500), _wide_table())
    # the row is on one line, in full
    assert any(
        "retreat_count" in ln and "-0.126 [-0.216, -0.036]" in ln and "2,682" in ln for ln in lines
    )


def test_columns_and_an_explicit_width_are_respected() -> None:
    out = _render(Console, _environ={"COLUMNS": "70"})
    assert max(len(line) for line in out.splitlines()) <= 70
    out = _render(Console, width=60, _environ={})
    assert max(len(line) for line in out.splitlines()) <= 60


def test_piped_text_is_never_wrapped_and_the_console_width_is_restored() -> None:
    buf = io.StringIO()
    c = Console(file=buf, _environ={})
    c.print(_wide_table())
    assert c.width == 80
    c.print("word " * 40)
    assert buf.getvalue().splitlines()[-1].rstrip() == ("word " * 40).rstrip()
    # on a terminal width (COLUMNS set) prose wraps as Rich does
    buf = io.StringIO()
    Console(file=buf, _environ={"COLUMNS": "80"}).print("word " * 40)
    assert max(len(line) for line in buf.getvalue().splitlines()) <= 80


def test_write_records_json_and_csv() -> None:
    rows = [
        {"feature": "trade_count", "effect": 0.07, "q": float("nan"), "details": {"naive": 0.083}},
        {"feature": "retreat_count", "effect": -0.126, "q": 0.025, "details": {"naive": -0.26}},
    ]
    buf = io.StringIO()
    write_records("json", rows, {"purpose": "research/ops"}, key="results", out=buf)
    doc = json.loads(buf.getvalue())
    assert doc["purpose"] == "research/ops" and doc["results"][0]["q"] is None
    assert doc["results"][1]["details"] == {"naive": -0.26}
    buf = io.StringIO()
    write_records("csv", rows, out=buf)
    back = pd.read_csv(io.StringIO(buf.getvalue()))
    assert back["feature"].tolist() == ["trade_count", "retreat_count"]
    assert back["effect"].tolist() == [0.07, -0.126] and pd.isna(back["q"][0])
    assert json.loads(back["details"][1]) == {"naive": -0.26}
    assert check_format("csv") == "csv"
    with pytest.raises(EdgefinderError, match="unknown --format 'xml'"):
        check_format("xml")


@pytest.mark.parametrize("width", [50, 60, 80])
def test_a_table_wider_than_the_terminal_is_split_with_its_first_column_repeated(width) -> None:
    out = _render(Console, _environ={"COLUMNS": str(width)})  # COLUMNS: the user's width, kept
    assert broken_table_lines(out) == []
    assert max(len(line) for line in out.splitlines()) <= width
    headers = [
        [c.strip() for c in line.strip().strip("┃").split("┃")]
        for line in out.splitlines()
        if line.strip().startswith("┃")
    ]
    assert len(headers) > 1 and all(h[0] == "feature" for h in headers)
    # every other column once, in order, and every row's values under it
    assert [c for h in headers for c in h[1:]] == [c.header for c in _wide_table().columns][1:]
    assert out.count("retreat_count") == len(headers) and "-0.126 [-0.216, -0.036]" in out
    assert "(continued)" in out


def test_wide_prints_every_table_whole_on_a_terminal_too() -> None:
    from edgefinder.console import set_wide

    need = table_width(RichConsole(file=io.StringIO(), width=500), _wide_table())
    set_wide(True)
    try:
        out = _render(Console, _environ={"COLUMNS": "60"})
    finally:
        set_wide(False)
    assert max(len(line) for line in out.splitlines()) == need > 60
    assert broken_table_lines(out) == [] and "(continued)" not in out
