"""Phase 3: per-template exit-parameter search (the playbook), with fission.

For every template (cluster of patterns) this module finds the exit parameters that would have
traded its members best, using the one exit simulator (:mod:`edgefinder.markets.exits`):

* **Trades.** Each member is one trade on its **own timeframe's** bars: entry at the close of
  the pattern's bar (the pattern is known only then) with slippage, exits judged from the next
  bar on. Direction: ROCHE_SNAP fades z (z > 0 → short, z < 0 → long); STRUCTURAL_DRIVE follows
  the momentum's sign. A trade never outlives its CME session (it is closed at the session's
  last bar, reason END), as the forward pass force-closes at the session end; nor does it read
  bars at or after ``end`` (``--train-until``).
* **Search.** ``iterations`` trials per template — by default a seeded scrambled Sobol design
  (scipy), all scored in one vectorized simulator call; ``sampler="tpe"`` runs Optuna's sequential
  multivariate TPE instead (see :func:`_search` for why the design is the default) —
  over ``stop_loss_ticks`` 10–25, ``take_profit_ticks`` 30–60, ``trailing_stop_ticks`` 0–30 in
  steps of 5 (0 = no trail: a trail cuts a reversion that needs a few minutes to play out, so not
  trailing must be a choice; 5 ticks = 1.25 points, about one 15s bar's range, is the tightest
  trail that is not pure noise, and 30 ticks the widest stop, so a trail can only tighten it), and
  ``max_hold_seconds`` 300–1800 in steps of 30 s. Objective (``train_score``): mean / std of the
  member PnL in dollars after costs, over the **first 50 members in time order** (population
  std, floored at $0.01 so that identical outcomes — e.g. trades all closed at once by their
  session end — give a finite score: a sure loss scores very low, a sure gain very high).
  Each score comes from :func:`~edgefinder.markets.exits.simulate_exits` over all training
  members. The remaining members give the validation PnL (dollars, summed) with the
  chosen parameters — they never influence the search.
* **Fission.** Each training member's individually best parameters are found on a 3×3×3×3 grid
  (one simulator call for members × 81 sets; tied grid points are averaged, and members whose
  PnL does not depend on the parameters at all are left out). The best-parameter vectors,
  scaled to [0, 1] per axis, are clustered with KMeans(k=2, seeded); when the silhouette
  is ≥ 0.45 and both groups have at least ``min_child_members`` (10) training members — a
  smaller child would be fitted on a handful of trades — the template is split with the
  clustering engine's ``refine_clusters`` on the same 11D vectors: training members go where
  their parameter group says, later members to the child whose mean standardized 11D training
  vector is nearest (features only — outcomes after the 50th member are never used). Children
  are searched again and may split again up to ``max_fission_depth``; the split parent leaves
  the library and each child records ``parent_template``.

Output: ``{template_id: entry}``; see :func:`library_entry_keys` for the fields.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from edgefinder.jsonsafe import jsonable
from edgefinder.markets import atlas
from edgefinder.markets._io import atomic_pickle, atomic_write_text
from edgefinder.markets.exits import ExitParams, simulate_exits
from edgefinder.markets.instruments import Instrument, get_instrument
from edgefinder.settings import setting_default

__all__ = [
    "SEARCH_SPACE",
    "FISSION_GRID",
    "InlinePool",
    "PlaybookResult",
    "TimeframeBars",
    "build_playbook",
    "fission_labels",
    "library_entry_keys",
    "load_library",
    "load_timeframe_bars",
    "member_sides",
    "optimize_templates",
    "save_library",
    "template_step",
]

#: (low, high, step) per parameter; ticks except max_hold_seconds (seconds).
SEARCH_SPACE: dict[str, tuple[int, int, int]] = {
    "stop_loss_ticks": (10, 25, 1),
    "take_profit_ticks": (30, 60, 1),
    "trailing_stop_ticks": (0, 30, 5),
    "max_hold_seconds": (300, 1800, 30),
}
PARAM_NAMES = tuple(SEARCH_SPACE)
#: The fission grid: three values per axis (the range's ends and middle).
FISSION_GRID: dict[str, tuple[float, ...]] = {
    "stop_loss_ticks": (10.0, 17.0, 25.0),
    "take_profit_ticks": (30.0, 45.0, 60.0),
    "trailing_stop_ticks": (0.0, 15.0, 30.0),
    "max_hold_seconds": (300.0, 900.0, 1800.0),
}
TRAIN_MEMBERS = 50
SILHOUETTE_MIN = 0.45
_STD_FLOOR = 0.01  # dollars: one cent, the PnL resolution is half a cent

ProgressFn = Callable[[str, dict], None]


def library_entry_keys() -> tuple[str, ...]:
    """Fields of one library entry (units: dollars for PnL, ticks/seconds for params)."""
    return (
        "template_id",
        "centroid",
        "params",
        "member_count",
        "train_count",
        "train_score",
        "train_pnl",
        "train_mean_pnl",
        "train_win_rate",
        "val_pnl",
        "val_trades",
        "val_mean_pnl",
        "val_win_rate",
        "pattern_type",
        "timeframe",
        "direction_rule",
        "parent_template",
        "fission_depth",
    )


# --------------------------------------------------------------------------------------------
# bars
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeframeBars:
    """All timeframes' bars concatenated into one series for the simulator.

    ``close_ts`` is each bar's **close** time (open + timeframe seconds), so the simulator runs
    with ``bar_seconds=0``; ``session_end`` is, per bar, the index of the last bar of its CME
    session within its timeframe block; ``offsets[tf]`` / ``open_ts[tf]`` map a timeframe's
    own bar index to the concatenated one.
    """

    close_ts: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    session_end: np.ndarray
    offsets: dict[str, int]
    open_ts: dict[str, np.ndarray] = field(repr=False)

    def entry_index(self, tf: str, bar_open_ts: np.ndarray) -> np.ndarray:
        """Concatenated index of each bar open time of ``tf`` (-1 where the bar is absent)."""
        ts = self.open_ts.get(tf)
        q = np.asarray(bar_open_ts, dtype=np.int64)
        if ts is None or ts.size == 0:
            return np.full(q.shape, -1, dtype=np.int64)
        pos = np.searchsorted(ts, q)
        pos_c = np.minimum(pos, ts.size - 1)
        ok = ts[pos_c] == q
        return np.where(ok, pos_c + self.offsets[tf], -1).astype(np.int64)


def _session_last_index(open_ts: np.ndarray) -> np.ndarray:
    if open_ts.size == 0:
        return np.zeros(0, dtype=np.int64)
    sid = atlas.session_ids(open_ts).astype("int64")
    change = np.flatnonzero(np.diff(sid) != 0)  # last index of every session but the final one
    ends = np.append(change, open_ts.size - 1)
    block = np.searchsorted(ends, np.arange(open_ts.size))
    return ends[block].astype(np.int64)


def load_timeframe_bars(
    atlas_root: str | Path, timeframes: Sequence[str], end: Any = None
) -> TimeframeBars:
    """Read each timeframe once (bars opening before ``end``) into one :class:`TimeframeBars`."""
    parts_ts, parts_h, parts_l, parts_c, parts_end = [], [], [], [], []
    offsets: dict[str, int] = {}
    opens: dict[str, np.ndarray] = {}
    off = 0
    for tf in dict.fromkeys(timeframes):
        bars = atlas.read_bars(atlas_root, tf, None, end)
        ots = bars["timestamp"].to_numpy(dtype=np.int64)
        offsets[tf] = off
        opens[tf] = ots
        parts_ts.append(ots.astype(np.float64) + atlas.tf_seconds(tf))
        parts_h.append(bars["high"].to_numpy(dtype=np.float64))
        parts_l.append(bars["low"].to_numpy(dtype=np.float64))
        parts_c.append(bars["close"].to_numpy(dtype=np.float64))
        parts_end.append(_session_last_index(ots) + off)
        off += ots.size

    def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.ascontiguousarray(np.concatenate(parts) if parts else np.zeros(0), dtype=dtype)

    return TimeframeBars(
        close_ts=cat(parts_ts, np.float64),
        high=cat(parts_h, np.float64),
        low=cat(parts_l, np.float64),
        close=cat(parts_c, np.float64),
        session_end=cat(parts_end, np.int64),
        offsets=offsets,
        open_ts=opens,
    )


def member_sides(members: Sequence[Any]) -> np.ndarray:
    """+1 long / -1 short per member: ROCHE_SNAP fades z, STRUCTURAL_DRIVE follows momentum."""
    out = np.empty(len(members), dtype=np.int64)
    for i, p in enumerate(members):
        x = -p.z_score if p.pattern_type == "ROCHE_SNAP" else p.momentum
        out[i] = 1 if x > 0 else -1  # x == 0 cannot trigger either rule; default long
    return out


# --------------------------------------------------------------------------------------------
# search and fission
# --------------------------------------------------------------------------------------------


@dataclass
class _Trades:
    """A template's tradable members in time order (arrays) plus their member positions."""

    positions: np.ndarray  # positions within template.members
    entry: np.ndarray
    side: np.ndarray
    end: np.ndarray


