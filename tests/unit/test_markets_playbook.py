"""Phase 3 playbook: seeded search is reproducible; fission happens exactly when members' best
parameters form two groups (silhouette >= 0.45)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from edgefinder.markets import atlas
from edgefinder.markets.clustering import FractalClusteringEngine, PatternTemplate, pattern_features
from edgefinder.markets.discovery import PatternEvent
from edgefinder.markets.physics import ThreeBodyQuantumState
from edgefinder.markets.playbook import (
    FISSION_GRID,
    build_playbook,
    fission_labels,
    load_timeframe_bars,
    member_sides,
    optimize_templates,
)

DAY0 = pd.Timestamp("2024-01-02 15:00", tz="UTC")  # 09:00 Chicago: mid-session


def _state(**kw) -> ThreeBodyQuantumState:
    names = [f.name for f in dataclasses.fields(ThreeBodyQuantumState)]
    base = {n: 0.0 for n in names}
    base.update(
        lagrange_zone="L3_ROCHE",
        roche_snap=True,
        structural_drive=False,
        structure_ok=True,
        valid=True,
        timeframe="1m",
        timestamp=0,
    )
    base.update(kw)
    return ThreeBodyQuantumState(**base)


def _event(ts: int, z: float, price: float = 100.0) -> PatternEvent:
    st = _state(timestamp=ts, close=price, z_score=z, velocity=-1.0, momentum=-6.0, coherence=0.5)
    return PatternEvent(
        pattern_type="ROCHE_SNAP",
        timestamp=float(ts),
        price=price,
        z_score=z,
        velocity=-1.0,
        momentum=-6.0,
        coherence=0.5,
        file_source="x",
        idx=0,
        state=st,
        timeframe="1m",
        depth=1,
        parent_type="ROCHE_SNAP",
        parent_tf="5m",
        parent_chain=[
            {
                "tf": "5m",
                "type": "ROCHE_SNAP",
                "z": -2.5,
                "mom": 3.0,
                "coh": 0.4,
                "timestamp": float(ts - 300),
            }
        ],
    )


def _runner(t0: int) -> list[tuple]:
    """A long entry at 100 that climbs 2 points a bar without pulling back (best: widest target)."""
    rows = [(t0, 100.0, 100.0, 100.0, 100.0)]
    c = 100.0
    for j in range(1, 25):
        rows.append((t0 + 60 * j, c, c + 2.0, c, c + 2.0))
        c += 2.0
    return rows


def _pop_and_drop(t0: int) -> list[tuple]:
    """Pops 32 ticks in one bar then collapses (best: the smallest target)."""
    rows = [(t0, 100.0, 100.0, 100.0, 100.0), (t0 + 60, 100.0, 108.0, 100.0, 101.0)]
    c = 101.0
    for j in range(2, 25):
        rows.append((t0 + 60 * j, c, c, c - 3.0, c - 3.0))
        c -= 3.0
    return rows


def _make_case(tmp_path, kinds: list[str]):
    """One member per session (its own day), kinds 'A' (runner) or 'B' (pop and drop)."""
    rows, members = [], []
    days = pd.bdate_range(DAY0, periods=len(kinds))
    for kind, day in zip(kinds, days):
        t0 = int(day.timestamp())
        rows += _runner(t0) if kind == "A" else _pop_and_drop(t0)
        members.append(_event(t0, z=-2.5 if kind == "A" else -3.5))
    df = pd.DataFrame(rows, columns=["timestamp", "open", "high", "low", "close"])
    df["volume"] = 100.0
    root = tmp_path / "atlas"
    atlas.write_bars(root, "1m", df)
    tpl = PatternTemplate(
        template_id=0,
        centroid=pattern_features(members).mean(axis=0),
        member_indices=np.arange(len(members)),
        members=members,
    )
    return root, tpl


def test_direction_rule():
    evs = [_event(0, z=2.5), _event(0, z=-2.5)]
    drive = dataclasses.replace(_event(0, z=1.0), pattern_type="STRUCTURAL_DRIVE", momentum=7.0)
    drive_dn = dataclasses.replace(drive, momentum=-7.0)
    assert member_sides(evs + [drive, drive_dn]).tolist() == [-1, 1, 1, -1]


def test_fission_splits_two_parameter_groups(tmp_path):
    kinds = ["A", "B"] * 60  # 120 members: the first 50 (both groups) decide the split
    root, tpl = _make_case(tmp_path, kinds)
    engine = FractalClusteringEngine(seed=0)
    engine.templates = [tpl]
    res = optimize_templates([tpl], root, iterations=30, seed=3, engine=engine)
    assert len(res.fissions) == 1
    rec = res.fissions[0]
    assert rec["parent"] == 0 and rec["silhouette"] >= 0.45 and len(rec["children"]) == 2
    assert 0 not in res.library and sorted(res.library) == sorted(rec["children"])
    # The children are exactly the two behaviours (validation members placed by their 11D vector).
    for tid in rec["children"]:
        assert res.library[tid]["parent_template"] == 0 and res.library[tid]["fission_depth"] == 1
    by_target = sorted(res.library.values(), key=lambda e: e["params"]["take_profit_ticks"])
    pop, run = by_target
    assert pop["member_count"] == run["member_count"] == 60  # validation members placed by 11D
    assert run["params"]["take_profit_ticks"] > pop["params"]["take_profit_ticks"]
    assert run["val_trades"] == 10 and pop["val_trades"] == 10
    assert run["val_pnl"] > 0 and pop["val_pnl"] > 0
    # train centroids differ in |z| exactly as planted
    assert run["centroid"][0] == pytest.approx(2.5) and pop["centroid"][0] == pytest.approx(3.5)


def test_no_fission_when_members_agree(tmp_path):
    root, tpl = _make_case(tmp_path, ["A"] * 30)
    res = optimize_templates([tpl], root, iterations=20, seed=3)
    assert res.fissions == [] and list(res.library) == [0]
    e = res.library[0]
    assert e["member_count"] == 30 and e["train_count"] == 30 and e["val_trades"] == 0
    assert (
        e["pattern_type"] == "ROCHE_SNAP"
        and e["direction_rule"] == "fade_z"
        and e["timeframe"] == "1m"
    )
    assert e["train_pnl"] > 0  # every runner trade makes money with any searched parameters


def test_fission_labels_threshold():
    rng = np.random.default_rng(0)
    grid = np.array(np.meshgrid(*FISSION_GRID.values(), indexing="ij")).reshape(4, -1).T
    # members whose best parameters are scattered over the grid: no structure, no fission
    labels, sil = fission_labels(grid[rng.integers(0, grid.shape[0], 50)], seed=0)
    assert labels is None and sil < 0.45
    # two tight groups: fission
    two = np.vstack(
        [np.tile([10, 30, 5, 300], (25, 1)), np.tile([25, 60, 30, 1800], (25, 1))]
    ).astype(float)
    labels, sil = fission_labels(two, seed=0)
    assert (
        labels is not None
        and sil == pytest.approx(1.0)
        and np.bincount(labels).tolist() == [25, 25]
    )
    # identical vectors: silhouette undefined, no fission
    labels, sil = fission_labels(np.tile([10, 30, 5, 300], (50, 1)).astype(float), seed=0)
    assert labels is None and np.isnan(sil)


def test_search_is_reproducible_with_the_same_seed(tmp_path):
    root, tpl = _make_case(tmp_path, ["A", "B", "B"] * 10)
    kw = dict(iterations=15, seed=11, max_fission_depth=0)
    lib1 = build_playbook([tpl], None, root, **kw)
    lib2 = build_playbook([tpl], None, root, **kw)
    assert lib1 == lib2
    lib3 = build_playbook([tpl], None, root, iterations=15, seed=12, max_fission_depth=0)
    assert set(lib3) == set(lib1)


def test_train_until_bars_are_never_read(tmp_path):
    root, tpl = _make_case(tmp_path, ["A"] * 3)
    cut = int(tpl.members[-1].timestamp) + 5 * 60  # 4 bars after the last entry
    bars = load_timeframe_bars(root, ["1m"], end=cut)
    assert bars.close_ts.max() <= cut
    # one trial: the same (seeded) parameters in both runs
    cut_lib = optimize_templates([tpl], root, iterations=1, seed=0, bars=bars).library[0]
    full_lib = optimize_templates([tpl], root, iterations=1, seed=0).library[0]
    assert cut_lib["params"] == full_lib["params"]
    # the last trade is closed (END) at the last in-sample bar, so it earns less
    assert cut_lib["train_pnl"] < full_lib["train_pnl"]
