"""Every compiled (numba) kernel of the replay, in one module: the per-bar exit rule and the fills,
the bar walk of one position, the batch exit simulator, the session loop and the physics states.

``exit_step`` is the one exit rule (Phase 3's simulator, WaveRider and the session loop all call
it); ``walk_position`` walks one position bar by bar over it; ``simulate_kernel`` runs many
(entry, parameter set) pairs (:func:`edgefinder.markets.exits.simulate_exits` wraps it);
``session_kernel`` is one session of the forward pass or the paper trade — Gate 2, Gate 3, entries,
exits and the brain's counts (:func:`edgefinder.markets.wave_rider.ride_session` wraps it);
``state_kernel`` computes the physics state columns of a range of bars
(:func:`edgefinder.markets.physics.compute_state_arrays` wraps it); ``nearest_centroid_kernel`` finds
each pattern's nearest template (:func:`edgefinder.markets.clustering.nearest_template`). The
Python-facing modules (``exits``, ``wave_rider``) validate input and shape results; this one only
computes. Units: prices in points, ticks as given, times in epoch seconds.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

if TYPE_CHECKING:  # pragma: no cover
    from numpy.typing import NDArray

# Exit reason codes (int8 in ExitResults.exit_reason); EXIT_NONE means "still open".
EXIT_NONE = 0
EXIT_STOP = 1
EXIT_TARGET = 2
EXIT_TRAIL = 3
EXIT_TIME = 4
EXIT_END = 5
#: A take-profit this many ticks away is never reached: "no target".
NO_TARGET_TICKS = 1.0e9


@njit(cache=True)
def entry_fill(side: int, close: float, slippage_ticks: float, tick_size: float) -> float:
    """Entry fill (points): the signal bar's close with slippage against the trade."""
    return close + side * slippage_ticks * tick_size


@njit(cache=True)
def close_fill(side: int, price: float, slippage_ticks: float, tick_size: float) -> float:
    """Market exit fill (points) at ``price`` with slippage against the trade."""
    return price - side * slippage_ticks * tick_size


@njit(cache=True)
def initial_levels(
    side: int, entry_price: float, stop_ticks: float, target_ticks: float, tick_size: float
) -> tuple[float, float]:
    """Initial (stop_price, target_price) in points for an entry fill."""
    stop = entry_price - side * stop_ticks * tick_size
    target = entry_price + side * target_ticks * tick_size
    return stop, target


@njit(cache=True)
def exit_step(
    side: int,
    entry_price: float,
    initial_stop: float,
    stop_price: float,
    target_price: float,
    trail_ticks: float,
    best_price: float,
    entry_ts: float,
    max_hold_s: float,
    ts: float,
    high: float,
    low: float,
    close: float,
    tick_size: float,
    slippage_ticks: float,
) -> tuple[int, float, float, float]:
    """Judge one forward bar of an open position; see the module docstring for the rules.

    Args:
        side: +1 long, -1 short.
        entry_price: entry fill (points).
        initial_stop: the stop set at entry (points); tells a trailing exit from a plain stop.
        stop_price: the stop in force before this bar (points).
        target_price: take-profit level (points).
        trail_ticks: trailing distance (ticks); <= 0 disables the trail.
        best_price: best favourable extreme seen before this bar (points; start = entry fill).
        entry_ts: entry time = entry bar's close (epoch seconds).
        max_hold_s: max hold (seconds); <= 0 disables the time exit.
        ts: this bar's close time (epoch seconds) — its open timestamp + bar seconds.
        high, low, close: this bar (points).
        tick_size: points per tick.
        slippage_ticks: ticks lost on a market fill (stop, trail, time).

    Returns:
        (exit_code, exit_price, new_best, new_stop): exit_code is EXIT_NONE while the position
        stays open (exit_price is then NaN); new_best / new_stop are the trail state to pass in
        with the next bar.
    """
    # 1. Stop (initial or trailed) first: pessimistic when stop and target share a bar.
    if side > 0:
        stop_hit = low <= stop_price
    else:
        stop_hit = high >= stop_price
    if stop_hit:
        # A bar that gapped entirely through the stop cannot fill better than its worst extreme.
        level = min(stop_price, high) if side > 0 else max(stop_price, low)
        trailed = (stop_price > initial_stop) if side > 0 else (stop_price < initial_stop)
        code = EXIT_TRAIL if trailed else EXIT_STOP
        return code, close_fill(side, level, slippage_ticks, tick_size), best_price, stop_price
    # 2. Target: resting limit order, filled at its price.
    if side > 0:
        target_hit = high >= target_price
    else:
        target_hit = low <= target_price
    if target_hit:
        return EXIT_TARGET, target_price, best_price, stop_price
    # 3. Time exit at this bar's close.
    if max_hold_s > 0.0 and ts - entry_ts >= max_hold_s:
        return EXIT_TIME, close_fill(side, close, slippage_ticks, tick_size), best_price, stop_price
    # 4. Trail update after the checks: the new stop applies from the next bar on.
    new_best = best_price
    new_stop = stop_price
    if side > 0:
        if high > new_best:
            new_best = high
        if trail_ticks > 0.0:
            cand = new_best - trail_ticks * tick_size
            if cand > new_stop:
                new_stop = cand
    else:
        if low < new_best:
            new_best = low
        if trail_ticks > 0.0:
            cand = new_best + trail_ticks * tick_size
            if cand < new_stop:
                new_stop = cand
    return EXIT_NONE, np.nan, new_best, new_stop