def _template_trades(template: Any, bars: TimeframeBars) -> _Trades:
    members = template.members
    n = len(members)
    tfs = np.array([p.timeframe for p in members], dtype=object)
    opens = np.array([int(p.timestamp) for p in members], dtype=np.int64)
    entry = np.full(n, -1, dtype=np.int64)
    for tf in dict.fromkeys(tfs.tolist()):
        sel = np.flatnonzero(tfs == tf)
        entry[sel] = bars.entry_index(tf, opens[sel])
    close_t = np.where(entry >= 0, bars.close_ts[np.maximum(entry, 0)], np.inf)
    order = np.lexsort((np.arange(n), close_t))  # time order of the entries (bar closes)
    order = order[entry[order] >= 0]
    sides = member_sides([members[i] for i in order])
    return _Trades(
        positions=order, entry=entry[order], side=sides, end=bars.session_end[entry[order]]
    )


def _score(pnl: np.ndarray) -> float:
    if pnl.size == 0:
        return 0.0
    return float(pnl.mean() / max(float(pnl.std()), _STD_FLOOR))


def _pnl(
    bars: TimeframeBars,
    entry: np.ndarray,
    side: np.ndarray,
    end: np.ndarray,
    instrument: Instrument,
    stop: ArrayLike,
    target: ArrayLike,
    trail: ArrayLike,
    hold: ArrayLike,
) -> np.ndarray:
    res = simulate_exits(
        bars.close_ts,
        bars.high,
        bars.low,
        bars.close,
        entry,
        side,
        stop,
        target,
        trail,
        hold,
        instrument,
        end_idx=end,
        bar_seconds=0.0,
    )
    return res.pnl_dollars


