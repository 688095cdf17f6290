"""Phase 2 discovery: invariants of both cascade modes on a synthetic ATLAS, window merging, manifest I/O.

The invariants are checked by brute force over the raw windows (no reuse of the scan's window code):
``strict`` is the top-down funnel (depth = level index, only patterns inside a window of the level
above), ``context`` keeps every pattern and links it to the windows that hold it (depth = chain
length, immediate parent on the finest coarser timeframe with a window).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefinder.markets import atlas
from edgefinder.markets.discovery import (
    CHILD_WINDOW_BARS,
    ROCHE_SNAP,
    STRUCTURAL_DRIVE,
    DiscoveryError,
    FractalDiscoveryAgent,
    ManifestError,
    PatternEvent,
    child_windows,
    load_manifest,
    manifest_to_frame,
    merge_windows,
    save_manifest,
    window_index,
)
from edgefinder.markets.physics import PhysicsConfig, QuantumFieldEngine, ThreeBodyQuantumState
from edgefinder.markets.synth import SynthConfig, generate_atlas

TF_S = atlas.TIMEFRAMES


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """40 synthetic NQ-like sessions, 15s..1D (about 1 s to generate)."""
    root = tmp_path_factory.mktemp("discovery_atlas")
    generate_atlas(root, SynthConfig(sessions=40, seed=1))
    return root


@pytest.fixture(scope="session")
def full_scan(synth_root):
    agent = FractalDiscoveryAgent()
    calls: list[tuple[int, str, int]] = []
    manifest = agent.scan_atlas_topdown(
        synth_root, cascade="strict", on_level=lambda *a: calls.append(a)
    )
    return agent, manifest, calls


@pytest.fixture(scope="session")
def context_scan(synth_root):
    agent = FractalDiscoveryAgent()
    calls: list[tuple[int, str, int]] = []
    manifest = agent.scan_atlas_topdown(synth_root, on_level=lambda *a: calls.append(a))
    return agent, manifest, calls


@pytest.fixture(scope="session")
def scan_4h(synth_root):
    agent = FractalDiscoveryAgent()
    tfs = ["4h", "1h", "15m", "5m", "1m", "15s"]
    return tfs, agent.scan_atlas_topdown(synth_root, timeframes=tfs, cascade="strict")


@pytest.fixture(scope="session")
def full_states(synth_root):
    """Independently computed states of every timeframe over its whole continuous series."""
    eng = QuantumFieldEngine(PhysicsConfig())
    return {
        tf: eng.compute_states(atlas.read_bars(synth_root, tf), tf)
        for tf in atlas.available_timeframes(synth_root)
    }


# ------------------------------------------------------------------------------------ helpers
def _check_invariants(manifest: list[PatternEvent], hierarchy: list[str]) -> None:
    """The discovery invariants, checked without reusing the agent's window code."""
    assert manifest, "expected patterns"
    by_depth: dict[int, list[PatternEvent]] = {}
    for p in manifest:
        by_depth.setdefault(p.depth, []).append(p)
    keys = [(p.depth, p.timestamp) for p in manifest]
    assert keys == sorted(keys)
    for p in manifest:
        assert p.timeframe == hierarchy[p.depth]  # depth = level index
        assert len(p.parent_chain) == p.depth
        # chain[0] is the immediate parent, the last entry the root: timeframes ascend the hierarchy
        assert [e["tf"] for e in p.parent_chain] == hierarchy[: p.depth][::-1]
        if p.depth == 0:
            assert p.parent_chain == [] and p.parent_type == "" and p.parent_tf == ""
            continue
        parent = p.parent_chain[0]
        assert (p.parent_type, p.parent_tf) == (parent["type"], parent["tf"])
        assert set(parent) == {"tf", "type", "z", "mom", "coh", "timestamp"}
        # the window opened at the parent's bar close, at or before this bar's close (here even its open)
        parent_close = parent["timestamp"] + TF_S[parent["tf"]]
        assert parent_close <= p.timestamp < p.timestamp + TF_S[p.timeframe]
        # every chain link is itself causal: each ancestor closed before its child opened
        for child, anc in zip(p.parent_chain, p.parent_chain[1:]):
            assert anc["timestamp"] + TF_S[anc["tf"]] <= child["timestamp"]
        # the parent is a real pattern one level up, with the rest of the chain as its own chain
        ups = [
            q
            for q in by_depth[p.depth - 1]
            if q.timestamp == parent["timestamp"] and q.pattern_type == parent["type"]
        ]
        assert len(ups) == 1
        q = ups[0]
        assert (q.z_score, q.momentum, q.coherence) == (parent["z"], parent["mom"], parent["coh"])
        assert q.parent_chain == p.parent_chain[1:]
        # inside the union of raw parent-level windows [close, close + max(P, 30 child bars))
        inside = False
        for r in by_depth[p.depth - 1]:
            start = r.timestamp + TF_S[r.timeframe]
            length = max(TF_S[r.timeframe], CHILD_WINDOW_BARS * TF_S[p.timeframe])
            if start <= p.timestamp < start + length:
                inside = True
                break
        assert inside


