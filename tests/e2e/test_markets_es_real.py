"""500,000 real E-mini S&P 500 trades (September 2013, US Central time) end to end through the CLI:
``markets atlas build`` -> ``markets run --timeframes 5m,1m,15s`` -> the discovery manifest.

Checked against things that hold whatever the discovery rules are:

* the ATLAS: bar counts of an independent pandas resample, first bar at the Globex open
  (17:00 Chicago = 22:00 UTC on Sunday 2013-09-01);
* CME sessions: every bar lies inside a session of the CME equity calendar of
  ``pandas_market_calendars`` (an independent reference), the Labor Day session 2013-09-02 ends
  early with no bar in the holiday gap, and the next session opens at 17:00 Chicago;
* discovery: every pattern's chain is as long as its depth, and every chain entry's bar had
  closed when the bar below it (the child, or the pattern itself) opened: no look-ahead;
* money: the run is priced as ES (``--instrument ES``), so every forward-pass trade is worth
  $12.50 a tick less ES's commissions, and the summary says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pandas_market_calendars as mcal
import pytest
from typer.testing import CliRunner

from edgefinder.cli import app
from edgefinder.markets import atlas
from edgefinder.markets.discovery import manifest_to_frame

pytestmark = pytest.mark.slow

TFS = ["5m", "1m", "15s"]
CHICAGO = "America/Chicago"


@pytest.fixture(scope="module")
def ticks_csv(shared_dir: Path) -> Path:
    return shared_dir / "data" / "markets_real" / "es_ticks_2013-09.csv.gz"


@pytest.fixture(scope="module")
def built(ticks_csv: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("es") / "atlas"
    ck = root.parent / "checkpoints"
    runner = CliRunner()
    b = runner.invoke(
        app,
        [
            "markets",
            "atlas",
            "build",
            "--source",
            str(ticks_csv),
            "--tz",
            CHICAGO,
            "--out",
            str(root),
            "--timeframes",
            ",".join(TFS),
        ],
    )
    assert b.exit_code == 0, b.output
    r = runner.invoke(
        app,
        [
            "markets",
            "run",
            "--data",
            str(root),
            "--checkpoint-dir",
            str(ck),
            "--timeframes",
            ",".join(TFS),
            "--no-dashboard",
            "--iterations",
            "2",
            "--seed",
            "0",
            "--instrument",
            "ES",
            "--fresh",
            "--forward-pass",
        ],
    )
    assert r.exit_code == 0, r.output
    return root, ck, r.output


def test_atlas_matches_an_independent_resample(built, ticks_csv: Path) -> None:
    root, _, _ = built
    raw = pd.read_csv(ticks_csv)
    assert len(raw) == 500_000
    t = pd.to_datetime(raw["DateTime"]).dt.tz_localize(CHICAGO).dt.tz_convert("UTC")
    s = pd.Series(raw["Price"].to_numpy(), index=t)
    for tf, rule, n in (("15s", "15s", 7576), ("1m", "1min", 2264), ("5m", "5min", 461)):
        ref = s.resample(rule).agg(["first", "max", "min", "last"]).dropna()
        got = atlas.read_bars(root, tf)
        assert len(got) == len(ref) == n
        np.testing.assert_array_equal(got["timestamp"].to_numpy(), ref.index.asi8 // 10**9)
        np.testing.assert_array_equal(
            got[["open", "high", "low", "close"]].to_numpy(), ref.to_numpy()
        )
        assert got["volume"].sum() == raw["Volume"].sum()
    first = atlas.read_bars(root, "15s")["timestamp"].iloc[0]
    assert pd.Timestamp(first, unit="s", tz="UTC") == pd.Timestamp("2013-09-01 22:00", tz="UTC")


def test_sessions_follow_the_cme_calendar(built) -> None:
    root, _, _ = built
    sched = mcal.get_calendar("CME_Equity").schedule("2013-08-30", "2013-09-04")
    opens = sched["market_open"].astype("int64").to_numpy() // 10**9
    closes = sched["market_close"].astype("int64").to_numpy() // 10**9
    labels = sched.index.date
    labor = pd.Timestamp("2013-09-02").date()
    # the reference calendar knows the holiday: Monday's session closes at noon Chicago
    assert sched.loc[str(labor), "market_close"].tz_convert(CHICAGO).hour == 12
    for tf in TFS:
        bars = atlas.read_bars(root, tf)
        ts = bars["timestamp"].to_numpy()
        ours = atlas.session_ids(ts).astype(object)
        i = np.searchsorted(opens, ts, side="right") - 1
        inside = (
            (i >= 0)
            & (ts >= opens[i])
            & (ts + atlas.tf_seconds(tf) <= closes[np.maximum(i, 0)] + 1)
        )
        assert inside.all(), f"{tf}: {int((~inside).sum())} bars outside every CME session"
        # our session label (17:00-16:00 Chicago, named by its end date) is the calendar's
        assert (np.array([labels[k] for k in i]) == ours).all()
        assert sorted(set(ours)) == [labor, pd.Timestamp("2013-09-03").date()]
        # the Labor Day gap: nothing between the holiday close and the 17:00 reopen
        k = list(labels).index(labor)
        gap = (ts >= closes[k]) & (ts < opens[k + 1])
        assert not gap.any()
        last_labor = pd.Timestamp(ts[ours == labor].max(), unit="s", tz="UTC").tz_convert(CHICAGO)
        first_next = pd.Timestamp(ts[ours != labor].min(), unit="s", tz="UTC").tz_convert(CHICAGO)
        assert last_labor.hour < 12 and (first_next.hour, first_next.minute, first_next.day) == (
            17,
            0,
            2,
        )
        lo, hi = atlas.session_bounds(labor)
        assert ts[ours == labor].min() >= lo and ts[ours == labor].max() < hi


def test_discovery_chains_never_look_ahead(built) -> None:
    _, ck, _ = built
    from edgefinder.markets.discovery import load_manifest

    manifest = load_manifest(ck / "manifest.parquet")
    df = manifest_to_frame(manifest)
    assert len(df) > 0 and set(df["timeframe"]) <= set(TFS)
    assert (df["chain_len"] == df["depth"]).all()
    print(
        f"\nES discovery: {len(df)} patterns, by timeframe {df['timeframe'].value_counts().to_dict()}, "
        f"by depth {df['depth'].value_counts().sort_index().to_dict()}"
    )
    checked = 0
    for p in manifest:
        below_open = p.timestamp  # the bar below the current chain entry: first the pattern itself
        for entry in p.parent_chain or []:
            closed = entry["timestamp"] + atlas.tf_seconds(entry["tf"])
            assert closed <= below_open, (p.timeframe, p.timestamp, entry)
            below_open = entry["timestamp"]
            checked += 1
    assert checked > 0 or (df["depth"] == 0).all()


def test_es_trades_are_priced_at_12_50_dollars_a_tick(built) -> None:
    import json

    _, ck, output = built
    assert "ES: $12.50 a tick (0.25 points), $29.50 a round trip" in output
    report = json.loads((ck / "phase4_report.json").read_text())
    assert report["instrument"]["symbol"] == "ES" and report["instrument"]["tick_value"] == 12.5
    trades = pd.read_parquet(ck / "phase4_trades.parquet")
    assert len(trades) > 10
    # recomputed from the fills alone: ticks between entry and exit fill, $12.50 each, less $2.25
    # commission a side (slippage is inside the fills)
    ticks = trades["side"] * (trades["exit_price"] - trades["entry_price"]) / 0.25
    np.testing.assert_allclose(trades["pnl_ticks"], ticks, atol=1e-9)
    np.testing.assert_allclose(trades["pnl"], ticks * 12.50 - 2 * 2.25, atol=1e-6)


def test_the_report_header_names_the_instrument(built, tmp_path: Path) -> None:
    _, ck, _ = built
    out = tmp_path / "report.html"
    r = CliRunner().invoke(
        app,
        [
            "--data-dir",
            str(tmp_path / "data"),
            "report",
            "--out",
            str(out),
            "--checkpoint-dir",
            str(ck),
        ],
    )
    assert r.exit_code == 0, r.output
    html = out.read_text()
    assert '<span data-figure="fu.instrument">ES</span></h2>' in html
    assert "ES ($12.50 a tick) on 15s entries" in html