def _grid() -> np.ndarray:
    axes = [np.asarray(FISSION_GRID[k]) for k in PARAM_NAMES]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)  # (81, 4)


def best_params_per_member(
    bars: TimeframeBars, tr: _Trades, instrument: Instrument
) -> tuple[np.ndarray, np.ndarray]:
    """Each trade's individually best grid parameters: ``(vectors (n, 4), informative (n,))``.

    One simulator call evaluates n × 81 pairs. When several grid points tie for the best PnL
    the vector is their mean (a trade indifferent to the stop gets the middle stop, not the
    first one, which would fake a parameter group at a grid corner). A trade whose PnL is the
    same for every grid point (e.g. closed at once by its session end) carries no parameter
    preference: ``informative`` is False and fission ignores it.
    """
    g = _grid()
    n, k = tr.entry.size, g.shape[0]
    if n == 0:
        return np.zeros((0, 4)), np.zeros(0, dtype=bool)
    pnl = _pnl(
        bars,
        np.repeat(tr.entry, k),
        np.repeat(tr.side, k),
        np.repeat(tr.end, k),
        instrument,
        np.tile(g[:, 0], n),
        np.tile(g[:, 1], n),
        np.tile(g[:, 2], n),
        np.tile(g[:, 3], n),
    )
    pnl = pnl.reshape(n, k)
    top = pnl.max(axis=1, keepdims=True)
    ties = pnl >= top - 1e-9  # dollars; PnL values are multiples of half a cent
    vec = (ties.astype(np.float64) @ g) / ties.sum(axis=1, keepdims=True)
    informative = (top[:, 0] - pnl.min(axis=1)) > 1e-9
    return vec, informative