def _check_context_invariants(
    manifest: list[PatternEvent], hierarchy: list[str], states: dict
) -> None:
    """The context cascade's invariants, by brute force over raw windows and the full states."""
    assert manifest
    level = {tf: k for k, tf in enumerate(hierarchy)}
    keys = [(level[p.timeframe], p.timestamp) for p in manifest]
    assert keys == sorted(keys)
    by_tf: dict[str, list[PatternEvent]] = {tf: [] for tf in hierarchy}
    for p in manifest:
        by_tf[p.timeframe].append(p)
    # completeness: every pattern bar of every timeframe is in the manifest, whatever its ancestry
    for tf in hierarchy:
        st = states[tf]
        ok = st["valid"].to_numpy()
        expected = int(
            (ok & st["roche_snap"].to_numpy()).sum()
            + (ok & st["structural_drive"].to_numpy()).sum()
        )
        assert len(by_tf[tf]) == expected
    index = {(p.timeframe, p.timestamp, p.pattern_type): p for p in manifest}
    for p in manifest[::3]:
        assert len(p.parent_chain) == p.depth
        tfs = [e["tf"] for e in p.parent_chain]
        assert all(
            level[a] < level[b] for a, b in zip(tfs[1:], tfs)
        )  # strictly coarser towards the root
        if p.parent_chain:
            assert level[tfs[0]] < level[p.timeframe]
            assert (p.parent_type, p.parent_tf) == (p.parent_chain[0]["type"], tfs[0])
        # the immediate parent: the earliest pattern whose raw window holds the bar, on the finest
        # coarser timeframe that has such a window (runs of overlapping windows belong to their first)
        want = None
        for tf in reversed(hierarchy[: level[p.timeframe]]):
            length = max(TF_S[tf], CHILD_WINDOW_BARS * TF_S[p.timeframe])
            holders = [
                q
                for q in by_tf[tf]
                if q.timestamp + TF_S[tf] <= p.timestamp < q.timestamp + TF_S[tf] + length
            ]
            if holders:
                first = holders[0]
                # walk back over the run of overlapping windows to its first window
                ups = by_tf[tf]
                i = ups.index(first)
                while (
                    i > 0 and ups[i - 1].timestamp + TF_S[tf] + length > ups[i].timestamp + TF_S[tf]
                ):
                    i -= 1
                want = ups[i]
                break
        if want is None:
            assert p.depth == 0 and p.parent_chain == []
            continue
        parent = p.parent_chain[0]
        assert (parent["tf"], parent["timestamp"], parent["type"]) == (
            want.timeframe,
            want.timestamp,
            want.pattern_type,
        )
        assert (
            parent["timestamp"] + TF_S[parent["tf"]] <= p.timestamp
        )  # known before the child bar opened
        q = index[(want.timeframe, want.timestamp, want.pattern_type)]
        assert q.parent_chain == p.parent_chain[1:] and q.depth == p.depth - 1


