"""Phase 2.5: 11D pattern features and template clustering.

Feature vector per pattern (raw units; ``FEATURE_NAMES`` order):

====  ================  ===================================================================
 0    abs_z             |z_score| (sigmas)
 1    abs_velocity      |velocity| (points per bar)
 2    abs_momentum      |momentum| (velocity x volume / sigma)
 3    coherence         normalized entropy in [0, 1]
 4    tf_scale          log2(timeframe seconds): 15s -> 3.91, 1D -> 16.4
 5    depth             level index in the discovery hierarchy
 6    parent_ctx        1 if the immediate parent is a ROCHE_SNAP, else 0
 7    parent_abs_z      |z| of the immediate parent (0 at depth 0)
 8    parent_abs_mom    |momentum| of the immediate parent (0 at depth 0)
 9    root_abs_z        |z| of the root ancestor (0 at depth 0)
 10   root_is_roche     1 if the root ancestor is a ROCHE_SNAP (0 at depth 0)
====  ================  ===================================================================

Clustering: a ``StandardScaler`` is fitted on all vectors; coarse KMeans with
``K = max(1, min(max(10, N // 100), N // 20))`` (so K = 1 below 40 patterns); then any cluster
with more than 20 members whose **scaled |z|** has a population standard deviation above 0.5
is split in two by KMeans(k=2) on the same scaled 11D vectors, recursively. Centroids are kept
in **raw** feature space (mean of the members' raw vectors); the forward pass scales them with the
saved scaler. Every KMeans call takes ``random_state=seed`` and a fixed ``n_init``; template ids
are numbered by each template's first (smallest) manifest index, so they do not depend on
KMeans' label numbering.
"""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from edgefinder.errors import EdgefinderError
from edgefinder.markets.atlas import TIMEFRAMES
from edgefinder.markets.discovery import ROCHE_SNAP, PatternEvent
from edgefinder.markets.kernels import nearest_centroid_kernel
from edgefinder.settings import setting_default

__all__ = [
    "FEATURE_NAMES",
    "ClusteringError",
    "FractalClusteringEngine",
    "PatternTemplate",
    "coarse_k",
    "load_scaler",
    "nearest_template",
    "pattern_features",
    "save_scaler",
]

FEATURE_NAMES: tuple[str, ...] = (
    "abs_z",
    "abs_velocity",
    "abs_momentum",
    "coherence",
    "tf_scale",
    "depth",
    "parent_ctx",
    "parent_abs_z",
    "parent_abs_mom",
    "root_abs_z",
    "root_is_roche",
)
N_FEATURES = len(FEATURE_NAMES)
#: column of |z| in the feature matrix (the split rule looks at its scaled spread)
Z_COLUMN = 0


class ClusteringError(EdgefinderError):
    """Clustering input is unusable (bad member groups, wrong feature width, bad scaler file)."""


def pattern_features(patterns: Sequence[PatternEvent]) -> np.ndarray:
    """The (N, 11) raw feature matrix of ``patterns`` in ``FEATURE_NAMES`` order (float64)."""
    n = len(patterns)
    out = np.zeros((n, N_FEATURES), dtype=np.float64)
    for i, p in enumerate(patterns):
        chain = p.parent_chain or []
        row = out[i]
        row[0] = abs(p.z_score)
        row[1] = abs(p.velocity)
        row[2] = abs(p.momentum)
        row[3] = p.coherence
        row[4] = TIMEFRAMES[p.timeframe]  # log2 applied below, vectorized
        row[5] = p.depth
        row[6] = 1.0 if p.parent_type == ROCHE_SNAP else 0.0
        if chain:
            parent, root = chain[0], chain[-1]
            row[7] = abs(parent.get("z", 0.0))
            row[8] = abs(parent.get("mom", 0.0))
            row[9] = abs(root.get("z", 0.0))
            row[10] = 1.0 if root.get("type") == ROCHE_SNAP else 0.0
    if n:
        out[:, 4] = np.log2(out[:, 4])
    return out


#: Default cap on the coarse cluster count (``--max-templates``); see :func:`coarse_k`.
MAX_COARSE_K: int = setting_default("max_templates")