def fission_labels(
    best_params: np.ndarray,
    seed: int,
    threshold: float = SILHOUETTE_MIN,
    min_child_members: int = 10,
) -> tuple[np.ndarray | None, float]:
    """KMeans(k=2) of best-parameter vectors scaled to [0, 1]; labels if silhouette ≥ threshold.

    Returns (labels or None, silhouette); silhouette is NaN when it is undefined (fewer than two
    distinct vectors or too few members).
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    x = np.asarray(best_params, dtype=np.float64)
    if x.shape[0] < 2 * min_child_members or np.unique(x, axis=0).shape[0] < 2:
        return None, float("nan")
    lo = np.array([SEARCH_SPACE[k][0] for k in PARAM_NAMES], dtype=float)
    hi = np.array([SEARCH_SPACE[k][1] for k in PARAM_NAMES], dtype=float)
    xs = (x - lo) / (hi - lo)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # ≤ 50 points: threads only add start-up cost
        labels = KMeans(n_clusters=2, n_init=10, random_state=seed).fit_predict(xs)
    if np.unique(labels).size < 2:
        return None, float("nan")
    sil = float(silhouette_score(xs, labels))
    counts = np.bincount(labels, minlength=2)
    if sil >= threshold and counts.min() >= min_child_members:
        return labels.astype(np.int64), sil
    return None, sil


def _suggest(trial: Any) -> dict[str, int]:
    return {k: trial.suggest_int(k, lo, hi, step=st) for k, (lo, hi, st) in SEARCH_SPACE.items()}


def _study_seed(seed: int, template_id: int) -> int:
    # A distinct, reproducible stream per template (independent of processing order).
    return int((int(seed) * 1_000_003 + int(template_id) * 7_919 + 17) % (2**31 - 1))


#: Phase 3 samplers (``--sampler``): ``qmc`` scores every trial of a template in one simulator call;
#: ``tpe`` is Optuna's sequential multivariate TPE.
SAMPLERS = ("qmc", "tpe")


def qmc_design(iterations: int, seed: int) -> np.ndarray:
    """``iterations`` parameter sets (rows: stop, target, trail ticks, hold seconds) from a scrambled
    Sobol sequence (:class:`scipy.stats.qmc.Sobol`, seeded), mapped onto :data:`SEARCH_SPACE`'s grids."""
    from scipy.stats import qmc

    n = max(1, int(iterations))
    u = qmc.Sobol(d=len(PARAM_NAMES), scramble=True, seed=seed).random_base2(
        int(np.ceil(np.log2(n)))
    )[:n]
    cols = []
    for j, name in enumerate(PARAM_NAMES):
        lo, hi, step = SEARCH_SPACE[name]
        levels = (hi - lo) // step + 1
        cols.append(lo + np.minimum(np.floor(u[:, j] * levels), levels - 1) * step)
    return np.column_stack(cols)