# ------------------------------------------------------------------------------------ scan
def test_full_hierarchy_invariants(full_scan, synth_root):
    agent, manifest, calls = full_scan
    hierarchy = atlas.available_timeframes(synth_root)
    assert hierarchy == ["1D", "4h", "1h", "15m", "5m", "1m", "15s"]
    _check_invariants(manifest, hierarchy)
    assert max(p.depth for p in manifest) == 6  # 40 sessions reach 15s under 1D
    # on_level reports (level, tf, count) after each level, matching the manifest
    assert calls == [(i, tf, sum(p.depth == i for p in manifest)) for i, tf in enumerate(hierarchy)]
    assert [s["patterns"] for s in agent.level_stats] == [c[2] for c in calls]
    # no merged window starts before the bar of the parent its chain names had closed
    for depth in range(1, 7):
        parents = [p for p in manifest if p.depth == depth - 1]
        for start, _end, ptype, ptf, chain in merge_windows(
            child_windows(parents, hierarchy[depth])
        ):
            assert (ptype, ptf) == (chain[0]["type"], chain[0]["tf"])
            assert start >= chain[0]["timestamp"] + TF_S[ptf]


def test_context_cascade_invariants(context_scan, synth_root, full_states):
    agent, manifest, calls = context_scan
    hierarchy = atlas.available_timeframes(synth_root)
    _check_context_invariants(manifest, hierarchy, full_states)
    depths = {p.depth for p in manifest if p.timeframe == "15s"}
    assert 0 in depths and max(depths) == 6  # from backed by nothing to the full hierarchy aligned
    assert calls == [
        (i, tf, sum(p.timeframe == tf for p in manifest)) for i, tf in enumerate(hierarchy)
    ]
    assert [sum(s["patterns_by_depth"]) for s in agent.level_stats] == [c[2] for c in calls]


def test_strict_patterns_are_context_patterns(full_scan, context_scan):
    """The funnel keeps a subset of the bars the context scan keeps, with the same states."""
    _, strict, _ = full_scan
    _, context, _ = context_scan
    ctx = {(p.timeframe, p.timestamp, p.pattern_type): p for p in context}
    assert len(strict) < len(context)
    for p in strict:
        q = ctx[(p.timeframe, p.timestamp, p.pattern_type)]
        assert (q.state, q.idx, q.file_source) == (p.state, p.idx, p.file_source)


def test_restricted_hierarchy_invariants(scan_4h):
    tfs, manifest = scan_4h
    _check_invariants(manifest, tfs)
    assert {p.timeframe for p in manifest} <= set(tfs)
    assert max(p.depth for p in manifest) == len(tfs) - 1


def test_every_windowed_pattern_found(scan_4h, full_states):
    """Completeness: each pattern bar of level k inside a parent window is in the manifest (twice
    when it meets both rules), computed from states of the whole continuous series."""
    tfs, manifest = scan_4h
    for depth in range(1, len(tfs)):
        tf, parents = tfs[depth], [p for p in manifest if p.depth == depth - 1]
        st_df = full_states[tf]
        ts = st_df["timestamp"].to_numpy()
        cover = np.zeros(ts.size, bool)
        for q in parents:
            s = q.timestamp + TF_S[q.timeframe]
            cover |= (ts >= s) & (ts < s + max(TF_S[q.timeframe], CHILD_WINDOW_BARS * TF_S[tf]))
        ok = st_df["valid"].to_numpy() & cover
        expected = int(
            (ok & st_df["roche_snap"].to_numpy()).sum()
            + (ok & st_df["structural_drive"].to_numpy()).sum()
        )
        assert sum(p.depth == depth for p in manifest) == expected
        if not parents:
            break


def test_states_come_from_the_continuous_series(full_scan, full_states):
    _, manifest, _ = full_scan
    for p in manifest[::7]:
        ref = ThreeBodyQuantumState.from_states(full_states[p.timeframe], p.idx, p.timeframe)
        assert p.state == ref
        assert (p.timestamp, p.price, p.z_score, p.momentum) == (
            ref.timestamp,
            ref.close,
            ref.z_score,
            ref.momentum,
        )
        is_roche = p.pattern_type == ROCHE_SNAP
        assert ref.roche_snap if is_roche else ref.structural_drive
        assert Path(p.file_source).is_file()
        month = pd.Timestamp(int(p.timestamp), unit="s").strftime("%Y_%m")
        assert p.file_source.endswith(f"{p.timeframe}/{month}.parquet")