@njit(cache=True)
def trade_pnl(
    side: int,
    entry_price: float,
    exit_price: float,
    tick_size: float,
    tick_value: float,
    commission_per_side: float,
) -> tuple[float, float]:
    """(pnl_ticks, pnl_dollars): ticks between the fills; dollars net of 2 commissions."""
    ticks = side * (exit_price - entry_price) / tick_size
    return ticks, ticks * tick_value - 2.0 * commission_per_side


# --------------------------------------------------------------------------------------------
# Batch kernel
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def walk_position(
    side: int,
    entry_price: float,
    initial_stop: float,
    stop: float,
    target: float,
    trail: float,
    best: float,
    entry_ts: float,
    max_hold: float,
    ts: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    start: int,
    end: int,
    bar_seconds: float,
    tick: float,
    slip: float,
    mfe: float,
    mae: float,
) -> tuple[int, int, float, float, float, float, float]:  # pragma: no cover - numba
    """Walk an open position over bars start..end (inclusive) through :func:`exit_step`, compiled.

    Prices in points, times in seconds (``ts`` = bar opens); ``mfe``/``mae`` carry the excursions so
    far, in points, updated on every bar held (the exit bar included). Returns (bar index, exit code,
    exit price, best price, stop, mfe, mae); code ``EXIT_NONE`` means still open after ``end`` (bar
    index ``end``). The one bar walk shared by the exit simulator and WaveRider's loops."""
    for j in range(start, end + 1):
        h = high[j]
        lo = low[j]
        code, xp, best, stop = exit_step(
            side,
            entry_price,
            initial_stop,
            stop,
            target,
            trail,
            best,
            entry_ts,
            max_hold,
            ts[j] + bar_seconds,
            h,
            lo,
            close[j],
            tick,
            slip,
        )
        fav = (h - entry_price) if side > 0 else (entry_price - lo)
        adv = (entry_price - lo) if side > 0 else (h - entry_price)
        if fav > mfe:
            mfe = fav
        if adv > mae:
            mae = adv
        if code != EXIT_NONE:
            return j, code, xp, best, stop, mfe, mae
    return end, EXIT_NONE, np.nan, best, stop, mfe, mae