def _search(
    bars: TimeframeBars,
    tr_entry: np.ndarray,
    tr_side: np.ndarray,
    tr_end: np.ndarray,
    instrument: Instrument,
    iterations: int,
    seed: int,
    sampler: str = setting_default("sampler"),
) -> tuple[dict, float, list[tuple[dict, float]]]:
    """Best exit parameters of one template's training trades: ``(params, best score, trials)``,
    ``trials`` every parameter set scored with its score, in the order they were tried.

    ``qmc``: ``iterations`` points of a seeded scrambled Sobol design over the search space
    (:func:`qmc_design`), scored in **one** vectorized simulator call (trades × parameter sets).
    Sequential samplers cost far more than the simulator here — Optuna's TPE 5–10 ms a trial, its
    QMCSampler (which rebuilds a scrambled Sobol engine for every trial) about as much — minutes once
    every timeframe is scanned; on a 4-D space with a few dozen trials a low-discrepancy design covers
    it as well. Ties keep the earliest design point.
    ``tpe``: Optuna's ``TPESampler(seed, multivariate=True)``, one trial at a time.
    """
    n_trials = max(1, int(iterations))
    if sampler == "qmc":
        grid = qmc_design(n_trials, seed)
        scores = _batch_scores(bars, tr_entry, tr_side, tr_end, instrument, grid)
        best = int(np.argmax(scores))
        tried = [
            ({k: int(v) for k, v in zip(PARAM_NAMES, row)}, float(sc))
            for row, sc in zip(grid, scores)
        ]
        return tried[best][0], float(scores[best]), tried
    if sampler != "tpe":
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def score(p: dict[str, int]) -> float:
        return _score(
            _pnl(
                bars,
                tr_entry,
                tr_side,
                tr_end,
                instrument,
                p["stop_loss_ticks"],
                p["take_profit_ticks"],
                p["trailing_stop_ticks"],
                p["max_hold_seconds"],
            )
        )

    with warnings.catch_warnings():  # multivariate TPE is flagged experimental; it is stable here
        warnings.simplefilter("ignore")
        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed, multivariate=True)
        )
        study.optimize(lambda trial: score(_suggest(trial)), n_trials=n_trials)
    tried = [
        ({k: int(v) for k, v in t.params.items()}, float(t.value))
        for t in study.trials
        if t.value is not None
    ]
    return {k: int(v) for k, v in study.best_params.items()}, float(study.best_value), tried


def _batch_scores(
    bars: TimeframeBars,
    entry: np.ndarray,
    side: np.ndarray,
    end: np.ndarray,
    instrument: Instrument,
    grid: np.ndarray,
) -> np.ndarray:
    """:func:`_score` of each parameter row of ``grid`` (stop, target, trail, hold) on the same trades."""
    n, k = entry.size, grid.shape[0]
    if n == 0:
        return np.zeros(k)
    pnl = _pnl(
        bars,
        np.tile(entry, k),
        np.tile(side, k),
        np.tile(end, k),
        instrument,
        np.repeat(grid[:, 0], n),
        np.repeat(grid[:, 1], n),
        np.repeat(grid[:, 2], n),
        np.repeat(grid[:, 3], n),
    ).reshape(k, n)
    return pnl.mean(axis=1) / np.maximum(pnl.std(axis=1), _STD_FLOOR)


@dataclass
class PlaybookResult:
    """The library plus the fission record (parent id, child ids, silhouette, depth)."""

    library: dict[int, dict]
    fissions: list[dict]
    skipped_members: int = 0


def _stats(pnl: np.ndarray) -> tuple[float, float, float]:
    if pnl.size == 0:
        return 0.0, 0.0, 0.0
    return float(pnl.sum()), float(pnl.mean()), float((pnl > 0).mean())


@dataclass(frozen=True)
class _StepConfig:
    """What every template's step shares besides the template and the bars."""

    instrument: Instrument
    iterations: int
    seed: int
    sampler: str
    train_members: int
    max_fission_depth: int
    silhouette_min: float
    min_child_members: int