def test_scan_is_deterministic(synth_root, scan_4h):
    tfs, manifest = scan_4h
    again = FractalDiscoveryAgent().scan_atlas_topdown(
        synth_root, timeframes=list(reversed(tfs)), cascade="strict"
    )
    assert again == manifest


def test_start_end_bound_the_scan(synth_root, full_states):
    ts = full_states["1h"]["timestamp"].to_numpy()
    start, end = int(ts[len(ts) // 4]), int(ts[3 * len(ts) // 4])
    m = FractalDiscoveryAgent().scan_atlas_topdown(
        synth_root, ["1h", "15m", "5m"], start=start, end=end
    )
    assert m and all(start <= p.timestamp < end for p in m)
    # a date string works too (naive = UTC)
    iso = pd.Timestamp(start, unit="s").isoformat()
    assert (
        FractalDiscoveryAgent().scan_atlas_topdown(
            synth_root, ["1h", "15m", "5m"], start=iso, end=end
        )
        == m
    )


def test_drilldown_stops_at_empty_level(synth_root):
    agent = FractalDiscoveryAgent(PhysicsConfig(snap_z=1e9, drive_momentum=1e18))
    seen = []
    m = agent.scan_atlas_topdown(
        synth_root,
        ["4h", "1h", "15m"],
        on_level=lambda *a: seen.append(a),
        progress=True,
        cascade="strict",
    )
    assert m == [] and seen == [(0, "4h", 0)] and len(agent.level_stats) == 1
    # context mode scans every level whatever the level above found
    seen.clear()
    assert (
        agent.scan_atlas_topdown(
            synth_root, ["4h", "1h", "15m"], on_level=lambda *a: seen.append(a)
        )
        == []
    )
    assert seen == [(0, "4h", 0), (1, "1h", 0), (2, "15m", 0)]
    with pytest.raises(DiscoveryError, match="--cascade"):
        agent.scan_atlas_topdown(synth_root, ["4h"], cascade="loose")


def test_bad_timeframes_are_clear_errors(synth_root, tmp_path):
    agent = FractalDiscoveryAgent()
    with pytest.raises(DiscoveryError, match="unknown timeframe"):
        agent.scan_atlas_topdown(synth_root, ["2h"])
    with pytest.raises(DiscoveryError, match="not in ATLAS"):
        agent.scan_atlas_topdown(synth_root, ["1h", "5s"])
    with pytest.raises(DiscoveryError, match="no timeframes"):
        agent.scan_atlas_topdown(tmp_path)


def test_bar_meeting_both_rules_yields_two_events():
    rng = np.random.default_rng(3)
    n = 200
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    bars = pd.DataFrame(
        {
            "timestamp": 60 * np.arange(n, dtype=np.int64) + 1_700_000_040,
            "open": close,
            "high": close + 1,
            "low": close - 1,
            "close": close,
            "volume": np.full(n, 10.0),
        }
    )
    states = QuantumFieldEngine().compute_states(bars, "1m")
    states["roche_snap"] = False
    states["structural_drive"] = False
    states.loc[[5, 50, 120], "roche_snap"] = True  # row 5 is in the warm-up: not valid, no event
    states.loc[[50, 121], "structural_drive"] = True
    agent = FractalDiscoveryAgent()
    evs = agent._batch_scan_full(states, "1m")
    assert [(e.idx, e.pattern_type) for e in evs] == [
        (50, ROCHE_SNAP),
        (50, STRUCTURAL_DRIVE),
        (120, ROCHE_SNAP),
        (121, STRUCTURAL_DRIVE),
    ]
    assert all(e.parent_chain == [] and e.depth == 0 for e in evs)
    # windowed: only bars whose open lies in [start, end) and the window's chain is attached
    t = states["timestamp"].to_numpy()
    chain = [
        {
            "tf": "5m",
            "type": ROCHE_SNAP,
            "z": 2.5,
            "mom": 1.0,
            "coh": 0.5,
            "timestamp": float(t[45] - 300),
        }
    ]
    win = [(float(t[45]), float(t[51]), ROCHE_SNAP, "5m", chain)]
    evs = agent._batch_scan_windowed(states, "1m", win, depth=1)
    assert [(e.idx, e.pattern_type) for e in evs] == [(50, ROCHE_SNAP), (50, STRUCTURAL_DRIVE)]
    assert all(
        e.parent_chain == chain and e.parent_type == ROCHE_SNAP and e.parent_tf == "5m" for e in evs
    )
    assert agent._batch_scan_windowed(states, "1m", [], depth=1) == []


def test_child_windows_open_at_bar_close():
    from ._markets_patterns import make_pattern

    p = make_pattern(z=2.5, v=3.0, mom=10.0, coh=0.4, tf="5m", depth=0, ts=1_700_000_100)
    (w,) = child_windows([p], "1m")
    assert w[0] == 1_700_000_100 + 300  # the 5m bar's close, not its open
    assert w[1] - w[0] == max(300, 30 * 60)
    assert w[2:4] == (ROCHE_SNAP, "5m")
    assert w[4] == [
        {
            "tf": "5m",
            "type": ROCHE_SNAP,
            "z": 2.5,
            "mom": 10.0,
            "coh": 0.4,
            "timestamp": 1_700_000_100.0,
        }
    ]
    (w2,) = child_windows([p], "15m")  # a long parent bar dominates short child bars
    assert w2[1] - w2[0] == max(300, 30 * 900)


# ------------------------------------------------------------------------------------ merging
def _w(s, e, name):
    return (float(s), float(e), ROCHE_SNAP, "5m", [{"name": name}])


def test_merge_keeps_longer_window_chain():
    # the longer window opened first: one merged window with its chain
    assert merge_windows([_w(50, 100, "short"), _w(0, 300, "long")]) == [
        (0.0, 300.0, ROCHE_SNAP, "5m", [{"name": "long"}])
    ]
    # the longer window opens later: it takes over from its own start (its parent had not closed before)
    out = merge_windows([_w(0, 100, "short"), _w(50, 300, "long")])
    assert [(w[0], w[1], w[4][0]["name"]) for w in out] == [(0, 50, "short"), (50, 300, "long")]
    # equal lengths: the earlier, already open window keeps its chain; the union is covered
    out = merge_windows([_w(60, 160, "late"), _w(0, 100, "early"), _w(120, 220, "later")])
    assert [(w[0], w[1], w[4][0]["name"]) for w in out] == [(0, 220, "early")]
    # identical windows (one bar, both pattern types): the first in input order wins
    assert merge_windows([_w(0, 10, "roche"), _w(0, 10, "drive")])[0][4][0]["name"] == "roche"
    # touching is not overlapping
    assert len(merge_windows([_w(0, 10, "a"), _w(10, 20, "b")])) == 2
    assert merge_windows([]) == []


def test_agent_merge_is_the_documented_merge():
    ws = [_w(0, 100, "a"), _w(50, 300, "b")]
    assert FractalDiscoveryAgent._merge_windows(ws) == merge_windows(ws)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(1, 80)), min_size=1, max_size=25))
