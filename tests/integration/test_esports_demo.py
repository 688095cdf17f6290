"""The esports demo and `esports analyze` on the embedded default (JSONL file + SQLite)."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from edgefinder.esports.cli import esports_app
from edgefinder.esports.demo import run
from edgefinder.settings import Settings


def test_demo_simulates_ingests_analyzes_and_prints_findings(tmp_path: Path) -> None:
    buf = io.StringIO()
    db = run(Settings(data_dir=tmp_path), Console(file=buf, width=200), matches=12, seed=3)
    out = buf.getvalue()
    assert db == tmp_path / "demo" / "esports_demo.sqlite3" and db.exists()
    assert (tmp_path / "demo" / "esports_events.jsonl").exists()
    assert (tmp_path / "demo" / "esports_events.truth.json").exists()
    for needle in (
        "simulated 12 matches",
        "0 dead letters",
        "team compared with itself inside a match",
        "within-match ATE",
        "verdict",
        "between-team (naive)",
        "Planted effects",
        "trade_count",
        "research/ops",
    ):
        assert needle in out, needle
    # a second run starts from a fresh demo database (same numbers, nothing doubled)
    buf2 = io.StringIO()
    run(Settings(data_dir=tmp_path), Console(file=buf2, width=200), matches=12, seed=3)
    line = next(x for x in out.splitlines() if x.startswith("3. correlation job"))
    line2 = next(x for x in buf2.getvalue().splitlines() if x.startswith("3. correlation job"))
    assert line.split(" in ")[0] == line2.split(" in ")[0]


def test_analyze_command_prints_tables(tmp_path: Path) -> None:
    db = run(Settings(data_dir=tmp_path), Console(file=io.StringIO()), matches=8, seed=5)
    res = CliRunner().invoke(
        esports_app,
        ["analyze", "--database-url", f"sqlite:///{db.as_posix()}", "--top", "5"],
        env={"COLUMNS": "200"},
    )
    assert res.exit_code == 0, res.output
    # 46 features x 5 tests, 9 intents x 5 (two chi-square, within-match and naive AIPW on the count,
    # the exposure-aware effect of the opening count), 2 for the loadout baseline
    for needle in (
        "team-rounds",
        "277 tests",
        "clustered by match",
        "verdict",
        "placebo",
        "E-value",
        "Top ",
        "BH q < 0.05",
        "research/ops",
        "pre-round baseline: loadout_advantage → round_win",
    ):
        assert needle in res.output, needle


def test_analyze_on_a_fresh_database_migrates_and_says_ingest_first(tmp_path: Path) -> None:
    # A newcomer's first command may be `analyze`: the schema is created, the run succeeds empty.
    url = f"sqlite:///{(tmp_path / 'fresh.sqlite3').as_posix()}"
    res = CliRunner().invoke(
        esports_app, ["analyze", "--database-url", url], env={"COLUMNS": "200"}
    )
    assert res.exit_code == 0, res.output
    assert "no finished rounds in the database: ingest events first" in res.output
    assert "research/ops" in res.output  # the disclaimer is printed on an empty run too


def test_analyze_with_an_unreachable_database_is_one_clear_error() -> None:
    import socket

    from edgefinder.errors import EdgefinderError

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there any more
    res = CliRunner().invoke(
        esports_app, ["analyze", "--database-url", f"postgresql://nobody@127.0.0.1:{port}/x"]
    )
    assert res.exit_code != 0
    # the top-level CLI prints an EdgefinderError as one line (not a raw SQLAlchemy traceback)
    assert isinstance(res.exception, EdgefinderError), repr(res.exception)
    assert str(res.exception).startswith("cannot connect to database") and "\n" not in str(
        res.exception
    )
