"""Discovery on a 250-session synthetic year (1D..15s, strict cascade): the parent-chain check.

Slow (a year of 15 s bars is generated and scanned), so it lives with the end-to-end runs; the
invariants it checks are the unit module's brute-force ones.
"""

from __future__ import annotations

import pytest

from edgefinder.markets.synth import SynthConfig, generate_atlas
from tests.unit.test_markets_discovery import _check_invariants


@pytest.mark.slow
def test_parent_chain_check_on_a_synthetic_year(tmp_path_factory, capsys):
    """The original parent-chain check, verbatim in spirit, on a 250-session synthetic year (1D..15s)."""
    root = tmp_path_factory.mktemp("discovery_year")
    generate_atlas(root, SynthConfig(sessions=250, seed=0))
    from edgefinder.markets.discovery import FractalDiscoveryAgent as Agent

    agent = Agent()
    manifest = agent.scan_atlas_topdown(str(root), cascade="strict")
    deep = [p for p in manifest if p.depth >= 5]
    assert deep
    p = deep[0]
    print(f"Pattern: depth={p.depth}, tf={p.timeframe}")
    print(f"Chain length: {len(p.parent_chain)}")
    for ancestor in p.parent_chain:
        print(f"  {ancestor['tf']} {ancestor['type']} z={ancestor['z']:.2f}")
    print("PASS")
    assert all(len(q.parent_chain) == q.depth for q in deep)
    assert len(p.parent_chain) == p.depth >= 5
    _check_invariants(manifest, ["1D", "4h", "1h", "15m", "5m", "1m", "15s"])
    assert "PASS" in capsys.readouterr().out