def test_merge_properties(raw):
    ws = [_w(s, s + length, f"w{i}") for i, (s, length) in enumerate(raw)]
    out = merge_windows(ws)
    starts = np.array([w[0] for w in out])
    ends = np.array([w[1] for w in out])
    assert np.all(starts < ends) and np.all(ends[:-1] <= starts[1:])  # disjoint, sorted
    grid = np.arange(0, 300) + 0.5
    union = np.zeros(grid.size, bool)
    for s, e, *_ in ws:
        union |= (grid >= s) & (grid < e)
    assert np.array_equal(window_index(grid, starts, ends) >= 0, union)  # same coverage
    by_name = {w[4][0]["name"]: w for w in ws}
    for s, _e, _, _, chain in out:
        src = by_name[chain[0]["name"]]
        assert src[0] <= s  # never back-dated before its parent's close
        # no window overlapping this one that was open at its start is longer than the source
        for o in ws:
            if o[0] <= s < o[1]:
                assert (o[1] - o[0]) <= (src[1] - src[0])


def test_window_index_matches_brute_force():
    rng = np.random.default_rng(0)
    starts = np.cumsum(rng.integers(1, 50, 40)).astype(float)
    ends = starts + rng.integers(1, 20, 40)
    ends = np.minimum(ends, np.r_[starts[1:], np.inf])
    ts = rng.uniform(0, starts[-1] + 30, 5000)
    got = window_index(ts, starts, ends)
    ref = np.array([next((k for k in range(40) if starts[k] <= t < ends[k]), -1) for t in ts])
    assert np.array_equal(got, ref)
    assert np.array_equal(window_index(ts[:3], np.array([]), np.array([])), [-1, -1, -1])


