"""Phases 4–5 end to end on synthetic ATLASes: samples, the scan, paper trading, look-ahead, resume.

Both runs use the defaults (full 1D..15s hierarchy, context cascade, gates, production rule) with 5
trials a template (``ITER``): nothing here depends on the search quality. The no-edge run is a
90-session martingale split at session 60 (sessions 61–90 out-of-sample); the planted run is 120
sessions of ``--edge reverting`` split at 60 with sessions 91–120 held back for paper trading.
Whether the pipeline finds the planted edge at full defaults is tests/e2e/test_markets_evidence.py.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from edgefinder.markets import atlas
from edgefinder.markets.brain import chain_label
from edgefinder.markets.cascade import FractalCascadeScanner
from edgefinder.markets.clustering import pattern_features
from edgefinder.markets.discovery import load_manifest
from edgefinder.markets.forward import (
    JOURNAL,
    REPLAY_STAGES,
    REPORT,
    ForwardConfig,
    ForwardError,
    run_forward_pass,
)
from edgefinder.markets.orchestrator import Orchestrator
from edgefinder.markets.physics import states_at
from edgefinder.markets.synth import SynthConfig, generate_atlas, session_dates

pytestmark = pytest.mark.slow

SESSIONS = 90
DATES = session_dates(SynthConfig().start, 120)
TRAIN_UNTIL = DATES[60].isoformat()  # sessions 61.. are out-of-sample
FORWARD_UNTIL = DATES[90].isoformat()  # planted run: sessions 91..120 held back for paper trading
ITER = 5


def _quiet() -> Console:
    return Console(file=io.StringIO(), force_terminal=False, width=160)


def _pipeline(
    root: Path,
    edge: str,
    tfs: list[str] | None = None,
    seed: int = 3,
    sessions: int = SESSIONS,
    train_until: str | None = TRAIN_UNTIL,
    iterations: int = ITER,
    forward_until: str | None = None,
):
    data, ck = root / "atlas", root / "ck"
    generate_atlas(data, SynthConfig(sessions=sessions, seed=seed, edge=edge))  # type: ignore[arg-type]
    orch = Orchestrator(
        data,
        ck,
        iterations=iterations,
        train_until=train_until,
        timeframes=tfs,
        seed=seed,
        dashboard=False,
        console=_quiet(),
    )
    orch.run()
    fwd = orch.run_forward_pass(day_lines=False, forward_until=forward_until)
    sel = orch.run_strategy_selection()
    return data, ck, fwd, sel


@pytest.fixture(scope="module")
def none_run(tmp_path_factory):
    return _pipeline(tmp_path_factory.mktemp("fwd_none"), "none")


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    return _pipeline(
        tmp_path_factory.mktemp("fwd_reverting"),
        "reverting",
        sessions=120,
        forward_until=FORWARD_UNTIL,
    )


def _report(ck: Path) -> dict:
    return json.loads((ck / REPORT).read_text())


# ---------------------------------------- noise promotes nothing; the scan; the paper trade


def test_no_edge_has_empty_playbook_and_no_oos_edge(none_run) -> None:
    """A martingale: nothing may reach production, and out-of-sample trades show no edge."""
    _, ck, fwd, sel = none_run
    rep = _report(ck)
    assert rep["complete"] and rep["sessions_processed"] == SESSIONS
    assert (
        rep["timeframes"] == ["1D", "4h", "1h", "15m", "5m", "1m", "15s"]
        and rep["entry_timeframe"] == "15s"
    )
    assert rep["cascade"] == "context"
    oos = rep["out_of_sample"]
    assert rep["in_sample"]["days"] == 60 and oos["days"] == SESSIONS - 60
    assert (
        oos["total_trades"] >= 200 and oos["power"]["conclusive"]
    )  # enough trades for the test to mean it
    assert oos["p_value_mean_pnl_gt_0"] > 0.05  # not significantly above zero
    assert sel.production == {}
    doc = json.loads((ck / "production_playbook.json").read_text())
    assert doc["templates"] == {} and doc["status"] == "pending_review"
    # every trade is stamped with bar times inside the data and its session's sample
    tr = fwd.trades
    assert (tr["exit_time"] >= tr["entry_time"]).all()
    assert ((tr["entry_time"] >= rep["train_until"]) == tr["out_of_sample"]).all()
    assert (tr["depth"] == tr["chain"].map(lambda c: 0 if not c else c.count(" < ") + 1)).all()


def test_the_forward_scan_is_the_discovery_scan(none_run) -> None:
    """On the training bars the forward cascade finds exactly discovery's 15s patterns, chains, states and
    11D features; one session's cascade is the slice of them whose bar opens in that session."""
    data, ck, _, _ = none_run
    with open(ck / "state.json") as fh:
        t_until = json.load(fh)["phases"]["discovery"]["train_until"]
    scanner = FractalCascadeScanner(atlas.available_timeframes(data), "15s")
    states = scanner.compute_states(data, end=t_until)
    cascade = scanner.scan(states)
    k = len(cascade.levels) - 1
    lv = cascade.levels[k]
    manifest = [p for p in load_manifest(ck / "manifest.parquet") if p.timeframe == "15s"]
    assert len(lv) == len(manifest) > 0 and {p.depth for p in manifest} >= {0, 1, 2}
    chains = cascade.chains(k)
    got_states = states_at(states["15s"], lv.rows, "15s")
    types = lv.types
    for i, ref in enumerate(manifest):
        assert (lv.ts[i], types[i], lv.depth[i]) == (ref.timestamp, ref.pattern_type, ref.depth)
        assert chains[i] == ref.parent_chain
        assert got_states[i] == ref.state
    # the labels built once per distinct chain are each pattern's own chain, joined one by one
    every = np.arange(len(lv))
    assert cascade.chain_labels(k, every).tolist() == [
        chain_label((e["tf"], e["type"]) for e in chain) for chain in chains
    ]
    assert cascade.chain_labels(k, every[::-7]).tolist() == [
        chain_label((e["tf"], e["type"]) for e in chains[i]) for i in every[::-7]
    ]
    np.testing.assert_array_equal(cascade.features(k), pattern_features(manifest))
    day = next(
        d
        for d in DATES
        if atlas.session_bounds(d)[0]
        <= manifest[len(manifest) // 2].timestamp
        < atlas.session_bounds(d)[1]
    )
    idx = scanner.scan_session(day, cascade)
    lo, hi = atlas.session_bounds(day)
    assert idx.size and all(lo <= manifest[i].timestamp < hi for i in idx)
    assert sum(lo <= p.timestamp < hi for p in manifest) == idx.size


def test_held_back_sessions_and_the_paper_trade_guards(planted_run, tmp_path) -> None:
    """The forward pass stops at --forward-until and records it; paper trading refuses what Phases 2–5
    used and an unapproved playbook, and changes no pipeline file."""
    from edgefinder.markets.checkpoints import forward_record
    from edgefinder.markets.paper_trade import PaperTradeError, run_paper_trade

    data, ck, fwd, sel = planted_run
    rep = fwd.report
    assert (
        rep["sessions_total"] == 90 and rep["forward_until"] == atlas.session_bounds(DATES[90])[0]
    )
    assert fwd.trades["entry_time"].max() < rep["forward_until"]
    rec = forward_record(ck)
    assert rec is not None and rec.last_session == DATES[89].isoformat() and rec.sessions == 90
    assert sel.production, "the planted edge should give a production playbook even with 5 trials"
    work = tmp_path / "ck"
    shutil.copytree(ck, work)
    with pytest.raises(PaperTradeError, match="overlaps the sessions Phases 2–5 used"):
        run_paper_trade(work, data, DATES[89].isoformat(), allow_pending=True)
    with pytest.raises(PaperTradeError, match="pending_review"):
        run_paper_trade(work, data, DATES[90].isoformat())
    with pytest.raises(PaperTradeError, match="--to .* is before --from"):
        run_paper_trade(
            work, data, DATES[100].isoformat(), DATES[95].isoformat(), allow_pending=True
        )
    frozen = {
        n: (work / n).read_bytes()
        for n in (
            "brain.pkl",
            "production_playbook.pkl",
            "pattern_library.pkl",
            "state.json",
            REPORT,
        )
    }
    res = run_paper_trade(work, data, DATES[90].isoformat(), allow_pending=True)
    assert res.report["sessions"] == 30 and res.report["from"] == DATES[90].isoformat()
    assert (
        res.report["to"] == DATES[119].isoformat()
        and res.report["playbook_status"] == "pending_review"
    )
    assert all(
        (work / n).read_bytes() == b for n, b in frozen.items()
    )  # frozen: no brain updates, no new files
    doc = json.loads((work / "paper_trade_report.json").read_text())
    assert doc["total_trades"] == res.report["total_trades"] > 0
    assert doc["total_pnl"] == pytest.approx(res.trades["pnl"].sum())


def test_paper_trades_are_the_production_playbook_replayed_independently(
    planted_run, tmp_path
) -> None:
    """Every paper trade, checked without the replay code: its entry is a 15s pattern of discovery's scan
    over all bars (whose chain started before the entry), its nearest template is in production for the
    pattern's family, positions never overlap, and its PnL is the one exit simulator's for that entry and
    the template's parameters."""
    from edgefinder.markets.clustering import load_scaler, nearest_template
    from edgefinder.markets.discovery import FractalDiscoveryAgent
    from edgefinder.markets.exits import simulate_exits
    from edgefinder.markets.instruments import get_instrument
    from edgefinder.markets.metalabel import load_meta_model, meta_family_key
    from edgefinder.markets.paper_trade import run_paper_trade
    from edgefinder.markets.replay import family_key

    data, ck, _, sel = planted_run
    work = tmp_path / "ck"
    shutil.copytree(ck, work)
    trades = run_paper_trade(work, data, DATES[90].isoformat(), allow_pending=True).trades
    assert len(trades) > 50
    lo = atlas.session_bounds(DATES[90])[0]
    pats = [
        p
        for p in FractalDiscoveryAgent().scan_atlas_topdown(data)
        if p.timeframe == "15s" and p.timestamp >= lo
    ]
    lib = pickle.loads((ck / "pattern_library.pkl").read_bytes())
    ids = np.array(sorted(lib))
    scaler = load_scaler(ck / "clustering_scaler.pkl")
    nidx, dist = nearest_template(
        scaler.transform(pattern_features(pats)),
        scaler.transform(np.array([lib[t]["centroid"] for t in ids])),
    )
    by_bar = {}
    for p, t, d in zip(pats, ids[nidx], dist):
        side = (
            (-1 if p.z_score > 0 else 1)
            if p.pattern_type == "ROCHE_SNAP"
            else (1 if p.momentum > 0 else -1)
        )
        root = p.parent_chain[-1]["type"] if p.parent_chain else ""
        by_bar.setdefault(p.timestamp, []).append(
            (int(t), family_key(p.pattern_type, "15s", side, root), side, d)
        )
    bars = atlas.read_bars(data, "15s")
    ts = bars["timestamp"].to_numpy()
    inst = get_instrument("MNQ")
    sid = atlas.session_ids(ts)
    meta = load_meta_model(work, ValueError)
    gate = meta.gate({c: trades[c].to_numpy() for c in trades.columns}) if meta else None
    for k, r in enumerate(trades.itertuples(index=False)):
        opts = [o for o in by_bar[r.entry_time - 15] if o[0] == r.template_id and o[1] == r.family]
        fams = sel.production[r.template_id]["families"]
        # in production for its own family, or for its pattern type's meta-label family with the
        # meta model's probability for its context at or above the threshold
        by_meta = gate is not None and gate[k] and meta_family_key(r.pattern_type, "15s") in fams
        assert opts and (r.family in fams or by_meta) and opts[0][3] < 3.0
        row = int(np.searchsorted(ts, r.entry_time - 15))
        end = int(np.flatnonzero(sid == sid[row])[-1])
        p = lib[r.template_id]["params"]
        sim = simulate_exits(
            ts,
            bars["high"].to_numpy(),
            bars["low"].to_numpy(),
            bars["close"].to_numpy(),
            [row],
            opts[0][2],
            p["stop_loss_ticks"],
            p["take_profit_ticks"],
            p["trailing_stop_ticks"],
            p["max_hold_seconds"],
            inst,
            end_idx=end,
            bar_seconds=15.0,
        )
        assert sim.pnl_dollars[0] == pytest.approx(r.pnl)
    assert (
        trades["entry_time"].to_numpy()[1:] >= trades["exit_time"].to_numpy()[:-1]
    ).all()  # one at a time


# ---------------------------------------------------------------------------- no look-ahead


def _perturbed_copy(src: Path, dst: Path, t_cut: int, seed: int = 11) -> None:
    """Copy an ATLAS, replacing every 15s bar opening at or after ``t_cut`` with a different random
    walk, and rebuild every coarser timeframe from the 15s bars (as the ATLAS would be built)."""
    base = atlas.read_bars(src, "15s")
    after = base["timestamp"].to_numpy() >= t_cut
    rng = np.random.default_rng(seed)
    shift = 0.25 * np.cumsum(np.rint(rng.normal(0, 6, int(after.sum()))))
    for col in ("open", "high", "low", "close"):
        base.loc[after, col] = base.loc[after, col].to_numpy() + shift
    base.loc[after, "volume"] = base.loc[after, "volume"].to_numpy()[::-1]
    tfs = [tf for tf in atlas.available_timeframes(src)]
    atlas.write_all_timeframes(dst, base, "15s", tfs)


def test_no_lookahead_perturbing_the_future_changes_no_earlier_decision(
    planted_run, tmp_path
) -> None:
    data, ck, fwd, _ = planted_run
    # mid-session, not on a 1m/5m/15m/1h boundary: bars of every coarser timeframe straddle the cut
    t_cut = atlas.session_bounds(DATES[75])[0] + 6 * 3600 + 7 * 60 + 30
    pdata, pck = tmp_path / "atlas", tmp_path / "ck"
    _perturbed_copy(data, pdata, t_cut)
    pck.mkdir()
    for name in ("pattern_library.pkl", "clustering_scaler.pkl", "state.json"):
        shutil.copy(ck / name, pck / name)
    alt = run_forward_pass(pdata, pck, ForwardConfig(), forward_until=FORWARD_UNTIL)
    a, b = fwd.trades, alt.trades
    cols = [
        "entry_time",
        "template_id",
        "direction",
        "entry_price",
        "match_distance",
        "pattern_type",
        "root_tf",
        "root_type",
        "chain",
        "depth",
        "family",
    ]
    cols += [c for c in a.columns if c.startswith("ctx_")]  # the context at entry too
    assert len(cols) > 11 + 40
    before_a, before_b = a[a["entry_time"] <= t_cut], b[b["entry_time"] <= t_cut]
    assert len(before_a) > 20
    # the text columns are categoricals whose category sets cover the whole run, later trades
    # included: the values are compared, not those sets
    pd.testing.assert_frame_equal(
        before_a[cols].reset_index(drop=True),
        before_b[cols].reset_index(drop=True),
        check_categorical=False,
    )
    closed_a, closed_b = a[a["exit_time"] <= t_cut], b[b["exit_time"] <= t_cut]
    pd.testing.assert_frame_equal(
        closed_a.reset_index(drop=True), closed_b.reset_index(drop=True), check_categorical=False
    )
    # the perturbation did change what happened after the cut (the test can fail)
    after_a, after_b = a[a["entry_time"] > t_cut], b[b["entry_time"] > t_cut]
    assert len(after_a) != len(after_b) or not np.allclose(
        after_a["pnl"].to_numpy(), after_b["pnl"].to_numpy()
    )


# ---------------------------------------------------------- resume, determinism and the CLI


def _copy_inputs(ck: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name in ("pattern_library.pkl", "clustering_scaler.pkl", "state.json"):
        shutil.copy(ck / name, dst / name)
    return dst


def test_kill_and_resume_gives_the_same_report(none_run, tmp_path) -> None:
    """A run SIGKILLed after 37 sessions (in a subprocess), plus a torn journal tail, resumes to the
    uninterrupted run's phase4_report.json; so does a run stopped with max_sessions."""
    data, ck, _, _ = none_run
    reference = (ck / REPORT).read_text()
    killed = _copy_inputs(ck, tmp_path / "killed")
    script = textwrap.dedent(f"""
        import os, signal
        from edgefinder.markets.forward import run_forward_pass
        def hook(k, day):
            if k == 36:
                os.kill(os.getpid(), signal.SIGKILL)
        run_forward_pass({str(data)!r}, {str(killed)!r}, on_session=hook)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert not (killed / REPORT).exists()
    with open(killed / JOURNAL, "ab") as fh:  # a kill in the middle of the next append
        fh.write(struct.pack("<QI", 4096, 12345) + b"partial record")
    seen: list[int] = []
    res = run_forward_pass(data, killed, on_session=lambda k, d: seen.append(k))
    assert seen[0] == 37 and seen[-1] == SESSIONS - 1  # resumed after the last checkpointed session
    assert res.complete
    assert (killed / REPORT).read_text() == reference

    stopped = _copy_inputs(ck, tmp_path / "stopped")
    part = run_forward_pass(data, stopped, max_sessions=50)
    assert not part.complete and part.report["sessions_processed"] == 50
    run_forward_pass(data, stopped, max_sessions=45)
    final = run_forward_pass(data, stopped)
    assert final.complete and (stopped / REPORT).read_text() == reference
    # the brain written at the end is the uninterrupted run's
    with open(stopped / "brain.pkl", "rb") as fh, open(ck / "brain.pkl", "rb") as gh:
        assert pickle.load(fh)["table"] == pickle.load(gh)["table"]


def test_the_journal_records_every_trades_context_at_entry(none_run) -> None:
    """Each session record of phase4_journal.bin carries the context at entry of its trades: the
    same columns and values as phase4_trades.parquet, trade by trade, in order."""
    from edgefinder.markets.journal import read_records

    _, ck, _, _ = none_run
    trades = pd.read_parquet(ck / "phase4_trades.parquet")
    ctx_cols = [c for c in trades.columns if c.startswith("ctx_")]
    assert len(trades) > 0 and any(c.endswith("_stretch") for c in ctx_cols)
    records = [r for r in read_records(ck / JOURNAL) if r.get("kind") == "session"]
    assert all(len(r["context"][c]) == r["trades"]["pnl"].size for r in records for c in ctx_cols)
    for c in ctx_cols:
        got = np.concatenate([np.asarray(r["context"][c], np.float64) for r in records])
        np.testing.assert_array_equal(got, trades[c].to_numpy(np.float64), err_msg=c)


def test_changed_inputs_restart_the_journal(none_run, tmp_path) -> None:
    """A journal written with other gates is not resumed: the run starts over with the new settings."""
    data, ck, _, _ = none_run
    work = _copy_inputs(ck, tmp_path / "ck")
    shutil.copy(ck / JOURNAL, work / JOURNAL)  # the reference run's complete journal
    replayed: list[int] = []
    resumed = run_forward_pass(data, work, on_session=lambda k, d: replayed.append(k))
    assert replayed == []  # every session came from the journal
    assert (
        resumed.complete and (work / REPORT).read_text() == (ck / REPORT).read_text()
    )  # nothing left to do
    seen: list[int] = []
    strict = run_forward_pass(
        data, work, ForwardConfig(match_distance=1.0), on_session=lambda k, d: seen.append(k)
    )
    assert seen[0] == 0 and strict.report["config"]["match_distance"] == 1.0
    assert strict.report["gates"]["gate1_pass"] < resumed.report["gates"]["gate1_pass"]


def test_without_a_journal_the_same_pass_and_no_journal_left(none_run, tmp_path) -> None:
    """``resumable=False`` (a walk-forward task's pass) writes no journal and removes a stale one,
    and gives the journaled run's report, trades and brain."""
    data, ck, _, _ = none_run
    work = _copy_inputs(ck, tmp_path / "ck")
    shutil.copy(ck / JOURNAL, work / JOURNAL)  # would otherwise be resumed
    seen: list[int] = []
    res = run_forward_pass(
        data, work, resumable=False, day_lines=False, on_session=lambda k, d: seen.append(k)
    )
    assert seen == list(range(SESSIONS))  # every session replayed, none taken from the journal
    assert not (work / JOURNAL).exists()
    assert (work / REPORT).read_text() == (ck / REPORT).read_text()
    pd.testing.assert_frame_equal(
        pd.read_parquet(work / "phase4_trades.parquet"),
        pd.read_parquet(ck / "phase4_trades.parquet"),
    )
    with open(work / "brain.pkl", "rb") as fh, open(ck / "brain.pkl", "rb") as gh:
        assert pickle.load(fh)["table"] == pickle.load(gh)["table"]
    assert res.complete and len(res.trades) > 0
    # the replay's stages were timed, and they are a part of the pass (the rest is per pass)
    assert set(REPLAY_STAGES) <= set(res.timings)
    assert 0 < res.replay_seconds < res.seconds


def test_same_seed_twice_gives_the_same_report(tmp_path) -> None:
    """The whole pipeline (synth, Phases 2–5) twice with one seed: identical Phase 4 report and playbook."""
    small = dict(sessions=30, train_until=DATES[20].isoformat(), iterations=3)
    runs = [
        _pipeline(tmp_path / f"run{k}", "planted", ["5m", "1m", "15s"], seed=8, **small)
        for k in (0, 1)
    ]
    (_, ck0, f0, _), (_, ck1, f1, _) = runs
    assert f0.report["all"]["total_trades"] > 0
    assert (ck0 / REPORT).read_text() == (ck1 / REPORT).read_text()
    assert (ck0 / "production_playbook.json").read_text() == (
        ck1 / "production_playbook.json"
    ).read_text()
    pd.testing.assert_frame_equal(f0.trades, f1.trades)


def test_cli_three_combinations(none_run, tmp_path) -> None:
    """`markets run` --forward-pass/--strategy-report: report alone, forward pass + report on the
    existing playbook (Phases 2–3 skipped), and the approve-playbook step."""
    from typer.testing import CliRunner

    from edgefinder.markets.cli import markets_app

    data, ck, _, _ = none_run
    work = tmp_path / "ck"
    shutil.copytree(ck, work)
    (work / REPORT).unlink()
    (work / JOURNAL).unlink()
    runner = CliRunner()
    # the report alone needs no ATLAS (the original `--strategy-report` on its own)
    r = runner.invoke(markets_app, ["run", "--checkpoint-dir", str(work), "--strategy-report"])
    assert r.exit_code == 0, r.output
    assert "=== Phase 5: Strategy Selection ===" in r.output and "Phase 4" not in r.output
    r = runner.invoke(
        markets_app,
        [
            "run",
            "--data",
            str(data),
            "--checkpoint-dir",
            str(work),
            "--forward-pass",
            "--strategy-report",
            "--min-prob",
            "0.05",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "=== Phase 4 Forward Pass Complete ===" in r.output
    for line in (
        "Days: 90",
        "Total trades:",
        "Win rate:",
        "Total PnL:",
        "Sharpe:",
        "Max drawdown:",
        "Templates fired:",
        "Brain coverage:",
        "=== Out-of-sample sessions ===",
        "Power:",
    ):
        assert line in r.output
    assert "Phase 2 — discovery" not in r.output  # skipped: existing playbook
    assert (work / REPORT).read_text() == (ck / REPORT).read_text()
    # a forward pass on this playbook may not call training sessions out-of-sample, nor change the hierarchy
    early = DATES[40].isoformat()
    for extra in (["--train-until", early], ["--timeframes", "5m,1m,15s"]):
        r = runner.invoke(
            markets_app,
            ["run", "--data", str(data), "--checkpoint-dir", str(work), "--forward-pass", *extra],
        )
        assert r.exit_code != 0 and isinstance(r.exception, ForwardError), r.output
    assert (work / REPORT).read_text() == (
        ck / REPORT
    ).read_text()  # refused before touching anything
    r = runner.invoke(markets_app, ["run", "--checkpoint-dir", str(work), "--forward-pass"])
    assert r.exit_code != 0 and "--data DIR" in str(r.exception)
    # the martingale's production playbook is empty (test above): there is nothing to approve
    before = (work / "production_playbook.json").read_bytes()
    r = runner.invoke(
        markets_app, ["approve-playbook", "--checkpoint-dir", str(work), "--reviewer", "qa"]
    )
    assert (
        r.exit_code != 0
        and "is empty" in str(r.exception)
        and "nothing to approve" in str(r.exception)
    )
    assert (work / "production_playbook.json").read_bytes() == before


def test_demo_finds_its_edge_and_paper_trades_it(tmp_path) -> None:
    """`edgefinder demo`'s futures part: a non-empty production playbook and its paper trade on the
    held-back sessions, earning money."""
    from edgefinder.markets.demo import run
    from edgefinder.settings import Settings

    console = Console(file=io.StringIO(), width=200, record=True)
    out = run(Settings(data_dir=tmp_path), console)
    text = console.export_text()
    assert "Phase 4 — forward pass" in text and "out-of-sample" in text and "pending_review" in text
    assert out["selection"].production and out["paper"] is not None
    assert out["paper"]["sessions"] == 30 and out["paper"]["total_pnl"] > 0
    assert "Paper trade on 30 held-back sessions" in text
    ck = tmp_path / "demo" / "markets" / "checkpoints"
    rep = json.loads((ck / REPORT).read_text())
    assert rep["complete"] and rep["out_of_sample"]["days"] == 30 and rep["sessions_total"] == 90
    assert (
        json.loads((ck / "paper_trade_report.json").read_text())["total_trades"]
        == out["paper"]["total_trades"]
    )