@dataclass(frozen=True)
class _Step:
    """One template's Phase 3 work: member ``groups`` (and ``silhouette``) when it splits, else
    its library ``entry`` and the scored ``trials`` (None when it had no training trade)."""

    skipped: int
    groups: list[np.ndarray] | None = None
    silhouette: float = float("nan")
    entry: dict = field(default_factory=dict)
    trials: list[tuple[dict, float]] | None = None
    n_train: int = 0


def template_step(
    tpl: Any, depth: int, bars: TimeframeBars, cfg: _StepConfig, may_split: bool = True
) -> _Step:
    """Phase 3 for one template (a pure function of its arguments: the unit a study runs as a Dask
    task): the fission test when ``may_split`` and the depth allows it, and, when the template does
    not split, the parameter search and its library entry."""
    from edgefinder.markets.clustering import pattern_features

    tid = int(tpl.template_id)
    tr = _template_trades(tpl, bars)
    skipped = len(tpl.members) - tr.positions.size
    ntr = min(cfg.train_members, tr.positions.size)
    tr_sl, va_sl = slice(0, ntr), slice(ntr, None)
    if may_split and depth < cfg.max_fission_depth and ntr >= 2 * cfg.min_child_members:
        sub = _Trades(tr.positions[tr_sl], tr.entry[tr_sl], tr.side[tr_sl], tr.end[tr_sl])
        vec, informative = best_params_per_member(bars, sub, cfg.instrument)
        labels, sil = fission_labels(
            vec[informative],
            seed=_study_seed(cfg.seed, tid),
            threshold=cfg.silhouette_min,
            min_child_members=cfg.min_child_members,
        )
        if labels is not None:
            groups = _assign_groups(tpl, tr.positions[:ntr][informative], labels, pattern_features)
            return _Step(skipped, groups=groups, silhouette=sil)
    trials = None
    if ntr == 0:
        params = {k: int(SEARCH_SPACE[k][0]) for k in PARAM_NAMES}
        score = 0.0
    else:
        params, score, trials = _search(
            bars,
            tr.entry[tr_sl],
            tr.side[tr_sl],
            tr.end[tr_sl],
            cfg.instrument,
            cfg.iterations,
            _study_seed(cfg.seed, tid),
            cfg.sampler,
        )
    prm = ExitParams(**{k: float(v) for k, v in params.items()})
    all_pnl = _pnl(
        bars,
        tr.entry,
        tr.side,
        tr.end,
        cfg.instrument,
        prm.stop_loss_ticks,
        prm.take_profit_ticks,
        prm.trailing_stop_ticks,
        prm.max_hold_seconds,
    )
    t_sum, t_mean, t_win = _stats(all_pnl[tr_sl])
    v_sum, v_mean, v_win = _stats(all_pnl[va_sl])
    types = [p.pattern_type for p in tpl.members]
    entry = {
        "template_id": tid,
        "centroid": [float(x) for x in np.asarray(tpl.centroid, dtype=float)],
        "params": params,
        "member_count": int(len(tpl.members)),
        "train_count": int(ntr),
        "train_score": float(score),
        "train_pnl": t_sum,
        "train_mean_pnl": t_mean,
        "train_win_rate": t_win,
        "val_pnl": v_sum,
        "val_trades": int(tr.positions.size - ntr),
        "val_mean_pnl": v_mean,
        "val_win_rate": v_win,
        "pattern_type": _majority(types),
        "timeframe": _majority([p.timeframe for p in tpl.members]),
        "direction_rule": "fade_z" if _majority(types) == "ROCHE_SNAP" else "follow_momentum",
        "parent_template": None if tpl.parent_template_id is None else int(tpl.parent_template_id),
        "fission_depth": int(depth),
    }
    return _Step(skipped, entry=entry, trials=trials, n_train=int(ntr))


