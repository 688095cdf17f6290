"""Synthetic NQ-like futures markets, written as an ATLAS (``edgefinder markets synth``).

The series
----------
* Base bars of 15 s (or 5 s / 1 s). One CME session a weekday: 17:00 America/Chicago the day
  before to 16:00 on the session date (23 h, 5,520 bars of 15 s), the 16:00–17:00 daily break and
  the weekend (Fri 16:00 to Sun 17:00) have no bars. No exchange holidays.
* Prices are whole ticks (0.25 points), starting at ``start_price`` points.
* Each base bar's close-to-close move is ``rint(sd_t * eps_t + drift_t)`` ticks with ``eps_t``
  standard normal. ``sd_t`` = ``base_vol_ticks`` x intraday seasonality (Globex open, quiet Asia,
  Europe, the 08:30 CT cash open spike decaying, lunch dip, 15:00 close) x a volatility regime
  (quiet / normal / volatile, Markov switching every few hours) x sqrt(h_t) where h_t is a
  unit-mean GARCH(1,1) variance (volatility clustering). Each session opens with a symmetric gap.
* Volume (contracts) follows the same seasonality and rises with the size of the bar's move.

Edges
-----
``none``: ``drift_t = 0`` always. Because eps is symmetric and ``rint`` is odd, every increment
has conditional mean exactly zero given the whole past: the close series is a martingale and no
strategy has a real edge. The regimes therefore change volatility and volume only — a regime with
a persistent drift would itself be an exploitable edge (trend-following), so "trending" and
"mean-reverting" stretches in ``none`` data are those a random walk produces by chance.

``planted``: the same, plus one documented reversion (see :class:`PlantedEdge`): when a 15 s bar
closes as a ROCHE_SNAP (physics definition on the 21-bar regression of 15 s closes:
|z| > 2 and |velocity| > 0.5 points) while the last *completed* 1 m bar is stretched the same way
(|z_1m| > ``z1m`` on the 21-bar regression of 1 m closes), the next ``horizon_bars`` 15 s bars
carry a drift of ``drift_ticks`` ticks in total against the snap, with their noise scaled by
``drift_vol_scale``; no new trigger fires until ``cooldown_bars`` 15 s bars after the drift ends.
Every trigger is listed in ``ground_truth.json`` beside the data.

The recursion (GARCH, rolling regressions, the planted state machine) depends on the generated
path, so it is one numba loop; all random numbers are drawn beforehand from one seeded NumPy
generator, so the same seed gives identical files.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numba as nb
import numpy as np
import pandas as pd

from edgefinder.errors import EdgefinderError
from edgefinder.markets import atlas
from edgefinder.markets.physics import PhysicsConfig

TICK = 0.25  # points per tick (NQ/MNQ)
#: ``--edge`` modes: a martingale, the rare spike reversion, a mean-reverting price component,
#: and the same component only in the hours after an hourly shock.
EDGES = ("none", "planted", "reverting", "context")
SESSION_SECONDS = 23 * 3600


class SynthError(EdgefinderError):
    """Invalid synthetic-market request."""


@dataclass(frozen=True)
class PlantedEdge:
    """The planted reversion rule (units: z dimensionless, velocity points, drift ticks, bars 15 s).

    A trigger at the close of 15 s bar i needs: |z_15s| > z15 and |velocity_15s| > velocity15
    (exactly the physics ROCHE_SNAP on the 21-bar regression of 15 s closes), a velocity spike
    |velocity_15s| >= spike_velocity, optionally (``z1m`` not None) |z_1m| > z1m with the same
    sign on the last *completed* 1 m bar, and no drift or cooldown in progress. Bars
    i+1..i+horizon_bars then move ``-sign(z_15s) * drift_ticks`` ticks in total.

    Why a velocity spike and not a 1 m condition by default: the pipeline sees a pattern through
    its 11D features (|z|, |velocity|, |momentum|, ancestry), and a rule expressed in those
    features gives the planted family a feature region where it is the majority, so a template
    can isolate it. A 1 m same-sign condition is not a feature (sign agreement is not encoded)
    and would leave the planted snaps a small minority of look-alike snaps.
    """

    z15: float = 2.0
    velocity15: float = 0.5  # points per 15 s bar (ROCHE_SNAP threshold)
    spike_velocity: float = 3.0  # points per 15 s bar (12 ticks): the planted family's spike
    z1m: float | None = None  # optional multi-timeframe condition on the last completed 1 m bar
    drift_ticks: float = 50.0  # total reverting drift, ticks, spread evenly over the horizon
    horizon_bars: int = 20  # 15 s bars (5 minutes)
    drift_vol_scale: float = 0.5  # noise multiplier while the drift runs
    cooldown_bars: int = 0  # 15 s bars after the drift before another trigger may fire


@dataclass(frozen=True)
class RevertingEdge:
    """A plain mean-reverting price component (units: ticks, seconds).

    The traded price is a martingale plus an Ornstein-Uhlenbeck deviation ``m_t`` (an AR(1) in
    base bars): ``m_t = phi * m_{t-1} + innovation_t`` with ``phi = 0.5 ** (bar_seconds /
    half_life_seconds)``. The innovation's standard deviation is ``ou_vol_ticks`` per 15 s bar
    times the bar's intraday seasonality and volatility regime (so the deviation, like everything
    else, is larger when the market is busy), rescaled so the stationary size of ``m`` does not
    depend on the base timeframe. Nothing about it is tied to a physics feature or the clustering:
    a bar that moves sharply is partly a deviation that decays back, so fading sharp moves earns
    on average — as in real markets where short-term overreaction reverts, only stronger here so
    that it survives the instrument's costs. ``ground_truth.json`` states how much a naive fade of
    every 15 s ROCHE_SNAP earns per trade after costs.
    """

    half_life_seconds: float = 60.0
    ou_vol_ticks: float = 8.0  # innovation sd per 15 s bar at seasonality and regime 1, ticks
    naive_hold_bars: int = 16  # 15 s bars the naive fade of ground_truth.json holds (4 minutes)


@dataclass(frozen=True)
class ContextEdge:
    """Overreaction that exists only after an hourly shock (units: ticks, seconds, hours).

    An **hourly shock** is a clock hour whose move (close of its last base bar minus the close of
    the previous hour's last base bar, in ticks, as the 1h bars of the ATLAS show it) exceeds
    ``shock_multiple`` times the sample standard deviation of the ``trailing_hours`` hourly moves
    before it. For ``window_hours`` after the shock hour closes, the traded price carries the
    Ornstein-Uhlenbeck deviation of :class:`RevertingEdge` (half-life ``half_life_seconds``,
    innovation ``ou_vol_ticks`` per 15 s bar times seasonality and regime); outside those windows
    its innovation is zero (what is left of the deviation decays). A later shock inside a window
    restarts it. So a sharp move is partly an overreaction that decays back only in that regime:
    there fading it earns, elsewhere the price is the martingale and the fade loses its costs.

    In this mode the shocks ``eps_t`` are Student-t with ``tail_df`` degrees of freedom scaled to
    unit variance (fat tails; still symmetric, so outside the windows the price stays a martingale).
    """

    shock_multiple: float = 2.0
    trailing_hours: int = 24
    window_hours: float = 2.0
    half_life_seconds: float = 60.0
    ou_vol_ticks: float = 10.0
    tail_df: float = 5.0


@dataclass(frozen=True)
class SynthConfig:
    """Generator settings. Prices in points, volatility in ticks per 15 s bar, volume contracts."""

    sessions: int = 250
    seed: int = 0
    edge: Literal["none", "planted", "reverting", "context"] = "none"
    base: Literal["15s", "5s", "1s"] = "15s"
    start: _dt.date = _dt.date(2024, 1, 1)
    start_price: float = 17000.0  # points
    base_vol_ticks: float = 3.0  # RMS per-15 s-bar standard deviation before GARCH, ticks
    garch_alpha: float = 0.05
    garch_beta: float = 0.93
    gap_vol_ticks: float = 24.0  # sd of the session-open gap, ticks
    base_volume: float = 60.0  # mean contracts per 15 s bar at seasonality 1
    regime_mean_hours: float = 3.0  # mean duration of a volatility regime
    regime_vol: tuple[float, float, float] = (0.7, 1.0, 1.5)  # quiet, normal, volatile
    planted: PlantedEdge = field(default_factory=PlantedEdge)
    reverting: RevertingEdge = field(default_factory=RevertingEdge)
    context: ContextEdge = field(default_factory=ContextEdge)


@dataclass(frozen=True)
class SynthResult:
    """What :func:`generate_atlas` wrote."""

    out: Path
    sessions: int
    bars: dict[str, int]  # timeframe -> bar count
    triggers: int  # planted triggers (0 for edge none)
    seconds: float  # wall time, generation + writing


# --------------------------------------------------------------------------------------------
# calendar and seasonality
# --------------------------------------------------------------------------------------------


def session_dates(start: _dt.date, n: int) -> list[_dt.date]:
    """The first ``n`` weekdays on or after ``start`` (each the end date of one CME session)."""
    out: list[_dt.date] = []
    d = start
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
        d += _dt.timedelta(days=1)
    return out


def _season_profiles(bar_seconds: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-bar volatility and volume multipliers across one 23 h session (RMS vol = 1, mean vol = 1)."""
    h = (np.arange(SESSION_SECONDS // bar_seconds) * bar_seconds + 0.5 * bar_seconds) / 3600.0
    # hours since 17:00 CT: 0 Globex open, 1-9 Asia, 9 (02:00) Europe, 15.5 (08:30) cash open,
    # 18-20 lunch, 22 (15:00) cash close, 22-23 post-close
    vol = 0.45 + 0.25 * np.exp(-h / 0.4)
    vol += 0.25 * ((h >= 9.0) & (h < 15.5))
    vol += 0.2 * np.exp(-np.clip(h - 9.0, 0, None) / 0.5) * (h >= 9.0)
    cash = (h >= 15.5) & (h < 22.0)
    vol += cash * (0.55 + 1.3 * np.exp(-np.clip(h - 15.5, 0, None) / 0.6))
    vol -= 0.2 * ((h >= 18.0) & (h < 20.0))
    vol += 0.35 * np.exp(-np.abs(h - 21.9) / 0.3) * (h < 22.0)
    vol += 0.1 * (h >= 22.0)
    vol /= np.sqrt(np.mean(vol**2))
    volume = vol**1.3
    volume /= volume.mean()
    return vol, volume


# --------------------------------------------------------------------------------------------
# the sequential kernel
# --------------------------------------------------------------------------------------------


@nb.njit(cache=True)
def _window_z(
    buf: np.ndarray, head: int, count: int, rp: int
) -> float:  # pragma: no cover - compiled
    """z of the newest value in ring buffer ``buf`` (size rp) on its rp-point OLS line."""
    if count < rp:
        return np.nan
    half = 0.5 * (rp - 1)
    sxx = 0.0
    for k in range(rp):
        sxx += (k - half) * (k - half)
    ref = buf[head % rp]  # oldest
    s1 = 0.0
    s2 = 0.0
    for k in range(rp):
        d = buf[(head + k) % rp] - ref
        s1 += d
        s2 += (k - half) * d
    ybar = s1 / rp
    slope = s2 / sxx
    rss = 0.0
    for k in range(rp):
        r = buf[(head + k) % rp] - ref - ybar - slope * (k - half)
        rss += r * r
    sigma = math.sqrt(rss / (rp - 2))
    if sigma < 1e-6:
        sigma = 1e-6
    center = ref + ybar + slope * half
    return (buf[(head + rp - 1) % rp] - center) / sigma


@nb.njit(cache=True)
def _generate(
    eps: np.ndarray,
    sd_mult: np.ndarray,
    gap_eps: np.ndarray,
    is_open: np.ndarray,
    sub15: int,
    sub60: int,
    start_ticks: float,
    base_vol: float,
    garch_a: float,
    garch_b: float,
    gap_vol: float,
    planted: bool,
    rp: int,
    z15_thr: float,
    vel15_thr_ticks: float,
    spike_ticks: float,
    z1m_thr: float,
    drift_ticks: float,
    horizon15: int,
    drift_vol_scale: float,
    cooldown15: int,
    ou_phi: float,
    ou_innov: np.ndarray,
    ts: np.ndarray,
    ctx_on: bool,
    hour_bars: int,
    shock_multiple: float,
    trailing_hours: int,
    window_seconds: float,
    shock_idx: np.ndarray,
    open_t: np.ndarray,
    close_t: np.ndarray,
    sd_out: np.ndarray,
    trig_idx: np.ndarray,
    trig_dir: np.ndarray,
    trig_z15: np.ndarray,
    trig_z1m: np.ndarray,
) -> int:  # pragma: no cover
    """Sequential price path in ticks. Returns the number of planted triggers written.

    eps: N(0,1) per base bar; sd_mult: seasonality x regime x sqrt(base/15) per base bar;
    is_open: first base bar of a session (gets a gap); sub15/sub60: base bars per 15 s / 1 m bar.
    ou_phi / ou_innov: the reverting component's AR(1) coefficient per base bar and its innovation
    per base bar in ticks (``ou_phi == 0`` and zeros: no component). The traded price is the
    martingale plus the rounded component, so bars stay whole ticks.
    """
    n = eps.shape[0]
    h = 1.0
    ou = 0.0
    price = start_ticks
    buf15 = np.zeros(rp)
    buf60 = np.zeros(rp)
    n15 = 0
    n60 = 0
    prev15 = 0.0
    z1m = np.nan
    drift_left = 0  # base bars of drift remaining
    drift_step = 0.0  # ticks per base bar
    cool_left = 0  # base bars of cooldown remaining
    ntrig = 0
    pos = 0  # base-bar position inside the session
    hmoves = np.zeros(max(trailing_hours, 1))
    nh = 0
    prev_hour_close = np.nan
    ctx_until = -1.0
    nshock = 0
    for i in range(n):
        if is_open[i]:
            pos = 0
            price += np.rint(gap_vol * gap_eps[i])
        open_t[i] = price + np.rint(ou)
        if not ctx_on or ts[i] < ctx_until:
            ou = ou_phi * ou + ou_innov[i]
        else:
            ou = ou_phi * ou
        sd = base_vol * sd_mult[i] * math.sqrt(h)
        drift = 0.0
        if drift_left > 0:
            drift = drift_step
            sd *= drift_vol_scale
            drift_left -= 1
            if drift_left == 0:
                cool_left = cooldown15 * sub15
        elif cool_left > 0:
            cool_left -= 1
        price += np.rint(sd * eps[i] + drift)
        close_t[i] = price + np.rint(ou)
        sd_out[i] = sd
        # GARCH(1,1) on the standardized shock; unconditional mean of h is 1
        h = (1.0 - garch_a - garch_b) + garch_a * eps[i] * eps[i] * h + garch_b * h
        pos += 1
        if ctx_on and pos % hour_bars == 0:
            move = close_t[i] - prev_hour_close
            if nh >= trailing_hours:
                mean = hmoves.mean()
                spread = math.sqrt(((hmoves - mean) ** 2).sum() / (trailing_hours - 1))
                if abs(move) > shock_multiple * spread:
                    ctx_until = ts[i] + 3600 // hour_bars + window_seconds
                    shock_idx[nshock] = i
                    nshock += 1
            if not np.isnan(move):
                hmoves[nh % trailing_hours] = move
                nh += 1
            prev_hour_close = close_t[i]
        if pos % sub60 == 0:
            buf60[n60 % rp] = price
            n60 += 1
            if n60 >= rp:
                z1m = _window_z(buf60, n60 % rp, rp, rp)
        if pos % sub15 == 0:
            buf15[n15 % rp] = price
            n15 += 1
            vel = price - prev15
            prev15 = price
            if planted and n15 >= rp and drift_left == 0 and cool_left == 0:
                z15 = _window_z(buf15, n15 % rp, rp, rp)
                mtf_ok = z1m_thr < 0.0 or (
                    not np.isnan(z1m) and abs(z1m) > z1m_thr and z1m * z15 > 0.0
                )
                if (
                    abs(z15) > z15_thr
                    and abs(vel) > vel15_thr_ticks
                    and abs(vel) >= spike_ticks
                    and mtf_ok
                ):
                    direction = -1.0 if z15 > 0 else 1.0
                    drift_left = horizon15 * sub15
                    drift_step = direction * drift_ticks / drift_left
                    trig_idx[ntrig] = i
                    trig_dir[ntrig] = direction
                    trig_z15[ntrig] = z15
                    trig_z1m[ntrig] = z1m
                    ntrig += 1
    shock_idx[-1] = nshock
    return ntrig


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def generate_bars(config: SynthConfig) -> tuple[pd.DataFrame, dict]:
    """Generate base-timeframe bars and the ground-truth dict (no files written)."""
    if config.sessions < 1:
        raise SynthError("--sessions must be at least 1")
    if config.edge not in EDGES:
        raise SynthError(f"--edge must be one of {', '.join(EDGES)}, got {config.edge!r}")
    if config.base not in ("15s", "5s", "1s"):
        raise SynthError(f"--base must be 15s, 5s or 1s, got {config.base!r}")
    bsec = atlas.TIMEFRAMES[config.base]
    per_session = SESSION_SECONDS // bsec
    dates = session_dates(config.start, config.sessions)
    starts = np.array([atlas.session_bounds(d)[0] for d in dates], dtype=np.int64)
    n = per_session * len(dates)
    ts = (starts[:, None] + np.arange(per_session, dtype=np.int64)[None, :] * bsec).reshape(-1)

    rng = np.random.default_rng(config.seed)
    if config.edge == "context":
        df = config.context.tail_df
        eps = rng.standard_t(df, n) * math.sqrt((df - 2.0) / df)
    else:
        eps = rng.standard_normal(n)
    gap_eps = rng.standard_normal(n)  # only session-open entries are used; keeps draws aligned
    # volatility regimes: Markov chain on 3 states with exponential durations
    mean_bars = config.regime_mean_hours * 3600 / bsec
    n_seg = int(n / mean_bars * 3) + 10
    durations = np.maximum(1, rng.exponential(mean_bars, n_seg).astype(np.int64))
    while durations.sum() < n:  # pragma: no cover - n_seg has ample margin
        durations = np.r_[durations, durations]
    states = rng.integers(0, 3, n_seg)
    regime = np.repeat(states, durations)[:n]
    vol_season, volume_season = _season_profiles(bsec)
    vol_season = np.tile(vol_season, len(dates))
    volume_season = np.tile(volume_season, len(dates))
    regime_vol = np.asarray(config.regime_vol, dtype=np.float64)[regime]
    sd_mult = vol_season * regime_vol * math.sqrt(bsec / 15.0)
    is_open = np.zeros(n, dtype=np.bool_)
    is_open[::per_session] = True
    is_open[0] = False  # the first bar opens at start_price

    pe = config.planted
    ou_phi, ou_innov = _reverting_component(config, rng, sd_mult, bsec, n)
    open_t = np.empty(n)
    close_t = np.empty(n)
    sd_out = np.empty(n)
    cap = n // 15 + 1
    trig_idx = np.empty(cap, dtype=np.int64)
    trig_dir = np.empty(cap)
    trig_z15 = np.empty(cap)
    trig_z1m = np.empty(cap)
    rp = PhysicsConfig().rp
    ce = config.context
    shock_idx = np.zeros(n // max(1, 3600 // bsec) + 2, dtype=np.int64)
    ntrig = _generate(
        eps,
        sd_mult,
        gap_eps,
        is_open,
        15 // bsec,
        60 // bsec,
        float(round(config.start_price / TICK)),
        config.base_vol_ticks,
        config.garch_alpha,
        config.garch_beta,
        config.gap_vol_ticks,
        config.edge == "planted",
        rp,
        pe.z15,
        pe.velocity15 / TICK,
        pe.spike_velocity / TICK - 1e-9,
        -1.0 if pe.z1m is None else pe.z1m,
        pe.drift_ticks,
        pe.horizon_bars,
        pe.drift_vol_scale,
        pe.cooldown_bars,
        ou_phi,
        ou_innov,
        ts,
        config.edge == "context",
        3600 // bsec,
        ce.shock_multiple,
        ce.trailing_hours,
        ce.window_hours * 3600.0,
        shock_idx,
        open_t,
        close_t,
        sd_out,
        trig_idx,
        trig_dir,
        trig_z15,
        trig_z1m,
    )
    # intrabar extremes and volume depend on the bar only (not on future closes): vectorized
    wick = np.rint(np.abs(rng.standard_normal((2, n))) * 0.6 * sd_out)
    high_t = np.maximum(open_t, close_t) + wick[0]
    low_t = np.minimum(open_t, close_t) - wick[1]
    move = np.abs(close_t - open_t) / np.maximum(sd_out, 1e-9)
    lam = config.base_volume * (bsec / 15.0) * volume_season * regime_vol * (0.6 + 0.4 * move)
    volume = np.maximum(1, rng.poisson(lam)).astype(np.float64)
    bars = pd.DataFrame(
        {
            "timestamp": ts,
            "open": open_t * TICK,
            "high": high_t * TICK,
            "low": low_t * TICK,
            "close": close_t * TICK,
            "volume": volume,
        }
    )
    truth = _ground_truth(
        config, dates, ts, bsec, ntrig, trig_idx, trig_dir, trig_z15, trig_z1m, close_t
    )
    if config.edge == "context":
        shocks = shock_idx[: shock_idx[-1]]
        truth["shocks"] = [
            {
                "hour_close": int(ts[i]) + bsec,
                "move_ticks": float(close_t[i] - close_t[i - 3600 // bsec]),
            }
            for i in shocks.tolist()
        ]
        truth["windows"] = context_windows(ts[shocks] + bsec, ce.window_hours * 3600.0).tolist()
    return bars, truth


def _reverting_component(
    config: SynthConfig, rng: np.random.Generator, sd_mult: np.ndarray, bsec: int, n: int
) -> tuple[float, np.ndarray]:
    """(phi, innovation per base bar in ticks) of the reverting component; (0, zeros) without it.

    The innovations are drawn from the generator only in ``reverting`` mode, so ``none`` and
    ``planted`` data of a given seed stay exactly what they were before the mode existed.
    """
    if config.edge not in ("reverting", "context"):
        return 0.0, np.zeros(n)
    rv = config.reverting if config.edge == "reverting" else config.context
    phi = 0.5 ** (bsec / rv.half_life_seconds)
    phi15 = 0.5 ** (15.0 / rv.half_life_seconds)
    # same stationary variance whatever the base bar: sd_base^2 / (1 - phi^2) = sd_15^2 / (1 - phi15^2)
    scale = rv.ou_vol_ticks * math.sqrt((1.0 - phi * phi) / (1.0 - phi15 * phi15))
    season = sd_mult / math.sqrt(bsec / 15.0)  # seasonality x regime, without the base-bar scaling
    return float(phi), scale * season * rng.standard_normal(n)


def _ground_truth(
    config: SynthConfig,
    dates: list[_dt.date],
    ts: np.ndarray,
    bsec: int,
    ntrig: int,
    trig_idx: np.ndarray,
    trig_dir: np.ndarray,
    trig_z15: np.ndarray,
    trig_z1m: np.ndarray,
    close_t: np.ndarray,
) -> dict[str, Any]:
    cfg = asdict(config)
    cfg["start"] = config.start.isoformat()
    truth: dict = {
        "edge": config.edge,
        "generator": "edgefinder.markets.synth",
        "config": cfg,
        "first_session": dates[0].isoformat(),
        "last_session": dates[-1].isoformat(),
        "sessions": len(dates),
        "tick_size_points": TICK,
        "trigger_count": 0,
        "triggers": [],
    }
    if config.edge == "reverting":
        rv = config.reverting
        truth["rule"] = (
            "reverting: the traded price is a martingale plus an Ornstein-Uhlenbeck deviation m_t "
            f"(AR(1) per base bar, half-life {rv.half_life_seconds:g} s, innovation sd "
            f"{rv.ou_vol_ticks:g} ticks per 15s bar times the intraday seasonality and volatility "
            "regime); a sharp move is partly a deviation that decays back, so fading sharp moves "
            "earns on average. No feature region, timeframe or ancestry is singled out."
        )
        truth["params"] = asdict(rv)
        return truth
    if config.edge == "context":
        ce = config.context
        truth["rule"] = (
            "context: the traded price is a martingale (Student-t shocks, "
            f"{ce.tail_df:g} degrees of freedom, GARCH(1,1) volatility) plus an Ornstein-Uhlenbeck "
            f"deviation (half-life {ce.half_life_seconds:g} s, innovation sd {ce.ou_vol_ticks:g} "
            "ticks per 15s bar times seasonality and regime) whose innovation is on only in the "
            f"{ce.window_hours:g} hours after an hourly shock: a clock hour whose move exceeds "
            f"{ce.shock_multiple:g} times the standard deviation of the {ce.trailing_hours} "
            "hourly moves before it. Fading sharp moves earns inside those windows only."
        )
        truth["params"] = asdict(ce)
        return truth
    if config.edge == "none":
        truth["rule"] = (
            "none: close-to-close increments are rint(sd_t * eps_t) ticks with symmetric "
            "eps_t and sd_t depending on the past only, so the close series is a "
            "martingale; no strategy has a real edge."
        )
        return truth
    pe = config.planted
    mtf = (
        ""
        if pe.z1m is None
        else f" while the last completed 1m bar has |z_1m| > {pe.z1m} with the same sign (21-bar "
        "regression of 1m closes)"
    )
    truth["rule"] = (
        f"planted ROCHE_SNAP reversion: when a 15s bar closes as a ROCHE_SNAP (|z_15s| > {pe.z15} "
        f"and |velocity| > {pe.velocity15} points on the 21-bar regression of 15s closes) with a "
        f"velocity spike |velocity| >= {pe.spike_velocity} points{mtf}, and no drift is running, "
        f"the next {pe.horizon_bars} 15s bars drift {pe.drift_ticks} ticks in total against the "
        f"snap (-sign(z)), their noise scaled by {pe.drift_vol_scale}; cooldown "
        f"{pe.cooldown_bars} 15s bars. Trade: fade the snap at the trigger bar's close."
    )
    truth["params"] = asdict(pe)
    idx = trig_idx[:ntrig]
    # trigger time = open of the 15s bar whose close fired it (its close is timestamp + 15 s)
    bar15 = (ts[idx] // 15) * 15
    truth["trigger_count"] = int(ntrig)
    truth["triggers"] = [
        {
            "timestamp": int(t),
            "bar_close": int(t) + 15,
            "direction": int(d),
            "z_15s": round(float(a), 6),
            "z_1m": round(float(b), 6),
            "price": float(p) * TICK,
        }
        for t, d, a, b, p in zip(
            bar15, trig_dir[:ntrig], trig_z15[:ntrig], trig_z1m[:ntrig], close_t[idx]
        )
    ]
    return truth


def generate_atlas(
    out: str | Path, config: SynthConfig, progress: Callable[[str, int, int], None] | None = None
) -> SynthResult:
    """Generate a synthetic market and write every timeframe (base..1D) plus ground_truth.json.

    ``progress(stage, done, total)`` is called after generation and after each timeframe.
    """
    t0 = time.perf_counter()
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    bars, truth = generate_bars(config)
    tfs = [
        tf
        for tf, s in atlas.TIMEFRAMES.items()
        if s >= atlas.TIMEFRAMES[config.base] and tf != "1W"
    ]
    total = len(tfs) + 1
    if progress is not None:
        progress("generate", 1, total)
    counts: dict[str, int] = {}
    finer = bars
    for k, tf in enumerate(tfs, 2):
        # each timeframe is resampled from the previous one (all are whole multiples of it)
        cur = finer if tf == config.base else atlas.resample(finer, atlas.TIMEFRAMES[tf])
        atlas.write_bars(root, tf, cur)
        counts[tf] = len(cur)
        finer = cur
        if progress is not None:
            progress(tf, k, total)
    truth["bars"] = counts
    if "15s" in counts:
        bars15 = bars if config.base == "15s" else atlas.resample(bars, 15)
        hold = config.reverting.naive_hold_bars
        truth["naive_fade"] = naive_fade(bars15, hold_bars=hold).as_dict()
        if config.edge == "context":
            windows = np.asarray(truth["windows"], dtype=np.int64).reshape(-1, 2)
            ts15 = bars15["timestamp"].to_numpy(np.int64)
            inside = in_windows(ts15, windows)
            truth["context_time_fraction"] = float(inside.mean()) if inside.size else 0.0
            truth["naive_fade_inside"] = naive_fade(bars15, hold, subset=inside).as_dict()
            truth["naive_fade_outside"] = naive_fade(bars15, hold, subset=~inside).as_dict()
    with open(root / "ground_truth.json", "w") as fh:
        json.dump(truth, fh, indent=1)
    return SynthResult(
        out=root,
        sessions=config.sessions,
        bars=counts,
        triggers=int(truth["trigger_count"]),
        seconds=time.perf_counter() - t0,
    )


@dataclass(frozen=True)
class NaiveFade:
    """What fading every 15 s ROCHE_SNAP at its bar's close and holding ``hold_bars`` bars earned.

    Trades may overlap (each snap is its own trade) and never outlive their CME session. PnL is net
    of the instrument's round-trip costs (commission and slippage): ``mean_points`` points and
    ``mean_dollars`` dollars per trade; ``t`` is the one-sample t statistic of the dollar PnL
    (``n`` trades); ``cost_points`` is the round-trip cost in points.
    """

    n: int
    hold_bars: int
    instrument: str
    mean_points: float
    mean_dollars: float
    sd_dollars: float
    t: float
    cost_points: float

    def as_dict(self) -> dict:
        return asdict(self)


def context_windows(shock_close: np.ndarray, window_seconds: float) -> np.ndarray:
    """``[start, end)`` epoch-second windows, one per run of overlapping shock windows.

    ``shock_close``: sorted close times of the shock hours; each opens ``window_seconds`` of
    context, and a shock inside a running window extends it (as the generator does).
    """
    s = np.asarray(shock_close, dtype=np.int64)
    if s.size == 0:
        return np.zeros((0, 2), np.int64)
    e = s + int(window_seconds)
    new = np.r_[True, s[1:] >= e[:-1]]
    starts = s[new]
    ends = np.maximum.reduceat(e, np.flatnonzero(new))
    return np.column_stack([starts, ends])


def in_windows(ts: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Whether each bar open ``ts`` (epoch s) lies in one of the sorted ``[start, end)`` windows."""
    w = np.asarray(windows, dtype=np.int64).reshape(-1, 2)
    k = np.searchsorted(w[:, 0], ts, side="right") - 1
    ok = k >= 0
    out = np.zeros(ts.size, bool)
    out[ok] = ts[ok] < w[k[ok], 1]
    return out


def naive_fade(
    bars15: pd.DataFrame,
    hold_bars: int = 16,
    instrument: str = "MNQ",
    physics: PhysicsConfig | None = None,
    subset: np.ndarray | None = None,
) -> NaiveFade:
    """Net PnL of the naive fade of every 15 s ROCHE_SNAP in ``bars15`` (see :class:`NaiveFade`).

    ``subset``: a boolean per 15 s bar; only snaps on bars where it is True are traded (e.g. the
    bars whose open lies in a context window).
    """
    from edgefinder.markets.exits import simulate_exits
    from edgefinder.markets.instruments import get_instrument
    from edgefinder.markets.physics import compute_state_arrays

    inst = get_instrument(instrument)
    ts = bars15["timestamp"].to_numpy(np.int64)
    close = bars15["close"].to_numpy(np.float64)
    st = compute_state_arrays(
        close, bars15["volume"].to_numpy(np.float64), physics or PhysicsConfig()
    )
    snap = np.asarray(st["roche_snap"], bool) & np.asarray(st["valid"], bool)
    if subset is not None:
        snap &= np.asarray(subset, bool)
    rows = np.flatnonzero(snap)
    sid = atlas.session_ids(ts).astype(np.int64)
    last = np.append(np.flatnonzero(np.diff(sid) != 0), ts.size - 1)
    end = last[np.searchsorted(last, np.arange(ts.size))]
    rows = rows[rows < end[rows]]  # a snap on a session's last bar cannot be traded
    side = np.where(np.asarray(st["z_score"])[rows] > 0, -1, 1)
    res = simulate_exits(
        ts,
        bars15["high"].to_numpy(np.float64),
        bars15["low"].to_numpy(np.float64),
        close,
        rows,
        side,
        1e9,
        1e9,
        0.0,
        hold_bars * 15.0,
        inst,
        end_idx=end[rows],
        bar_seconds=15.0,
    )
    pnl = res.pnl_dollars
    n = int(pnl.size)
    sd = float(pnl.std(ddof=1)) if n > 1 else 0.0
    cost = 2.0 * (
        inst.slippage_ticks * inst.tick_size + inst.commission_per_side / inst.point_value
    )
    return NaiveFade(
        n=n,
        hold_bars=int(hold_bars),
        instrument=inst.symbol,
        mean_points=float(pnl.mean() / inst.point_value) if n else 0.0,
        mean_dollars=float(pnl.mean()) if n else 0.0,
        sd_dollars=sd,
        t=float(pnl.mean() / (sd / math.sqrt(n))) if n > 1 and sd > 0 else 0.0,
        cost_points=float(cost),
    )


def load_ground_truth(root: str | Path) -> dict:
    """Read ``ground_truth.json`` written by :func:`generate_atlas`."""
    path = Path(root) / "ground_truth.json"
    if not path.is_file():
        raise SynthError(f"{path}: no ground truth (not a synthetic ATLAS?)")
    with open(path) as fh:
        return json.load(fh)
