"""Shared builders for the discovery and clustering tests (not a test module)."""

from __future__ import annotations

import numpy as np

from edgefinder.markets.discovery import ROCHE_SNAP, STRUCTURAL_DRIVE, PatternEvent
from edgefinder.markets.physics import ThreeBodyQuantumState

HIERARCHY = ["1D", "4h", "1h", "15m", "5m", "1m", "15s"]


def make_state(z: float = 0.0, timestamp: int = 0, timeframe: str = "15s") -> ThreeBodyQuantumState:
    """A ThreeBodyQuantumState with plausible fixed values (only z and time vary)."""
    return ThreeBodyQuantumState(
        timestamp=int(timestamp),
        open=100.0,
        high=101.0,
        low=99.0,
        close=100.5,
        volume=10.0,
        center=100.0,
        sigma=0.25,
        z_score=float(z),
        velocity=1.0,
        momentum=40.0,
        reversion_force=-0.5 * z * 0.25,
        band_repulsion=0.0,
        f_net=0.0,
        P0=0.2,
        P1=0.6,
        P2=0.2,
        entropy=0.9,
        coherence=0.8,
        lagrange_zone="L2_ROCHE",
        roche_snap=True,
        structural_drive=False,
        structure_ok=True,
        valid=True,
        timeframe=timeframe,
    )


def make_pattern(
    *,
    z: float,
    v: float,
    mom: float,
    coh: float,
    tf: str,
    depth: int,
    chain: list | None = None,
    ptype: str = ROCHE_SNAP,
    ts: float = 1_700_000_000.0,
    idx: int = 0,
) -> PatternEvent:
    chain = list(chain or [])
    return PatternEvent(
        pattern_type=ptype,
        timestamp=float(ts),
        price=100.5,
        z_score=z,
        velocity=v,
        momentum=mom,
        coherence=coh,
        file_source=f"{tf}/2023_11.parquet",
        idx=idx,
        state=make_state(z, int(ts), tf),
        timeframe=tf,
        depth=depth,
        parent_type=chain[0]["type"] if chain else "",
        parent_tf=chain[0]["tf"] if chain else "",
        parent_chain=chain,
    )


def random_patterns(n: int, seed: int = 0) -> list[PatternEvent]:
    """``n`` random but well-formed patterns (chains consistent with depth)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        depth = int(rng.integers(0, len(HIERARCHY)))
        chain = [
            {
                "tf": HIERARCHY[d],
                "type": ROCHE_SNAP if rng.random() < 0.6 else STRUCTURAL_DRIVE,
                "z": float(rng.normal(0, 2.5)),
                "mom": float(rng.normal(0, 20)),
                "coh": float(rng.random()),
                "timestamp": float(1_700_000_000 + i),
            }
            for d in range(depth - 1, -1, -1)
        ]
        out.append(
            make_pattern(
                z=float(rng.normal(0, 2.5)),
                v=float(rng.normal(0, 3)),
                mom=float(rng.normal(0, 30)),
                coh=float(rng.random()),
                tf=HIERARCHY[depth],
                depth=depth,
                chain=chain,
                ptype=ROCHE_SNAP if rng.random() < 0.5 else STRUCTURAL_DRIVE,
                ts=1_700_000_000 + 15 * i,
                idx=i,
            )
        )
    return out