class InlinePool:
    """:func:`optimize_templates`'s pool in this process: each step runs when its result is taken
    (the serial order, so a progress display advances template by template)."""

    def share(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, passed to the steps in place of the value (here: the value itself)."""
        return fn(*args)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` as an object whose ``result()`` computes it."""
        return _Later(fn, args)


@dataclass(frozen=True)
class _Later:
    fn: Callable[..., Any]
    args: tuple[Any, ...]

    def result(self) -> Any:
        return self.fn(*self.args)


def _value(x: Any) -> Any:
    return x


def optimize_templates(
    templates: Sequence[Any],
    atlas_root: str | Path,
    iterations: int = 50,
    seed: int = 0,
    instrument: Instrument | None = None,
    *,
    engine: Any = None,
    end: Any = None,
    bars: TimeframeBars | None = None,
    train_members: int = TRAIN_MEMBERS,
    max_fission_depth: int = 2,
    silhouette_min: float = SILHOUETTE_MIN,
    min_child_members: int = 10,
    progress: ProgressFn | None = None,
    sampler: str = setting_default("sampler"),
    pool: Any = None,
) -> PlaybookResult:
    """Run Phase 3 over ``templates``; see the module docstring.

    ``engine`` is the :class:`~edgefinder.markets.clustering.FractalClusteringEngine` whose
    ``refine_clusters`` performs fission (a fresh one knowing ``templates`` is made if None, so
    child ids continue after the largest template id). ``end`` excludes bars opening at or after
    it (``--train-until``). ``progress(event, info)`` receives ``"trial"``, ``"template"``,
    ``"fission"`` and ``"trials"`` events (the last: a template's scored parameter sets,
    ``{"template_id", "n" training trades, "trials": [(params, per-trade Sharpe), ...]}``).

    ``pool`` runs each template's :func:`template_step`: ``submit(fn, *args)`` returns an object
    whose ``result()`` is ``fn(*args)``, ``share(fn, *args)`` a value every step receives (the
    bars); :class:`InlinePool` by default, a study's tasks on its Dask cluster
    (:class:`~edgefinder.markets.cluster.WorkerPool`). A template's step is submitted as soon as
    its id is known (every template at once, children when their parent splits) and its result
    is taken in the serial order (depth first, ids in order), which alone hands out the
    children's ids: any pool gives the same library, event for event.
    """
    instrument = instrument or get_instrument()
    templates = list(templates)
    if engine is None:
        from edgefinder.markets.clustering import FractalClusteringEngine

        engine = FractalClusteringEngine(seed=seed)
    if not engine.templates:
        engine.templates = list(templates)  # so fission ids continue after the existing ones
    emit = progress or (lambda _e, _i: None)
    pool = pool or InlinePool()
    if bars is None:
        tfs = sorted({p.timeframe for t in templates for p in t.members}, key=atlas.tf_seconds)
        shared = pool.share(load_timeframe_bars, atlas_root, tfs, end)
    else:
        shared = pool.share(_value, bars)
    cfg = _StepConfig(
        instrument,
        int(iterations),
        int(seed),
        sampler,
        int(train_members),
        int(max_fission_depth),
        float(silhouette_min),
        int(min_child_members),
    )

    def submit(tpl: Any, depth: int, may_split: bool = True) -> Any:
        return pool.submit(template_step, tpl, depth, shared, cfg, may_split)

    library: dict[int, dict] = {}
    fissions: list[dict] = []
    skipped = 0
    stack = [(t, 0, submit(t, 0)) for t in sorted(templates, key=lambda t: t.template_id)][::-1]
    while stack:
        tpl, depth, pending = stack.pop()
        step: _Step = pending.result()
        skipped += step.skipped
        # Fission first: a template that splits is replaced by its children (searched later).
        if step.groups is not None:
            children = engine.refine_clusters(tpl, step.groups)
            if len(children) >= 2:
                rec = {
                    "parent": int(tpl.template_id),
                    "children": [int(c.template_id) for c in children],
                    "silhouette": round(step.silhouette, 6),
                    "depth": depth + 1,
                }
                fissions.append(rec)
                emit("fission", rec)
                stack.extend((c, depth + 1, submit(c, depth + 1)) for c in reversed(children))
                continue
            step = submit(tpl, depth, False).result()
        for _ in range(max(1, int(iterations))):
            emit("trial", {})
        tid = int(tpl.template_id)
        if step.trials is not None:
            # every parameter set scored, for a study's trial ledger (selection inflates the best)
            emit("trials", {"template_id": tid, "n": step.n_train, "trials": step.trials})
        library[tid] = step.entry
        emit("template", {"template_id": tid, "done": len(library)})
    return PlaybookResult(
        library=dict(sorted(library.items())), fissions=fissions, skipped_members=skipped
    )


def _majority(values: list[str]) -> str:
    if not values:
        return ""
    u, c = np.unique(np.asarray(values, dtype=object).astype(str), return_counts=True)
    return str(u[np.argmax(c)])  # ties -> alphabetical first


def _assign_groups(
    tpl: Any,
    labelled: np.ndarray,
    labels: np.ndarray,
    features_fn: Callable[[Sequence[Any]], np.ndarray],
) -> list[np.ndarray]:
    """Member positions per child: ``labelled`` members (training members with a parameter
    preference) by their parameter label; every other member (later ones, indifferent or
    untradable ones) to the child whose mean standardized 11D vector is nearest."""
    feats = features_fn(tpl.members)
    mu = feats[labelled].mean(axis=0)
    sd = feats[labelled].std(axis=0)
    sd[sd < 1e-12] = 1.0
    z = (feats - mu) / sd
    cents = np.stack([z[labelled[labels == g]].mean(axis=0) for g in (0, 1)])
    rest = np.setdiff1d(np.arange(len(tpl.members)), labelled)
    near = (
        np.argmin(((z[rest, None, :] - cents[None, :, :]) ** 2).sum(axis=2), axis=1)
        if rest.size
        else rest
    )
    return [
        np.sort(np.concatenate([labelled[labels == g], rest[near == g]])).astype(np.int64)
        for g in (0, 1)
    ]


def build_playbook(
    templates: Sequence[Any],
    manifest: Sequence[Any] | None,
    atlas_root: str | Path,
    iterations: int = 50,
    seed: int = 0,
    instrument: Instrument | None = None,
    **kwargs: Any,
) -> dict[int, dict]:
    """Phase 3 → the pattern library ``{template_id: entry}`` (see :func:`optimize_templates`).

    ``manifest`` is accepted for the contract's signature; members come from the templates.
    """
    del manifest
    return optimize_templates(templates, atlas_root, iterations, seed, instrument, **kwargs).library


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------


def save_library(
    library: dict[int, dict], checkpoint_dir: str | Path, fissions: list[dict] | None = None
) -> Path:
    """Write ``pattern_library.pkl`` and its readable twin ``pattern_library.json`` (atomic)."""
    d = Path(checkpoint_dir)
    d.mkdir(parents=True, exist_ok=True)
    pkl = atomic_pickle(library, d / "pattern_library.pkl")
    doc = {
        "units": {
            "pnl": "dollars (net of commission and slippage)",
            "stop/target/trail": "ticks",
            "max_hold_seconds": "seconds",
        },
        "templates": len(library),
        "fissions": fissions or [],
        "library": {str(k): jsonable(v) for k, v in library.items()},
    }
    atomic_write_text(json.dumps(doc, indent=2, sort_keys=False), d / "pattern_library.json")
    return pkl


def load_library(checkpoint_dir: str | Path) -> dict[int, dict]:
    """Load ``pattern_library.pkl`` from ``checkpoint_dir``."""
    import pickle

    with open(Path(checkpoint_dir) / "pattern_library.pkl", "rb") as fh:
        return pickle.load(fh)