# ------------------------------------------------------------------------------------ manifest
def test_manifest_round_trip(full_scan, tmp_path):
    _, manifest, _ = full_scan
    path = save_manifest(manifest, tmp_path / "manifest.parquet")
    back = load_manifest(path)
    assert back == manifest
    assert all(len(b.parent_chain) == b.depth for b in back)
    assert type(back[0].timestamp) is float and type(back[0].idx) is int
    df = manifest_to_frame(manifest)
    assert len(df) == len(manifest) and (df["chain_len"] == df["depth"]).all()
    assert {"state_z_score", "state_lagrange_zone", "parent_chain"} <= set(df.columns)
    # an empty manifest round-trips too
    assert load_manifest(save_manifest([], tmp_path / "empty.parquet")) == []


def test_window_data_is_not_part_of_equality_or_manifest(synth_root, tmp_path):
    with_data = FractalDiscoveryAgent(keep_window_data=True).scan_atlas_topdown(
        synth_root, ["4h", "1h"]
    )
    plain = FractalDiscoveryAgent().scan_atlas_topdown(synth_root, ["4h", "1h"])
    assert with_data == plain
    assert (
        len(with_data[-1].window_data) == 21
        and with_data[-1].window_data["close"].iloc[-1] == with_data[-1].price
    )
    back = load_manifest(save_manifest(with_data, tmp_path / "m.parquet"))
    assert back == plain and all(b.window_data is None for b in back)


def test_manifest_errors_name_the_file(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        load_manifest(tmp_path / "missing.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(ManifestError, match="bad.parquet"):
        load_manifest(bad)
    other = tmp_path / "other.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(other)
    with pytest.raises(ManifestError, match="not an edgefinder pattern manifest"):
        load_manifest(other)


# ------------------------------------------------------------------------------------ real data
def test_real_eurusd_hourly_atlas_discovery_and_clustering(tmp_path):
    """Real hourly EURUSD bars -> atlas build -> discovery -> clustering."""
    from backtesting.test import EURUSD

    from edgefinder.markets.clustering import FractalClusteringEngine, pattern_features

    src = tmp_path / "eurusd.csv"
    EURUSD.rename_axis("timestamp").to_csv(src)
    root = tmp_path / "atlas"
    atlas.build_atlas(src, root, timeframes=["1h", "4h", "1D"])
    assert atlas.available_timeframes(root) == ["1D", "4h", "1h"]
    hierarchy = ["1D", "4h", "1h"]
    manifest = FractalDiscoveryAgent().scan_atlas_topdown(root, hierarchy, cascade="strict")
    _check_invariants(manifest, hierarchy)
    assert max(p.depth for p in manifest) == 2
    _check_context_invariants(
        FractalDiscoveryAgent().scan_atlas_topdown(root, hierarchy),
        hierarchy,
        {
            tf: QuantumFieldEngine().compute_states(atlas.read_bars(root, tf), tf)
            for tf in hierarchy
        },
    )
    assert load_manifest(save_manifest(manifest, tmp_path / "m.parquet")) == manifest
    eng = FractalClusteringEngine(seed=0)
    templates = eng.create_templates(manifest)
    covered = np.sort(np.concatenate([t.member_indices for t in templates]))
    assert np.array_equal(
        covered, np.arange(len(manifest))
    )  # every pattern in exactly one template
    x = pattern_features(manifest)
    for t in templates:
        assert np.allclose(t.centroid, x[t.member_indices].mean(axis=0))