@njit(cache=True)
def simulate_kernel(
    timestamps: NDArray[np.float64],
    high: NDArray[np.float64],
    low: NDArray[np.float64],
    close: NDArray[np.float64],
    entry_idx: NDArray[np.int64],
    side: NDArray[np.int64],
    stop_ticks: NDArray[np.float64],
    target_ticks: NDArray[np.float64],
    trail_ticks: NDArray[np.float64],
    max_hold_s: NDArray[np.float64],
    end_idx: NDArray[np.int64],
    bar_seconds: float,
    tick_size: float,
    tick_value: float,
    commission_per_side: float,
    slippage_ticks: float,
    out_exit_idx: NDArray[np.int64],
    out_exit_price: NDArray[np.float64],
    out_reason: NDArray[np.int8],
    out_entry_price: NDArray[np.float64],
    out_pnl_ticks: NDArray[np.float64],
    out_pnl_dollars: NDArray[np.float64],
    out_mfe: NDArray[np.float64],
    out_mae: NDArray[np.float64],
    out_hold: NDArray[np.float64],
) -> None:
    n_pairs = entry_idx.shape[0]
    for p in range(n_pairs):
        e = entry_idx[p]
        s = side[p]
        last = end_idx[p]
        ep = entry_fill(s, close[e], slippage_ticks, tick_size)
        entry_ts = timestamps[e] + bar_seconds
        init_stop, target = initial_levels(s, ep, stop_ticks[p], target_ticks[p], tick_size)
        j, code, xp, best, stop, mfe, mae = walk_position(
            s,
            ep,
            init_stop,
            init_stop,
            target,
            trail_ticks[p],
            ep,
            entry_ts,
            max_hold_s[p],
            timestamps,
            high,
            low,
            close,
            e + 1,
            last,
            bar_seconds,
            tick_size,
            slippage_ticks,
            0.0,
            0.0,
        )
        if code == EXIT_NONE:
            code = EXIT_END
            xp = close_fill(s, close[j], slippage_ticks, tick_size)
        pt, pd_ = trade_pnl(s, ep, xp, tick_size, tick_value, commission_per_side)
        out_exit_idx[p] = j
        out_exit_price[p] = xp
        out_reason[p] = code
        out_entry_price[p] = ep
        out_pnl_ticks[p] = pt
        out_pnl_dollars[p] = pd_
        out_mfe[p] = mfe / tick_size
        out_mae[p] = mae / tick_size
        out_hold[p] = (timestamps[j] + bar_seconds) - entry_ts


@njit(cache=True)
def session_kernel(
    c_rows: np.ndarray,
    c_tidx: np.ndarray,
    c_side: np.ndarray,
    first: int,
    last: int,
    stop_t: np.ndarray,
    target_t: np.ndarray,
    trail_t: np.ndarray,
    hold_s: np.ndarray,
    wins: np.ndarray,
    totals: np.ndarray,
    min_prob: float,
    min_conf: float,
    learn: bool,
    ts: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    bar_seconds: float,
    tick: float,
    tick_value: float,
    commission: float,
    slip: float,
    o_cand: np.ndarray,
    o_exit_row: np.ndarray,
    o_entry: np.ndarray,
    o_exit: np.ndarray,
    o_ticks: np.ndarray,
    o_pnl: np.ndarray,
    o_mfe: np.ndarray,
    o_mae: np.ndarray,
    o_reason: np.ndarray,
    counts: np.ndarray,
) -> int:  # pragma: no cover - numba
    """One session's candidates through Gate 3, Gate 2 and WaveRider, compiled (see :func:`ride_session`).
    Returns the number of trades written; ``counts`` += (gate2_reject, gate3_blocked, no_forward_bar)."""
    n = 0
    next_free = first
    for i in range(c_rows.shape[0]):
        r = c_rows[i]
        if r < next_free:  # Gate 3: the position opened earlier is still open at this bar
            counts[1] += 1
            continue
        if r >= last:  # the session's last bar: no bar left to manage a position on
            counts[2] += 1
            continue
        k = c_tidx[i]
        tot = totals[k]
        prob = (wins[k] + 1.0) / (tot + 11.0)
        conf = min(tot / 100.0, 1.0)
        if not (prob >= min_prob and conf >= min_conf):  # Gate 2 (BayesianBrain.should_fire)
            counts[0] += 1
            continue
        side = c_side[i]
        fill = entry_fill(side, close[r], slip, tick)
        target_ticks = target_t[k] if target_t[k] > 0.0 else NO_TARGET_TICKS
        stop, target = initial_levels(side, fill, stop_t[k], target_ticks, tick)
        initial_stop = stop
        entry_ts = ts[r] + bar_seconds
        j, code, xp, best, stop, mfe, mae = walk_position(
            side,
            fill,
            initial_stop,
            stop,
            target,
            trail_t[k],
            fill,
            entry_ts,
            hold_s[k],
            ts,
            high,
            low,
            close,
            r + 1,
            last,
            bar_seconds,
            tick,
            slip,
            0.0,
            0.0,
        )
        if code == EXIT_NONE:  # still open at the session's last bar: closed at its close
            code = EXIT_TIME
            xp = close_fill(side, close[last], slip, tick)
            j = last
        ticks, dollars = trade_pnl(side, fill, xp, tick, tick_value, commission)
        o_cand[n] = i
        o_exit_row[n] = j
        o_entry[n] = fill
        o_exit[n] = xp
        o_ticks[n] = ticks
        o_pnl[n] = dollars
        o_mfe[n] = mfe / tick
        o_mae[n] = mae / tick
        o_reason[n] = code
        n += 1
        if learn:
            totals[k] += 1
            if dollars > 0:
                wins[k] += 1
        next_free = j  # the exit happened inside bar j: a candidate at its close may enter
    return n


