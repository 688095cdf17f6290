"""The context at entry: every coarser timeframe's last closed bar, its last pattern and the volatility
regime, checked against a plain per-candidate loop, and blind to anything after the entry bar's close."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from edgefinder.markets import atlas
from edgefinder.markets.cascade import pattern_rows
from edgefinder.markets.context import (
    RECENT_BARS,
    STRETCH_Z,
    VOL_LOOKBACK,
    context_label,
    context_splits,
    entry_context,
)
from edgefinder.markets.physics import state_arrays
from edgefinder.markets.synth import SynthConfig, generate_bars

TFS = ["1h", "15m", "1m", "15s"]


@pytest.fixture(scope="module")
def states() -> dict:
    bars, _ = generate_bars(SynthConfig(sessions=6, seed=3, edge="context"))
    return {tf: state_arrays(atlas.resample(bars, atlas.TIMEFRAMES[tf])) for tf in TFS}


def _candidates(states: dict, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rows, _ = pattern_rows(states["15s"])
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(rows, size=min(n, rows.size), replace=False))
    return rows, rng.choice([-1, 1], size=rows.size)


def test_context_equals_a_plain_loop(states) -> None:
    rows, side = _candidates(states)
    ctx = entry_context(states, "15s", rows, side, TFS).columns
    ts15 = np.asarray(states["15s"]["timestamp"])
    for i, (r, s) in enumerate(zip(rows.tolist(), side.tolist())):
        t = ts15[r] + 15  # the decision instant: the entry bar's close
        for tf in ("1m", "15m", "1h"):
            st, p = states[tf], atlas.TIMEFRAMES[tf]
            ts = np.asarray(st["timestamp"])
            closed = [k for k in range(ts.size) if ts[k] + p <= t]
            if not closed:
                assert np.isnan(ctx[f"ctx_{tf}_z"][i])
                continue
            k = closed[-1]
            z = float(st["z_score"][k])
            assert ctx[f"ctx_{tf}_z"][i] == pytest.approx(z, nan_ok=True)
            assert ctx[f"ctx_{tf}_velocity"][i] == pytest.approx(st["velocity"][k], nan_ok=True)
            want = 0 if not abs(z) >= STRETCH_Z else (1 if np.sign(z) == s else -1)
            assert ctx[f"ctx_{tf}_stretch"][i] == want
            pats = [
                k
                for k in range(ts.size)
                if (st["roche_snap"][k] or st["structural_drive"][k]) and st["valid"][k]
            ]
            done = [k for k in pats if ts[k] + p <= t]
            if done:
                assert ctx[f"ctx_{tf}_age"][i] == pytest.approx((t - ts[done[-1]] - p) / p)
                assert ctx[f"ctx_{tf}_last"][i] == np.sign(st["z_score"][done[-1]]) * s
            else:
                assert np.isnan(ctx[f"ctx_{tf}_age"][i]) and ctx[f"ctx_{tf}_last"][i] == 0
        h = states["1h"]
        hts = np.asarray(h["timestamp"])
        closed = [k for k in range(hts.size) if hts[k] + 3600 <= t]
        rng_h = np.asarray(h["high"]) - np.asarray(h["low"])
        if closed and closed[-1] >= VOL_LOOKBACK:
            k = closed[-1]
            want = rng_h[k] / np.median(rng_h[k - VOL_LOOKBACK : k])
            assert ctx["ctx_vol_regime"][i] == pytest.approx(want)


def test_context_ignores_every_bar_not_closed_by_the_entry(states) -> None:
    """Overwrite every coarser bar that closes after the entry bar's close: the context is unchanged."""
    rows, side = _candidates(states, 60)
    ref = entry_context(states, "15s", rows, side, TFS).columns
    ts15 = np.asarray(states["15s"]["timestamp"])
    changed = 0
    for i, r in enumerate(rows.tolist()):
        t = ts15[r] + 15
        alt = dict(states)
        for tf in ("1m", "15m", "1h"):
            st = {k: np.array(v, copy=True) for k, v in states[tf].items()}
            future = np.asarray(st["timestamp"]) + atlas.TIMEFRAMES[tf] > t
            for col in ("z_score", "velocity", "momentum", "coherence", "high"):
                st[col][future] = 99.0
            st["roche_snap"][future] = True
            alt[tf] = st
        got = entry_context(alt, "15s", rows[i : i + 1], side[i : i + 1], TFS).columns
        for c, v in ref.items():
            np.testing.assert_array_equal(got[c], v[i : i + 1], err_msg=c)
        # the bar still forming at t is in the overwritten set: the test can fail
        changed += int((np.asarray(states["1h"]["timestamp"]) + 3600 > t).any())
    assert changed == len(rows)


def test_splits_and_label(states) -> None:
    rows, side = _candidates(states, 200)
    ctx = entry_context(states, "15s", rows, side, TFS).columns
    sp = context_splits(pd.DataFrame(ctx))
    assert list(sp)[:4] == ["1m with", "1m against", "1m calm", "1m fired"]
    for tf in ("1m", "15m", "1h"):
        total = sp[f"{tf} with"].astype(int) + sp[f"{tf} against"] + sp[f"{tf} calm"]
        assert (total == 1).all()  # exactly one stretch state each
        assert (
            sp[f"{tf} fired"] == (np.nan_to_num(ctx[f"ctx_{tf}_age"], nan=9e9) <= RECENT_BARS)
        ).all()
    label = context_label({k: v[0] for k, v in ctx.items()}, ["1m", "15m", "1h"])
    assert label.startswith("1h ") and " · 15m " in label
