"""Synthetic markets: determinism, CME session calendar, ticks, martingale (none), planted truth."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from edgefinder.markets import atlas
from edgefinder.markets.physics import compute_state_arrays
from edgefinder.markets.synth import SynthConfig, generate_atlas, generate_bars, load_ground_truth

START = dt.date(2024, 3, 1)  # crosses the 2024-03-10 DST change
SESSIONS = 16


@pytest.fixture(scope="module")
def none_bars() -> pd.DataFrame:
    return generate_bars(SynthConfig(sessions=SESSIONS, seed=11, edge="none", start=START))[0]


@pytest.fixture(scope="module")
def planted_atlas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("planted")
    generate_atlas(out, SynthConfig(sessions=SESSIONS, seed=5, edge="planted", start=START))
    return out


def _forward_moves(close: np.ndarray, idx: np.ndarray, horizon: int) -> np.ndarray:
    idx = idx[idx + horizon < close.size]
    return close[idx + horizon] - close[idx]


def test_same_seed_identical_files(tmp_path: Path) -> None:
    cfg = SynthConfig(sessions=3, seed=9, edge="planted")
    generate_atlas(tmp_path / "a", cfg)
    generate_atlas(tmp_path / "b", cfg)
    files = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    assert len(files) >= 8
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    other = generate_bars(SynthConfig(sessions=3, seed=10, edge="planted"))[0]
    assert not np.array_equal(other["close"], atlas.read_bars(tmp_path / "a", "15s")["close"])


def test_session_calendar(none_bars: pd.DataFrame) -> None:
    ts = none_bars["timestamp"].to_numpy()
    assert np.all(np.diff(ts) > 0) and np.all(ts % 15 == 0)
    local = pd.to_datetime(ts, unit="s", utc=True).tz_convert("America/Chicago")
    minutes = local.hour * 60 + local.minute
    assert not np.any((minutes >= 16 * 60) & (minutes < 17 * 60))  # daily break
    wd = local.weekday
    assert not np.any(wd == 5)  # Saturday
    assert not np.any((wd == 6) & (minutes < 17 * 60))  # Sunday before the open
    assert not np.any((wd == 4) & (minutes >= 16 * 60))  # Friday after the close
    sids = atlas.session_ids(ts)
    labels, counts = np.unique(sids, return_counts=True)
    assert len(labels) == SESSIONS and np.all(counts == 23 * 240)  # 23 h of 15 s bars, DST included
    assert all(pd.Timestamp(d).weekday() < 5 for d in labels)
    first = local[np.r_[True, sids[1:] != sids[:-1]]]
    assert set(zip(first.hour, first.minute)) == {(17, 0)}


def test_prices_are_whole_ticks(none_bars: pd.DataFrame) -> None:
    for col in ("open", "high", "low", "close"):
        ticks = none_bars[col].to_numpy() / 0.25
        assert np.array_equal(ticks, np.round(ticks)), col
    assert np.all(none_bars["high"] >= none_bars[["open", "close"]].max(axis=1))
    assert np.all(none_bars["low"] <= none_bars[["open", "close"]].min(axis=1))
    assert np.all(none_bars["volume"] >= 1)


def test_none_is_driftless_and_snaps_do_not_revert(none_bars: pd.DataFrame) -> None:
    close = none_bars["close"].to_numpy()
    inc = np.diff(close) / 0.25
    assert stats.ttest_1samp(inc, 0.0).pvalue > 0.01
    # volatility clustering: |increments| are autocorrelated even though increments are not
    a = np.abs(inc - inc.mean())
    assert np.corrcoef(a[:-1], a[1:])[0, 1] > 0.1
    assert abs(np.corrcoef(inc[:-1], inc[1:])[0, 1]) < 0.02
    # the planted family's look-alikes in `none` data carry no reversion
    st = compute_state_arrays(close, none_bars["volume"].to_numpy())
    idx = np.flatnonzero(st["roche_snap"] & (np.abs(st["velocity"]) >= 3.0))
    fwd = _forward_moves(close, idx, 20) * -np.sign(st["z_score"][idx[idx + 20 < close.size]])
    assert idx.size > 100
    assert stats.ttest_1samp(fwd, 0.0).pvalue > 0.01


def test_intraday_seasonality(none_bars: pd.DataFrame) -> None:
    ts = none_bars["timestamp"].to_numpy()
    local = pd.to_datetime(ts, unit="s", utc=True).tz_convert("America/Chicago")
    inc = np.abs(np.diff(none_bars["close"].to_numpy(), prepend=np.nan))
    hour = np.asarray(local.hour)
    cash_open = np.nanmean(inc[(hour == 8) & (local.minute >= 30)])
    asia = np.nanmean(inc[(hour >= 19) & (hour < 23)])
    assert cash_open > 2 * asia
    vol = none_bars["volume"].to_numpy()
    assert vol[hour == 9].mean() > 2 * vol[(hour >= 19) & (hour < 23)].mean()


def test_planted_ground_truth_and_reversion(planted_atlas: Path) -> None:
    truth = load_ground_truth(planted_atlas)
    assert truth["edge"] == "planted" and truth["sessions"] == SESSIONS
    assert truth["trigger_count"] == len(truth["triggers"]) > 50
    p = truth["params"]
    bars = atlas.read_bars(planted_atlas, "15s")
    close = bars["close"].to_numpy()
    st = compute_state_arrays(close, bars["volume"].to_numpy())
    pos = np.searchsorted(bars["timestamp"].to_numpy(), [t["timestamp"] for t in truth["triggers"]])
    direction = np.array([t["direction"] for t in truth["triggers"]])
    # every trigger is a physics ROCHE_SNAP spike on the written 15s bars, and fades the snap
    assert np.all(st["roche_snap"][pos])
    np.testing.assert_allclose(
        st["z_score"][pos], [t["z_15s"] for t in truth["triggers"]], atol=1e-5
    )
    assert np.all(np.abs(st["velocity"][pos]) >= p["spike_velocity"])
    assert np.array_equal(direction, -np.sign(st["z_score"][pos]).astype(int))
    fwd_ticks = _forward_moves(close, pos, p["horizon_bars"]) * direction[: len(pos)] / 0.25
    assert stats.ttest_1samp(fwd_ticks, 0.0, alternative="greater").pvalue < 1e-6
    assert np.mean(fwd_ticks) == pytest.approx(p["drift_ticks"], rel=0.25)
    # the planted family is rare: under 10% of all 15s ROCHE_SNAPs
    assert len(pos) < 0.1 * st["roche_snap"].sum()
    assert set(atlas.available_timeframes(planted_atlas)) == {
        "1D",
        "4h",
        "1h",
        "15m",
        "5m",
        "1m",
        "15s",
    }
    assert truth["bars"]["15s"] == SESSIONS * 5520


def test_none_ground_truth(tmp_path: Path) -> None:
    res = generate_atlas(tmp_path, SynthConfig(sessions=2, seed=1, edge="none"))
    truth = json.loads((tmp_path / "ground_truth.json").read_text())
    assert truth["edge"] == "none" and truth["trigger_count"] == 0 and res.triggers == 0


def test_resampled_timeframes_consistent(planted_atlas: Path) -> None:
    s15 = atlas.read_bars(planted_atlas, "15s")
    for tf in ("1m", "1h", "1D"):
        pd.testing.assert_frame_equal(
            atlas.read_bars(planted_atlas, tf), atlas.resample(s15, tf), check_dtype=False
        )


def test_finer_base(tmp_path: Path) -> None:
    bars, _ = generate_bars(SynthConfig(sessions=2, seed=3, edge="planted", base="5s"))
    assert len(bars) == 2 * 23 * 720
    assert np.all(bars["timestamp"].to_numpy() % 5 == 0)
    ticks = bars["close"].to_numpy() / 0.25
    assert np.array_equal(ticks, np.round(ticks))


def test_cli_synth(tmp_path: Path) -> None:
    from edgefinder.markets.cli import markets_app

    out = tmp_path / "atlas"
    res = CliRunner().invoke(
        markets_app,
        [
            "synth",
            "--sessions",
            "2",
            "--seed",
            "4",
            "--out",
            str(out),
            "--edge",
            "planted",
            "--start",
            "2024-06-03",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (out / "ground_truth.json").is_file()
    assert load_ground_truth(out)["first_session"] == "2024-06-03"
    bad = CliRunner().invoke(
        markets_app, ["synth", "--sessions", "1", "--out", str(out), "--edge", "maybe"]
    )
    assert bad.exit_code != 0


def test_planted_multi_timeframe_condition_matches_physics() -> None:
    from edgefinder.markets.synth import PlantedEdge

    cfg = SynthConfig(
        sessions=6, seed=8, edge="planted", planted=PlantedEdge(spike_velocity=1.0, z1m=1.0)
    )
    bars, truth = generate_bars(cfg)
    assert truth["trigger_count"] > 20
    m1 = atlas.resample(bars, "1m")
    st1 = compute_state_arrays(m1["close"].to_numpy(), m1["volume"].to_numpy())
    ts = np.array([t["timestamp"] for t in truth["triggers"]])
    # the last 1m bar completed by the trigger bar's close (1m close <= 15s close)
    k = np.searchsorted(m1["timestamp"].to_numpy() + 60, ts + 15, side="right") - 1
    z1m = np.array([t["z_1m"] for t in truth["triggers"]])
    np.testing.assert_allclose(st1["z_score"][k], z1m, atol=1e-5)
    z15 = np.array([t["z_15s"] for t in truth["triggers"]])
    assert np.all(np.abs(z1m) > 1.0) and np.all(np.sign(z1m) == np.sign(z15))


# ---------------------------------------------------------------------------------- reverting edge
def _brute_force_fade(
    bars: pd.DataFrame, only: np.ndarray | None = None, hold: int = 16
) -> np.ndarray:
    """Dollar PnL of fading every 15s ROCHE_SNAP (on bars where ``only`` is True) for ``hold`` bars,
    one plain loop (MNQ: 0.25-point ticks at $0.50, one tick of slippage and $0.62 commission a
    side), never past the session end."""
    ts = bars["timestamp"].to_numpy()
    close = bars["close"].to_numpy()
    st = compute_state_arrays(close, bars["volume"].to_numpy())
    sid = atlas.session_ids(ts)
    out = []
    snap = st["roche_snap"] & st["valid"]
    if only is not None:
        snap = snap & only
    for r in np.flatnonzero(snap).tolist():
        side = -1 if st["z_score"][r] > 0 else 1
        j = r
        while j + 1 < len(ts) and sid[j + 1] == sid[r] and j - r < hold:
            j += 1
        if j == r:
            continue  # the session's last bar: nothing to trade on
        entry = close[r] + side * 0.25
        exit_ = close[j] - side * 0.25
        out.append(side * (exit_ - entry) / 0.25 * 0.5 - 2 * 0.62)
    return np.array(out)


def test_reverting_ground_truth_is_a_cost_surviving_fade_checked_by_brute_force(
    tmp_path: Path,
) -> None:
    """The reverting mode's ground truth states the naive fade's net PnL; a plain loop over the written
    bars agrees, the fade earns after costs on several seeds while the martingale's loses them, and the
    15s returns are negatively autocorrelated (a mean-reverting component) only in reverting data."""
    for seed in (1, 2, 3):
        root = tmp_path / f"rev{seed}"
        generate_atlas(root, SynthConfig(sessions=20, seed=seed, edge="reverting"))
        truth = load_ground_truth(root)
        assert truth["edge"] == "reverting" and truth["trigger_count"] == 0
        assert truth["params"] == {
            "half_life_seconds": 60.0,
            "ou_vol_ticks": 8.0,
            "naive_hold_bars": 16,
        }
        bars = atlas.read_bars(root, "15s")
        pnl = _brute_force_fade(bars)
        fade = truth["naive_fade"]
        assert fade["n"] == pnl.size and fade["mean_dollars"] == pytest.approx(pnl.mean())
        assert fade["mean_points"] == pytest.approx(pnl.mean() / 2.0) and fade[
            "cost_points"
        ] == pytest.approx(1.12)
        assert fade["t"] == pytest.approx(stats.ttest_1samp(pnl, 0.0).statistic)
        assert fade["mean_points"] > 0.5 and fade["t"] > 5  # survives MNQ's 1.12-point round trip
        ret = np.diff(bars["close"].to_numpy())
        assert stats.pearsonr(ret[1:], ret[:-1]).statistic < -0.03
        none_root = tmp_path / f"none{seed}"
        generate_atlas(none_root, SynthConfig(sessions=20, seed=seed, edge="none"))
        none_fade = load_ground_truth(none_root)["naive_fade"]
        assert (
            none_fade["mean_points"] < 0 and abs(none_fade["mean_points"] + 1.12) < 0.25
        )  # loses the costs
        nret = np.diff(atlas.read_bars(none_root, "15s")["close"].to_numpy())
        assert abs(stats.pearsonr(nret[1:], nret[:-1]).statistic) < 0.02
    # the same seed gives the same market
    a, _ = generate_bars(SynthConfig(sessions=3, seed=9, edge="reverting"))
    b, _ = generate_bars(SynthConfig(sessions=3, seed=9, edge="reverting"))
    pd.testing.assert_frame_equal(a, b)


def test_context_shocks_recomputed_from_the_hourly_bars_and_the_fade_earns_only_inside(
    tmp_path: Path,
) -> None:
    """The context mode's shocks are exactly the hours the written 1h bars call shocks (a move above
    twice the standard deviation of the 24 hourly moves before it, recomputed with pandas); the
    naive fade earns after costs inside the windows that follow them and loses outside (brute-force
    loop over the written 15 s bars); the shocks are fat-tailed Student-t, not normal."""
    for seed in (4, 5):
        root = tmp_path / f"ctx{seed}"
        generate_atlas(root, SynthConfig(sessions=40, seed=seed, edge="context"))
        truth = load_ground_truth(root)
        assert truth["edge"] == "context" and truth["params"]["shock_multiple"] == 2.0
        h = atlas.read_bars(root, "1h")
        move = h["close"].diff() / 0.25
        spread = move.shift(1).rolling(24).std(ddof=1)
        shock = (move.abs() > 2 * spread).to_numpy()
        expected = (h["timestamp"].to_numpy()[shock] + 3600).tolist()
        assert [s["hour_close"] for s in truth["shocks"]] == expected
        assert 0.05 < truth["context_time_fraction"] < 0.25
        bars = atlas.read_bars(root, "15s")
        ts = bars["timestamp"].to_numpy()
        inside = np.zeros(ts.size, bool)
        for start in expected:  # each shock opens two hours of context
            inside |= (ts >= start) & (ts < start + 7200)
        pnl_in = _brute_force_fade(bars, inside)
        pnl_out = _brute_force_fade(bars, ~inside)
        fin, fout = truth["naive_fade_inside"], truth["naive_fade_outside"]
        assert fin["n"] == pnl_in.size and fin["mean_dollars"] == pytest.approx(pnl_in.mean())
        assert fout["n"] == pnl_out.size and fout["mean_dollars"] == pytest.approx(pnl_out.mean())
        assert fin["mean_points"] > 1.0 and fin["t"] > 5
        assert fout["mean_points"] < -0.5
        ret = np.diff(bars["close"].to_numpy())
        assert stats.kurtosis(ret[~inside[1:]]) > 1.0  # fat tails outside the windows too