STATE_BLOCK = 64  # bars between exact re-seeds of the rolling window sums (bounds |close - ref|)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract", "reassoc", "nsz", "arcp"})
def state_kernel(
    close: np.ndarray,
    volume: np.ndarray,
    rp: int,
    sigma_floor: float,
    snap_z: float,
    snap_v: float,
    drive_m: float,
    drive_c: float,
    out: np.ndarray,
    zone: np.ndarray,
    flags: np.ndarray,
    lo: int,
    hi: int,
) -> None:  # pragma: no cover - compiled
    """Fill bars lo..hi-1 of out[13, n] float states, zone[n] codes, flags[3, n]."""
    half = 0.5 * (rp - 1)
    sxx = 0.0
    for k in range(rp):
        sxx += (k - half) * (k - half)
    ln3 = math.log(3.0)
    seeded = False
    ref = 0.0
    s1 = 0.0
    s2 = 0.0
    q = 0.0
    for i in range(lo, hi):
        if i < rp - 1:
            for j in range(13):
                out[j, i] = np.nan
            zone[i] = 0
            flags[0, i] = False
            flags[1, i] = False
            flags[2, i] = False
            continue
        if not seeded or i % STATE_BLOCK == 0:
            # seeds sit at absolute multiples of STATE_BLOCK, so any chunking gives identical bits
            seeded = True
            # (Re)seed exact window sums every STATE_BLOCK bars, offset by a nearby close, so rounding
            # cannot accumulate and prices ~2e4 lose no digits (matches per-window lstsq ~1e-12).
            s = i - rp + 1
            ref = close[s]
            s1 = 0.0
            s2 = 0.0
            q = 0.0
            for k in range(rp):
                d = close[s + k] - ref
                s1 += d
                s2 += k * d
                q += d * d
        else:
            # O(1) slide: drop close[i-rp], add close[i]; x positions shift down by one.
            d_out = close[i - rp] - ref
            d_in = close[i] - ref
            s1_old = s1
            s1 = s1_old - d_out + d_in
            s2 = s2 - (s1_old - d_out) + (rp - 1) * d_in
            q = q - d_out * d_out + d_in * d_in
        ybar = s1 / rp
        sxy = s2 - half * s1
        slope = sxy / sxx
        rss = q - s1 * ybar - slope * sxy
        if rss < 0.0:
            rss = 0.0
        center = ref + ybar + slope * half
        sigma = math.sqrt(rss / (rp - 2))
        if sigma < sigma_floor:
            sigma = sigma_floor
        c = close[i]
        z = (c - center) / sigma
        vel = c - close[i - 1]
        mom = vel * volume[i] / sigma
        rev = -0.5 * z * sigma
        if z >= 0.0:
            d = abs(z - 2.0)
            sgn = 1.0
        else:
            d = abs(z + 2.0)
            sgn = -1.0
        rep = 1.0 / (d * d * d + 0.01)
        if rep > 100.0:
            rep = 100.0
        rep = -sgn * rep
        # softmax(-z^2/2, -(z-2)^2/2, -(z+2)^2/2) from one exp: the log-odds between the three
        # terms are +-(2z - 2) and -(2z + 2), so every ratio is a power of r = exp(-2|z| - 2) <= 1.
        az = abs(z)
        r = math.exp(-2.0 * az - 2.0)
        if az < 1.0:  # the center term is largest
            e_mid = 1.0
            e_near = 0.01831563888873418 / r  # exp(-4) / r = exp(2|z| - 2) <= 1
            e_far = r
            l_mid = 0.0  # natural logs of the three terms, known in closed form
            l_near = 2.0 * az - 2.0
            l_far = -2.0 * az - 2.0
        else:  # the band on z's side is largest
            e_near = 1.0
            e_mid = r * 54.598150033144236  # exp(4) r = exp(2 - 2|z|)
            e_far = e_mid * e_mid * 0.01831563888873418  # exp(-4|z|)
            l_near = 0.0
            l_mid = 2.0 - 2.0 * az
            l_far = -4.0 * az
        tot = e_mid + e_near + e_far
        ltot = math.log(tot)
        p0 = e_mid / tot
        if z >= 0.0:
            p1 = e_near / tot
            p2 = e_far / tot
            l1 = l_near
            l2 = l_far
        else:
            p1 = e_far / tot
            p2 = e_near / tot
            l1 = l_far
            l2 = l_near
        # entropy = -sum p ln(p + 1e-10). ln p = l - ln(tot) is exact in closed form, and
        # ln(p + 1e-10) = ln p + log1p(1e-10/p) = ln p + x - x^2/2 + O(x^3) with x = 1e-10/p, which
        # is exact to 1e-13 for p >= 1e-6; smaller p (|z| > ~6) take the plain log. This replaces
        # three logs per bar by one (the logs were over half the kernel time).
        ent = 0.0
        if p0 >= 1e-6:
            x = 1e-10 / p0
            ent -= p0 * (l_mid - ltot + x - 0.5 * x * x)
        else:
            ent -= p0 * math.log(p0 + 1e-10)
        if p1 >= 1e-6:
            x = 1e-10 / p1
            ent -= p1 * (l1 - ltot + x - 0.5 * x * x)
        else:
            ent -= p1 * math.log(p1 + 1e-10)
        if p2 >= 1e-6:
            x = 1e-10 / p2
            ent -= p2 * (l2 - ltot + x - 0.5 * x * x)
        else:
            ent -= p2 * math.log(p2 + 1e-10)
        coh = ent / ln3
        out[0, i] = center
        out[1, i] = sigma
        out[2, i] = z
        out[3, i] = vel
        out[4, i] = mom
        out[5, i] = rev
        out[6, i] = rep
        out[7, i] = rev + mom + rep
        out[8, i] = p0
        out[9, i] = p1
        out[10, i] = p2
        out[11, i] = ent
        out[12, i] = coh
        if az < 1.0:
            zone[i] = 1
        elif az < 2.0:
            zone[i] = 2
        elif z >= 2.0:
            zone[i] = 3
        else:
            zone[i] = 4
        flags[0, i] = az > snap_z and abs(vel) > snap_v
        flags[1, i] = abs(mom) > drive_m and coh < drive_c
        flags[2, i] = az >= snap_z


@njit(cache=True, nogil=True)
def nearest_centroid_kernel(
    x: np.ndarray, centroids_t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(index, Euclidean distance) of the nearest column of ``centroids_t`` (width x T, the
    centroids transposed) for each row of ``x`` (N x width); the first of equal distances wins.

    One thread and the exact sum of squares: scikit-learn's ``pairwise_distances_argmin_min``
    spends twice the CPU here on its thread pool and its chunking for a few hundred centroids,
    and a worker process that shares its cores with another gains nothing from the threads."""
    n, width = x.shape
    m = centroids_t.shape[1]
    idx = np.empty(n, np.int64)
    dist = np.empty(n, np.float64)
    acc = np.empty(m, np.float64)
    for i in range(n):
        acc[:] = 0.0
        for q in range(width):  # centroid-inner: the loop the compiler vectorizes
            xq = x[i, q]
            for j in range(m):
                d = xq - centroids_t[q, j]
                acc[j] += d * d
        best, bj = acc[0], 0
        for j in range(1, m):
            if acc[j] < best:
                best, bj = acc[j], j
        idx[i] = bj
        dist[i] = math.sqrt(best)
    return idx, dist