def coarse_k(n: int, cap: int | None = MAX_COARSE_K) -> int:
    """Coarse cluster count ``max(1, min(max(10, n // 100), n // 20))`` (1 for n < 40), at most ``cap``.

    The formula was made for a funnel that kept a few thousand patterns; scanning every timeframe
    over its whole series keeps 50,000–200,000 a year, where it would make 500–2,000 templates of about
    a hundred members — too small to trade into evidence in a forward pass, and Phase 3's cost is
    templates × iterations. ``cap=None`` applies the formula alone.
    """
    k = max(1, min(max(10, n // 100), n // 20))
    return k if cap is None else max(1, min(k, int(cap)))


@dataclass(eq=False)
class PatternTemplate:
    """A cluster of patterns: ``centroid`` is the mean raw 11D vector of its members.

    ``member_indices`` index the manifest the template was built from (int64, ascending);
    ``members`` are those PatternEvents; ``parent_template_id`` is set on templates produced by
    :meth:`FractalClusteringEngine.refine_clusters` (fission).
    """

    template_id: int
    centroid: np.ndarray
    member_indices: np.ndarray
    members: list[PatternEvent] = field(repr=False)
    parent_template_id: int | None = None

    @property
    def member_count(self) -> int:
        return int(len(self.member_indices))

    @property
    def pattern_type(self) -> str:
        """Most common member pattern type (ties: alphabetical)."""
        return _mode([p.pattern_type for p in self.members])

    @property
    def timeframe(self) -> str:
        """Most common member timeframe (ties: alphabetical)."""
        return _mode([p.timeframe for p in self.members])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PatternTemplate):
            return NotImplemented
        return (
            self.template_id == other.template_id
            and self.parent_template_id == other.parent_template_id
            and np.array_equal(self.centroid, other.centroid)
            and np.array_equal(self.member_indices, other.member_indices)
            and self.members == other.members
        )

    __hash__ = None  # type: ignore[assignment]  # mutable container of arrays


def _mode(values: list[str]) -> str:
    if not values:
        return ""
    counts = Counter(values)
    best = max(counts.values())
    return sorted(v for v, c in counts.items() if c == best)[0]


def nearest_template(
    features_scaled: np.ndarray, centroids_scaled: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid (Euclidean, scaled space) for each row: ``(indices, distances)``.

    ``features_scaled`` is (N, 11) or one (11,) vector; ``centroids_scaled`` is (T, 11).
    Compiled (:func:`~edgefinder.markets.kernels.nearest_centroid_kernel`); the first of equal
    distances wins.
    """
    x = np.atleast_2d(np.asarray(features_scaled, dtype=np.float64))
    c = np.atleast_2d(np.asarray(centroids_scaled, dtype=np.float64))
    if c.shape[0] == 0:
        raise ClusteringError("no templates to match against")
    if x.shape[1] != c.shape[1]:
        raise ClusteringError(
            f"feature width {x.shape[1]} does not match centroid width {c.shape[1]}"
        )
    if x.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    return nearest_centroid_kernel(np.ascontiguousarray(x), np.ascontiguousarray(c.T))


def save_scaler(scaler: StandardScaler, path: str | Path) -> Path:
    """Pickle the fitted scaler (``checkpoints/clustering_scaler.pkl``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(scaler, fh)
    return path


def load_scaler(path: str | Path) -> StandardScaler:
    """Load a scaler written by :func:`save_scaler`, checking it is a fitted 11D scaler."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            scaler = pickle.load(fh)
    except FileNotFoundError:
        raise ClusteringError(f"scaler not found: {path}") from None
    except Exception as exc:
        raise ClusteringError(f"cannot read scaler {path}: {exc}") from exc
    if (
        not isinstance(scaler, StandardScaler)
        or getattr(scaler, "n_features_in_", None) != N_FEATURES
    ):
        raise ClusteringError(f"{path} is not a fitted {N_FEATURES}-feature StandardScaler")
    return scaler


class FractalClusteringEngine:
    """Groups a manifest into :class:`PatternTemplate`s (coarse KMeans + recursive |z| split).

    ``seed`` feeds every KMeans; ``n_init`` is fixed (default 4) so runs are reproducible;
    ``split_z_std`` (0.5, scaled units) and ``split_min_members`` (20: a cluster needs *more*
    than this to split) are the original split rule. ``threads`` caps the OpenMP/BLAS threads
    KMeans may use (default 1): the problems are small (thousands of 11D points, many k=2
    splits), and on a busy 2-core machine OpenMP spin-waiting made 2 threads 5-20x slower than
    one; a fixed count also keeps results identical across machines.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        n_init: int = 4,
        split_z_std: float = 0.5,
        split_min_members: int = 20,
        max_iter: int = 300,
        threads: int | None = 1,
        max_coarse_k: int | None = MAX_COARSE_K,
    ) -> None:
        self.threads = threads
        self.max_coarse_k = max_coarse_k
        self.seed = int(seed)
        self.n_init = int(n_init)
        self.split_z_std = float(split_z_std)
        self.split_min_members = int(split_min_members)
        self.max_iter = int(max_iter)
        self.scaler: StandardScaler | None = None
        self.features: np.ndarray | None = None  # raw (N, 11) of the last manifest
        self.features_scaled: np.ndarray | None = None
        self.templates: list[PatternTemplate] = []
        self.n_coarse: int = 0
        self.n_splits: int = 0
        self._next_id: int = 0

    # ------------------------------------------------------------------ Phase 2.5
    def create_templates(self, manifest: Sequence[PatternEvent]) -> list[PatternTemplate]:
        """Cluster ``manifest`` into templates (ids 0..T-1 by first member); fits ``.scaler``."""
        if self.threads is None:
            return self._create_templates(manifest)
        with threadpool_limits(limits=self.threads):
            return self._create_templates(manifest)

    def _create_templates(self, manifest: Sequence[PatternEvent]) -> list[PatternTemplate]:
        manifest = list(manifest)
        x = pattern_features(manifest)
        n = x.shape[0]
        self.features = x
        self.templates = []
        self.n_splits = 0
        if n == 0:
            self.scaler = None
            self.features_scaled = np.zeros((0, N_FEATURES))
            self.n_coarse = 0
            self._next_id = 0
            return []
        self.scaler = StandardScaler().fit(x)
        xs = self.scaler.transform(x)
        self.features_scaled = xs
        k = coarse_k(n, self.max_coarse_k)
        self.n_coarse = k
        labels = self._kmeans(xs, k)
        groups: list[np.ndarray] = []
        stack = [np.flatnonzero(labels == lab) for lab in range(k)][::-1]
        while stack:  # explicit stack: deep recursion on skewed data cannot overflow
            idx = stack.pop()
            if idx.size == 0:
                continue
            if (
                idx.size > self.split_min_members
                and float(np.std(xs[idx, Z_COLUMN])) > self.split_z_std
            ):
                sub = self._kmeans(xs[idx], 2)
                a, b = idx[sub == 0], idx[sub == 1]
                if a.size and b.size:  # identical points cannot be split: keep the cluster
                    self.n_splits += 1
                    stack.extend([b, a])
                    continue
            groups.append(idx)
        groups.sort(key=lambda g: int(g[0]))  # deterministic ids, independent of label numbering
        for tid, idx in enumerate(groups):
            self.templates.append(
                PatternTemplate(
                    template_id=tid,
                    centroid=x[idx].mean(axis=0),
                    member_indices=idx.astype(np.int64),
                    members=[manifest[i] for i in idx],
                    parent_template_id=None,
                )
            )
        self._next_id = len(groups)
        return self.templates

    # ------------------------------------------------------------------ fission
    def refine_clusters(
        self,
        template: PatternTemplate,
        member_groups: Sequence[np.ndarray] | np.ndarray,
    ) -> list[PatternTemplate]:
        """Split ``template`` into child templates (Phase 3 fission) on the same 11D vector.

        ``member_groups`` is either a **list** of integer arrays of positions within
        ``template.members`` (one array per child), or one 1-D **ndarray** of labels of length
        ``len(template.members)`` (one child per distinct label, ascending; negative labels are
        left out). Each non-empty group becomes a
        child with a fresh id from the engine's counter (ids continue after the last template,
        in group order), ``parent_template_id = template.template_id``, and a raw centroid =
        mean 11D vector of its members.
        """
        m = len(template.members)
        if (
            isinstance(member_groups, np.ndarray)
            and member_groups.ndim == 1
            and member_groups.dtype != object
        ):
            labels = member_groups.astype(np.int64)
            if labels.size != m:
                raise ClusteringError(
                    f"label array has {labels.size} entries; template {template.template_id} has {m} members"
                )
            groups = [np.flatnonzero(labels == lab) for lab in np.unique(labels) if lab >= 0]
        else:
            groups = [np.asarray(g, dtype=np.int64).ravel() for g in member_groups]
        self._next_id = max(
            self._next_id,
            int(template.template_id) + 1,
            1 + max((t.template_id for t in self.templates), default=-1),
        )
        children: list[PatternTemplate] = []
        for g in groups:
            if g.size == 0:
                continue
            if g.min() < 0 or g.max() >= m:
                raise ClusteringError(
                    f"member group indexes outside template {template.template_id} (0..{m - 1})"
                )
            g = np.unique(g)
            members = [template.members[i] for i in g]
            child = PatternTemplate(
                template_id=self._next_id,
                centroid=pattern_features(members).mean(axis=0),
                member_indices=np.asarray(template.member_indices)[g].astype(np.int64),
                members=members,
                parent_template_id=int(template.template_id),
            )
            self._next_id += 1
            children.append(child)
        return children

    @property
    def next_template_id(self) -> int:
        """The id the next fission child will get."""
        return self._next_id

    # ------------------------------------------------------------------ helpers
    def transform(self, patterns: Sequence[PatternEvent]) -> np.ndarray:
        """Scaled 11D vectors of ``patterns`` with the fitted scaler."""
        if self.scaler is None:
            raise ClusteringError(
                "the clustering scaler is not fitted (run create_templates first)"
            )
        return self.scaler.transform(pattern_features(patterns))

    def _kmeans(self, xs: np.ndarray, k: int) -> np.ndarray:
        if k <= 1 or xs.shape[0] <= 1:
            return np.zeros(xs.shape[0], dtype=np.int64)
        km = KMeans(
            n_clusters=k, n_init=self.n_init, max_iter=self.max_iter, random_state=self.seed
        )
        return km.fit_predict(xs).astype(np.int64)
