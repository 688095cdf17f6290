"""Bad input to the markets commands: one clear line on stderr, a non-zero exit, nothing written.

Two small synthetic ATLASes of the same calendar (seeds 1 and 2, so the same dates and other prices)
stand for "the data the checkpoints were built from" and "another dataset". The checkpoints come
from A: Phases 2–3 before session 10, the forward pass up to session 15, Phase 5; sessions 15–19
are held back for the paper trade.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from rich.console import Console

from edgefinder.cli import main
from edgefinder.markets.orchestrator import Orchestrator
from edgefinder.markets.synth import SynthConfig, generate_atlas, session_dates

pytestmark = pytest.mark.slow

SESSIONS = 20
DATES = session_dates(SynthConfig().start, SESSIONS)
TFS = "5m,1m,15s"


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("bad_input")
    a, b, ck = root / "a", root / "b", root / "ck"
    for path, seed in ((a, 1), (b, 2)):
        generate_atlas(path, SynthConfig(sessions=SESSIONS, seed=seed, edge="reverting"))
    orch = Orchestrator(
        a,
        ck,
        iterations=2,
        train_until=DATES[10].isoformat(),
        timeframes=TFS,
        dashboard=False,
        console=Console(file=io.StringIO()),
        instrument="MES",
    )
    orch.run()
    orch.run_forward_pass(day_lines=False, forward_until=DATES[15].isoformat())
    orch.run_strategy_selection()
    return a, b, ck


def _tree(path: Path) -> dict[str, str]:
    """Every file under ``path`` with the SHA-256 of its bytes (what 'nothing written' compares)."""
    if not path.exists():
        return {}
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def _fails(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    """Run ``edgefinder ARGS`` in this process; it must exit 1 with one ``error:`` line on stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    assert exc.value.code == 1, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_another_dataset_is_refused_by_forward_pass_paper_trade_and_approve(
    two_datasets, capsys
) -> None:
    a, b, ck = two_datasets
    before = _tree(ck)
    for args in (
        ["markets", "run", "--data", str(b), "--checkpoint-dir", str(ck), "--forward-pass"],
        [
            "markets",
            "paper-trade",
            "--data",
            str(b),
            "--checkpoint-dir",
            str(ck),
            "--from",
            DATES[15].isoformat(),
            "--allow-pending",
        ],
        ["markets", "approve-playbook", "--checkpoint-dir", str(ck), "--data", str(b)],
    ):
        line = _fails(capsys, args)
        assert f"{b} is not the data the checkpoints in {ck} were built from" in line, line
        assert _tree(ck) == before, args
    # the data they were built from passes the same check (the paper trade then runs)
    main_ok = [
        "markets",
        "paper-trade",
        "--data",
        str(a),
        "--checkpoint-dir",
        str(ck),
        "--from",
        DATES[15].isoformat(),
        "--allow-pending",
    ]
    main(main_ok)  # returns (no SystemExit) on success
    assert "MES: $1.25 a tick" in capsys.readouterr().out


def test_another_instrument_is_refused_on_the_playbook_it_was_not_built_for(
    two_datasets, capsys
) -> None:
    a, _, ck = two_datasets
    before = _tree(ck)
    for cmd in (
        ["run", "--forward-pass"],
        ["paper-trade", "--from", DATES[15].isoformat(), "--allow-pending"],
    ):
        line = _fails(
            capsys,
            ["markets", *cmd, "--data", str(a), "--checkpoint-dir", str(ck), "--instrument", "ES"],
        )
        assert "--instrument ES differs from MES" in line, line
    line = _fails(capsys, ["markets", "run", "--data", str(a), "--instrument", "XYZ", "--fresh"])
    assert "unknown instrument 'XYZ'; known symbols: ES, MES, MNQ, NQ" in line
    assert _tree(ck) == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--forward-until", DATES[12].isoformat()],
            "--forward-until holds sessions back from the forward pass: add --forward-pass",
        ),
        (
            [
                "--forward-pass",
                "--train-until",
                DATES[12].isoformat(),
                "--forward-until",
                DATES[8].isoformat(),
            ],
            "must come after --train-until",
        ),
    ],
)
def test_contradicting_flags_are_refused_before_any_phase_runs(
    two_datasets, tmp_path, capsys, extra, message
) -> None:
    a, _, _ = two_datasets
    ck = tmp_path / "new_ck"
    line = _fails(
        capsys,
        ["markets", "run", "--data", str(a), "--checkpoint-dir", str(ck), "--fresh", *extra],
    )
    assert message in line
    assert not ck.exists()  # no phase ran: not even the checkpoint directory was made


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["markets", "synth", "--out", "{tmp}/s", "--start"], "--start"),
        (["markets", "run", "--data", "{a}", "--checkpoint-dir", "{tmp}/c", "--train-until"], None),
        (["markets", "paper-trade", "--data", "{a}", "--from"], "--from"),
        (["markets", "paper-trade", "--data", "{a}", "--from", "2024-02-01", "--to"], "--to"),
        (["esports", "export", "--out", "{tmp}/e", "--since"], "--since"),
    ],
)
@pytest.mark.parametrize("bad", ["2024-13-01", "20240101", "yesterday"])
def test_every_date_flag_has_one_parser_and_one_message(
    two_datasets, tmp_path, capsys, args, flag, bad
) -> None:
    a, _, _ = two_datasets
    argv = [x.format(tmp=tmp_path, a=a) for x in args] + [bad]
    line = _fails(capsys, argv)
    name = flag or "--train-until"
    expected = "a date YYYY-MM-DD" + (
        " or a date-time YYYY-MM-DDTHH:MM (UTC)" if flag is None else ""
    )
    assert line == f"error: {name} must be {expected}, got {bad!r}"
    assert list(tmp_path.iterdir()) == []
