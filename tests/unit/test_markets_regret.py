"""BatchRegretAnalyzer: hand-computed trades and a naive-loop reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from edgefinder.markets.brain import TradeOutcome
from edgefinder.markets.instruments import get_instrument
from edgefinder.markets.regret import BatchRegretAnalyzer, RegretConfig


def _t(
    direction: str, entry_t: float, exit_t: float, entry_p: float, exit_p: float
) -> TradeOutcome:
    side = 1 if direction == "LONG" else -1
    pnl = (exit_p - entry_p) * side * 2.0
    return TradeOutcome(
        None,
        entry_p,
        exit_p,
        pnl,
        "WIN" if pnl > 0 else "LOSS",
        exit_t,
        "TARGET",
        entry_t,
        exit_t,
        exit_t - entry_t,
        direction,
        1,
    )


BARS = pd.DataFrame(
    {  # 1m bars (open timestamps), points
        "timestamp": [0, 60, 120, 180, 240, 300, 360, 420],
        "high": [101.0, 103.0, 104.0, 102.0, 106.0, 101.0, 100.0, 120.0],
        "low": [99.0, 100.0, 101.0, 99.5, 101.0, 98.0, 97.0, 90.0],
    }
)


def test_hand_computed_markers() -> None:
    an = BatchRegretAnalyzer(get_instrument("MNQ"), RegretConfig(lookahead_bars=2), bar_seconds=60)
    trades = [
        _t(
            "LONG", 30, 150, 100.0, 103.0
        ),  # open over bars 0,60,120; after: 180,240 -> peak 106 after exit
        _t("LONG", 90, 200, 101.0, 103.5),  # open bars 60,120,180 (peak 104); after 240,300 -> 106
        _t("SHORT", 250, 340, 100.0, 99.0),  # open bars 240,300 (low 98); after 360,420 -> 90
        _t("LONG", 60, 170, 100.0, 103.9),  # open bars 60..120 peak 104, after 180 (102), 240 (106)
    ]
    m = an.batch_analyze_day(trades, BARS).markers
    # trade 0: peak 106 came after the exit -> potential (106-100)*2 = 12 $, actual 6 $
    assert m.loc[0, "peak_favorable"] == 106.0 and m.loc[0, "peak_open"] == 104.0
    assert m.loc[0, "potential_pnl"] == pytest.approx(12.0)
    assert m.loc[0, "actual_pnl"] == pytest.approx(6.0)
    assert m.loc[0, "left_on_table"] == pytest.approx(6.0)
    assert m.loc[0, "gave_back"] == pytest.approx(2.0)  # (104 - 103) * 2
    assert m.loc[0, "exit_efficiency"] == pytest.approx(0.5)
    assert m.loc[0, "regret_type"] == "closed_too_early"
    # trade 2 (short): 90 after the exit beats 98 while open -> too early, efficiency 1/10
    assert m.loc[2, "peak_favorable"] == 90.0
    assert m.loc[2, "potential_pnl"] == pytest.approx(20.0)
    assert m.loc[2, "exit_efficiency"] == pytest.approx(0.1)
    assert m.loc[2, "regret_type"] == "closed_too_early"
    # trade 3: lookahead 2 bars reaches 240 (106): too early with efficiency 3.9/6
    assert m.loc[3, "exit_efficiency"] == pytest.approx(3.9 / 6.0)
    an1 = BatchRegretAnalyzer(get_instrument("MNQ"), RegretConfig(lookahead_bars=1), bar_seconds=60)
    m1 = an1.batch_analyze_day(trades, BARS).markers
    # with one bar past the exit only 180 (102) is seen: the best price (104) came while open
    assert m1.loc[3, "peak_favorable"] == 104.0
    assert m1.loc[3, "exit_efficiency"] == pytest.approx(3.9 / 4.0)
    assert m1.loc[3, "regret_type"] == "optimal"  # >= 0.90 captured
    s = an.batch_analyze_day(trades, BARS).summary
    assert s["trades"] == 4 and s["optimal"] + s["closed_too_early"] + s["closed_too_late"] == 4
    assert s["avg_exit_efficiency"] == pytest.approx(m["exit_efficiency"].mean())


def test_closed_too_late_and_never_favourable() -> None:
    an = BatchRegretAnalyzer(bar_seconds=60, config=RegretConfig(lookahead_bars=1))
    bars = pd.DataFrame(
        {"timestamp": [0, 60, 120], "high": [110.0, 101.0, 100.5], "low": [100.0, 95.0, 99.0]}
    )
    m = an.batch_analyze_day(
        [_t("LONG", 10, 100, 100.0, 96.0), _t("SHORT", 70, 100, 95.0, 99.0)], bars
    ).markers
    assert m.loc[0, "regret_type"] == "closed_too_late"  # peak 110 while open, exited at 96
    assert m.loc[0, "gave_back"] == pytest.approx(28.0)
    assert m.loc[1, "potential_pnl"] == 0.0  # price never went below the short entry of 95
    assert m.loc[1, "exit_efficiency"] == 0.0 and m.loc[1, "regret_type"] == "closed_too_late"
    empty = an.batch_analyze_day([], bars)
    assert empty.markers.empty and empty.summary["trades"] == 0


def test_vectorized_equals_naive_loop() -> None:
    rng = np.random.default_rng(5)
    n_bars = 500
    ts = 60 * np.arange(n_bars)
    mid = 100 + np.cumsum(rng.normal(0, 1, n_bars))
    bars = pd.DataFrame(
        {"timestamp": ts, "high": mid + rng.random(n_bars), "low": mid - rng.random(n_bars)}
    )
    trades = []
    for _ in range(200):
        e = float(rng.integers(0, 28000))
        x = e + float(rng.integers(15, 1800))
        trades.append(
            _t(str(rng.choice(["LONG", "SHORT"])), e, x, 100 + rng.normal(), 100 + rng.normal())
        )
    an = BatchRegretAnalyzer(bar_seconds=60, config=RegretConfig(lookahead_bars=3))
    m = an.batch_analyze_day(trades, bars).markers
    for k, t in enumerate(trades):
        side = 1 if t.direction == "LONG" else -1
        op = bars[(bars.timestamp + 60 > t.entry_time) & (bars.timestamp < t.exit_time)]
        af = bars[(bars.timestamp >= t.exit_time) & (bars.timestamp < t.exit_time + 180)]
        pick = (lambda d: d.high.max()) if side > 0 else (lambda d: d.low.min())
        p_open = pick(op) if len(op) else t.exit_price
        p_after = pick(af) if len(af) else np.nan
        best = p_after if (not np.isnan(p_after) and (p_after - p_open) * side > 0) else p_open
        assert m.loc[k, "peak_favorable"] == pytest.approx(best)
        pot = max((best - t.entry_price) * side, 0) * 2.0
        assert m.loc[k, "potential_pnl"] == pytest.approx(pot)
