"""Phase 2.5 clustering: 11D features, coarse K, recursive split, fission."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from edgefinder.markets.clustering import (
    FEATURE_NAMES,
    ClusteringError,
    FractalClusteringEngine,
    PatternTemplate,
    coarse_k,
    load_scaler,
    nearest_template,
    pattern_features,
    save_scaler,
)
from edgefinder.markets.discovery import ROCHE_SNAP, STRUCTURAL_DRIVE

from ._markets_patterns import make_pattern, random_patterns


@pytest.fixture(scope="module")
def manifest():
    return random_patterns(1500, seed=7)


@pytest.fixture(scope="module")
def engine_and_templates(manifest):
    eng = FractalClusteringEngine(seed=0)
    return eng, eng.create_templates(manifest)


def test_feature_vector_by_hand():
    chain = [
        {
            "tf": "1m",
            "type": STRUCTURAL_DRIVE,
            "z": -1.5,
            "mom": -12.0,
            "coh": 0.2,
            "timestamp": 10.0,
        },
        {"tf": "5m", "type": ROCHE_SNAP, "z": 2.25, "mom": 3.0, "coh": 0.9, "timestamp": 5.0},
        {"tf": "15m", "type": ROCHE_SNAP, "z": -3.0, "mom": 7.0, "coh": 0.5, "timestamp": 1.0},
    ]
    deep = make_pattern(z=-2.5, v=-1.25, mom=-40.0, coh=0.35, tf="15s", depth=3, chain=chain)
    root = make_pattern(z=2.1, v=4.0, mom=6.0, coh=0.1, tf="1D", depth=0, ptype=STRUCTURAL_DRIVE)
    roche_parent = make_pattern(
        z=1.0,
        v=0.5,
        mom=2.0,
        coh=0.2,
        tf="5m",
        depth=1,
        chain=[
            {"tf": "15m", "type": ROCHE_SNAP, "z": -2.0, "mom": -9.0, "coh": 0.7, "timestamp": 0.0}
        ],
    )
    x = pattern_features([deep, root, roche_parent])
    assert x.shape == (3, 11) and len(FEATURE_NAMES) == 11
    np.testing.assert_array_equal(
        x[0], [2.5, 1.25, 40.0, 0.35, math.log2(15), 3, 0.0, 1.5, 12.0, 3.0, 1.0]
    )
    np.testing.assert_array_equal(
        x[1], [2.1, 4.0, 6.0, 0.1, math.log2(86400), 0, 0.0, 0.0, 0.0, 0.0, 0.0]
    )
    np.testing.assert_array_equal(
        x[2], [1.0, 0.5, 2.0, 0.2, math.log2(300), 1, 1.0, 2.0, 9.0, 2.0, 1.0]
    )
    assert pattern_features([]).shape == (0, 11)


@pytest.mark.parametrize(
    ("n", "k"),
    [
        (0, 1),
        (1, 1),
        (19, 1),
        (20, 1),
        (39, 1),
        (40, 2),
        (199, 9),
        (200, 10),
        (1000, 10),
        (1099, 10),
        (1100, 11),
        (5000, 50),
        (100_000, 1000),
    ],
)
def test_coarse_k_formula(n, k):
    assert coarse_k(n, cap=None) == k  # the original formula
    assert coarse_k(n) == min(k, 48)  # capped by default (--max-templates)
    assert coarse_k(n, cap=5) == min(k, 5)


def test_templates_partition_the_manifest(manifest, engine_and_templates):
    eng, templates = engine_and_templates
    n = len(manifest)
    assert eng.n_coarse == coarse_k(n) == 15
    covered = np.sort(np.concatenate([t.member_indices for t in templates]))
    assert np.array_equal(covered, np.arange(n))
    x = pattern_features(manifest)
    for tid, t in enumerate(templates):
        assert t.template_id == tid and t.parent_template_id is None
        assert t.members == [manifest[i] for i in t.member_indices]
        np.testing.assert_allclose(t.centroid, x[t.member_indices].mean(axis=0), rtol=0, atol=1e-12)
    # ids follow each template's first member, independent of KMeans' label numbering
    firsts = [int(t.member_indices[0]) for t in templates]
    assert firsts == sorted(firsts)
    assert len(templates) == eng.n_coarse + eng.n_splits  # each split adds exactly one template


def test_scaler_fitted_on_all_vectors(manifest, engine_and_templates):
    eng, _ = engine_and_templates
    x = pattern_features(manifest)
    np.testing.assert_allclose(eng.scaler.mean_, x.mean(axis=0))
    np.testing.assert_allclose(eng.scaler.scale_, x.std(axis=0))


def test_split_rule_holds_for_every_template(engine_and_templates):
    eng, templates = engine_and_templates
    xs = eng.features_scaled
    assert eng.n_splits > 0
    for t in templates:
        assert t.member_count <= 20 or np.std(xs[t.member_indices, 0]) <= 0.5


def test_recursive_split_on_a_small_spread_cluster():
    """N=30 gives K=1; |z| spread wide forces splits, down to <=20 members or scaled std <= 0.5."""
    zs = np.r_[np.linspace(0.1, 1.0, 10), np.linspace(3.0, 3.5, 10), np.linspace(8.0, 9.0, 10)]
    pats = [
        make_pattern(z=float(z), v=1.0, mom=5.0, coh=0.5, tf="1m", depth=0, idx=i)
        for i, z in enumerate(zs)
    ]
    eng = FractalClusteringEngine(seed=3)
    templates = eng.create_templates(pats)
    assert eng.n_coarse == 1 and eng.n_splits >= 1 and len(templates) >= 2
    xs = eng.features_scaled
    for t in templates:
        assert t.member_count <= 20 or np.std(xs[t.member_indices, 0]) <= 0.5
    # 20 members never split, however spread
    eng20 = FractalClusteringEngine(seed=3)
    assert len(eng20.create_templates(pats[:10] + pats[20:])) == 1 and eng20.n_splits == 0


def test_identical_points_do_not_loop():
    pats = [make_pattern(z=2.5, v=1.0, mom=5.0, coh=0.5, tf="1m", depth=0)] * 30
    eng = FractalClusteringEngine()
    (t,) = eng.create_templates(pats)
    assert t.member_count == 30


def test_same_seed_identical_templates(manifest, engine_and_templates):
    _, templates = engine_and_templates
    again = FractalClusteringEngine(seed=0).create_templates(manifest)
    assert again == templates  # ids, centroids (exact), members
    assert pickle.loads(pickle.dumps(templates)) == templates  # checkpoints/templates.pkl


def test_scaler_pickle_round_trip(tmp_path, manifest, engine_and_templates):
    eng, _ = engine_and_templates
    path = save_scaler(eng.scaler, tmp_path / "checkpoints" / "clustering_scaler.pkl")
    loaded = load_scaler(path)
    x = pattern_features(manifest)
    assert np.array_equal(loaded.transform(x), eng.scaler.transform(x))
    assert np.array_equal(
        pickle.loads(pickle.dumps(eng.scaler)).transform(x), eng.transform(manifest)
    )
    (tmp_path / "junk.pkl").write_bytes(pickle.dumps({"not": "a scaler"}))
    with pytest.raises(ClusteringError, match="junk.pkl"):
        load_scaler(tmp_path / "junk.pkl")
    with pytest.raises(ClusteringError, match="not found"):
        load_scaler(tmp_path / "none.pkl")


def test_refine_clusters_children(engine_and_templates, manifest):
    eng, templates = engine_and_templates
    parent = max(templates, key=lambda t: t.member_count)
    m = parent.member_count
    first_new = eng.next_template_id
    assert first_new == len(templates)
    groups = [np.arange(0, m, 2), np.arange(1, m, 2)]
    kids = eng.refine_clusters(parent, groups)
    assert [k.template_id for k in kids] == [first_new, first_new + 1]
    x = pattern_features(manifest)
    for k, g in zip(kids, groups):
        assert k.parent_template_id == parent.template_id
        assert np.array_equal(k.member_indices, parent.member_indices[g])
        assert k.members == [parent.members[i] for i in g]
        np.testing.assert_allclose(k.centroid, x[k.member_indices].mean(axis=0), rtol=0, atol=1e-12)
    # a label array works too (negative = left out) and ids keep counting
    labels = np.where(np.arange(m) < m // 3, 1, 0)
    labels[-1] = -1
    kids2 = eng.refine_clusters(parent, labels)
    assert [k.template_id for k in kids2] == [first_new + 2, first_new + 3]
    assert kids2[0].member_count + kids2[1].member_count == m - 1
    # children can split again
    grand = eng.refine_clusters(kids[0], [np.arange(kids[0].member_count // 2)])
    assert (
        grand[0].parent_template_id == kids[0].template_id and grand[0].template_id == first_new + 4
    )
    with pytest.raises(ClusteringError, match="outside template"):
        eng.refine_clusters(parent, [np.array([m])])


def test_nearest_template_matches_brute_force(engine_and_templates):
    eng, templates = engine_and_templates
    cents = eng.scaler.transform(np.array([t.centroid for t in templates]))
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1.5, (400, 11))
    idx, dist = nearest_template(x, cents)
    d = np.linalg.norm(x[:, None, :] - cents[None, :, :], axis=2)
    assert np.array_equal(idx, d.argmin(axis=1))
    np.testing.assert_allclose(dist, d.min(axis=1), rtol=1e-9)
    i1, d1 = nearest_template(x[0], cents)
    assert i1.shape == (1,) and i1[0] == idx[0]
    # equal distances: the first centroid wins, as argmin's; a column slice or a Fortran-order
    # array is read correctly; a row on a centroid is at distance 0
    twice = np.vstack([cents, cents])
    i2, d2 = nearest_template(np.asfortranarray(np.vstack([x, cents])), twice)
    assert np.array_equal(i2, np.concatenate([idx, np.arange(len(cents))]))
    assert np.array_equal(d2[len(x) :], np.zeros(len(cents)))
    strided = np.hstack([x, x])[:, ::2]
    i3, _ = nearest_template(strided, cents)
    assert np.array_equal(i3, np.linalg.norm(strided[:, None] - cents[None], axis=2).argmin(1))
    with pytest.raises(ClusteringError):
        nearest_template(x[:, :7], cents)


def test_empty_manifest_and_template_equality():
    eng = FractalClusteringEngine()
    assert eng.create_templates([]) == [] and eng.scaler is None
    with pytest.raises(ClusteringError, match="not fitted"):
        eng.transform([])
    a = PatternTemplate(1, np.zeros(11), np.array([0]), [], None)
    assert a == PatternTemplate(1, np.zeros(11), np.array([0]), [], None)
    assert a != PatternTemplate(1, np.ones(11), np.array([0]), [], None)
