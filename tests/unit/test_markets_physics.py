"""QuantumFieldEngine against a plain per-bar reference written from the definitions in its docstring."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from edgefinder.markets.physics import (
    STATE_COLUMNS,
    PhysicsConfig,
    QuantumFieldEngine,
    ThreeBodyQuantumState,
    compute_state_arrays,
)


def _reference(close: np.ndarray, volume: np.ndarray, cfg: PhysicsConfig) -> pd.DataFrame:
    """One bar at a time, np.polyfit on x = 0..rp-1 — deliberately the slow, obvious way."""
    rows = []
    x = np.arange(cfg.rp, dtype=float)
    for i in range(len(close)):
        if i < cfg.rp - 1:
            rows.append(None)
            continue
        y = close[i - cfg.rp + 1 : i + 1]
        # polyfit on y - y[0]: the same fit, without squaring 2e4-sized numbers in lstsq
        slope, intercept = np.polyfit(x, y - y[0], 1)
        fitted = intercept + slope * x + y[0]
        center = fitted[-1]
        rss = float(np.sum((y - fitted) ** 2))
        sigma = max(math.sqrt(rss / (cfg.rp - 2)), cfg.sigma_floor)
        z = (close[i] - center) / sigma
        vel = close[i] - close[i - 1]
        mom = vel * volume[i] / sigma
        rev = -0.5 * z * sigma
        if z >= 0:
            d = abs(close[i] - (center + 2 * sigma)) / sigma
            rep = -min(1.0 / (d**3 + 0.01), 100.0)
        else:
            d = abs(close[i] - (center - 2 * sigma)) / sigma
            rep = min(1.0 / (d**3 + 0.01), 100.0)
        logits = np.array([-z * z / 2, -((z - 2) ** 2) / 2, -((z + 2) ** 2) / 2])
        p = np.exp(logits - logits.max())
        p /= p.sum()
        ent = float(-np.sum(p * np.log(p + 1e-10)))
        coh = ent / math.log(3)
        zone = (
            "L1_STABLE"
            if abs(z) < 1
            else "CHAOS"
            if abs(z) < 2
            else "L2_ROCHE"
            if z >= 2
            else "L3_ROCHE"
        )
        rows.append(
            dict(
                center=center,
                sigma=sigma,
                z_score=z,
                velocity=vel,
                momentum=mom,
                reversion_force=rev,
                band_repulsion=rep,
                f_net=rev + mom + rep,
                P0=p[0],
                P1=p[1],
                P2=p[2],
                entropy=ent,
                coherence=coh,
                lagrange_zone=zone,
                roche_snap=abs(z) > cfg.snap_z and abs(vel) > cfg.snap_velocity,
                structural_drive=abs(mom) > cfg.drive_momentum and coh < cfg.drive_coherence,
                structure_ok=abs(z) >= cfg.snap_z,
            )
        )
    return rows


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    rng = np.random.default_rng(42)
    n = 3000
    # tick-rounded NQ-like closes near 20,000 with volatility bursts and a few big jumps
    scale = np.where((np.arange(n) // 300) % 2 == 0, 0.6, 3.0)
    steps = np.round(rng.standard_t(4, n) * scale * 4) / 4
    close = 20000.0 + np.cumsum(steps)
    volume = rng.integers(1, 400, n).astype(float)
    return pd.DataFrame(
        {
            "timestamp": 1_700_000_000 + 15 * np.arange(n, dtype=np.int64),
            "open": close,
            "high": close + 0.5,
            "low": close - 0.5,
            "close": close,
            "volume": volume,
        }
    )


def test_states_match_per_bar_reference(bars: pd.DataFrame) -> None:
    cfg = PhysicsConfig()
    states = QuantumFieldEngine(cfg).compute_states(bars, "15s")
    assert len(states) == len(bars)
    assert states["valid"].to_numpy().tolist() == [False] * 20 + [True] * (len(bars) - 20)
    ref = _reference(bars["close"].to_numpy(), bars["volume"].to_numpy(), cfg)
    valid = [r for r in ref if r is not None]
    got = states.iloc[20:]
    for col in STATE_COLUMNS:
        exp = np.array([r[col] for r in valid])
        np.testing.assert_allclose(got[col].to_numpy(), exp, rtol=1e-9, atol=1e-9, err_msg=col)
    for col in ("lagrange_zone", "roche_snap", "structural_drive", "structure_ok"):
        assert got[col].tolist() == [r[col] for r in valid], col
    # the series is rich enough that every rule fires somewhere (the comparison is not vacuous)
    assert got["roche_snap"].any() and got["structural_drive"].any()
    assert set(got["lagrange_zone"]) == {"L1_STABLE", "CHAOS", "L2_ROCHE", "L3_ROCHE"}


def test_warmup_bars_have_no_state(bars: pd.DataFrame) -> None:
    states = QuantumFieldEngine().compute_states(bars.iloc[:25], "1m")
    head = states.iloc[:20]
    assert head[STATE_COLUMNS].isna().all().all()
    assert not head[["roche_snap", "structural_drive", "structure_ok", "valid"]].any().any()
    assert states.attrs["timeframe"] == "1m"


def test_states_are_causal(bars: pd.DataFrame) -> None:
    full = compute_state_arrays(bars["close"].to_numpy(), bars["volume"].to_numpy())
    cut = 1700
    part = compute_state_arrays(bars["close"].to_numpy()[:cut], bars["volume"].to_numpy()[:cut])
    for col in STATE_COLUMNS:
        np.testing.assert_allclose(
            part[col], full[col][:cut], rtol=1e-12, atol=1e-12, equal_nan=True
        )


def test_flat_prices_floor_sigma() -> None:
    close = np.full(40, 20000.0)
    arr = compute_state_arrays(close, np.ones(40))
    assert np.all(arr["sigma"][20:] == PhysicsConfig().sigma_floor)
    assert np.all(arr["z_score"][20:] == 0.0)
    assert np.allclose(arr["P0"][20:], 1 / (1 + 2 * math.exp(-2)))


def test_thresholds_come_from_config(bars: pd.DataFrame) -> None:
    loose = PhysicsConfig(snap_z=1.0, snap_velocity=0.0)
    a = compute_state_arrays(bars["close"].to_numpy(), bars["volume"].to_numpy())
    b = compute_state_arrays(bars["close"].to_numpy(), bars["volume"].to_numpy(), loose)
    assert b["roche_snap"].sum() > a["roche_snap"].sum()
    assert b["structure_ok"].sum() > a["structure_ok"].sum()


def test_three_body_state_view(bars: pd.DataFrame) -> None:
    states = QuantumFieldEngine().compute_states(bars, "15s")
    i = int(np.flatnonzero(states["roche_snap"].to_numpy())[0])
    s = ThreeBodyQuantumState.from_states(states, i, "15s")
    assert s.roche_snap and s.valid and s.timeframe == "15s"
    assert s.z_score == states["z_score"].iat[i] and s.timestamp == int(bars["timestamp"].iat[i])
    assert isinstance(s.lagrange_zone, str) and s.lagrange_zone in ("L2_ROCHE", "L3_ROCHE")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.z_score = 0.0  # type: ignore[misc]


def test_multicore_chunks_give_identical_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgefinder.markets import physics

    rng = np.random.default_rng(7)
    n = 300_001
    close = 20000.0 + np.cumsum(np.round(rng.normal(0, 2, n) * 4) / 4)
    volume = rng.integers(1, 50, n).astype(float)
    monkeypatch.setattr(physics, "_workers", lambda: 3)
    many = compute_state_arrays(close, volume)
    monkeypatch.setattr(physics, "_PARALLEL_MIN_BARS", 1 << 62)
    one = compute_state_arrays(close, volume)
    for key in many:
        np.testing.assert_array_equal(many[key], one[key], err_msg=key)
    # spot-check the fit right after a chunk edge against a direct polyfit
    i = 100_000 + 5
    y = close[i - 20 : i + 1]
    slope, icpt = np.polyfit(np.arange(21.0), y - y[0], 1)
    assert one["center"][i] == pytest.approx(y[0] + icpt + 20 * slope, abs=1e-9)
