"""The walk-forward study at its defaults, through the command line, on planted truths.

Two mixed studies (``markets walk-forward --folds 4``, anchored, purge and embargo 1 session,
every other setting the default, a ``LocalCluster`` of 2 workers), each of one edge instrument and
one no-edge instrument of 200 sessions (about ten months; test blocks of 28 sessions):

* **edge** (``MNQ``, ``--edge reverting``): a martingale plus an Ornstein-Uhlenbeck deviation
  (half-life 60 s); fading sharp 15 s moves earns after costs, nothing else does;
* **no edge** (``MES``, ``--edge none``): a martingale; every strategy loses its costs.

The seeds are the first two pairs tried. What the truth implies, per study: the no-edge
instrument promotes nothing in any fold; only the edge instrument is promoted; the edge
instrument is promoted in at least 3 of the 4 folds, only with 15 s ROCHE_SNAP families, and its
combined paper trade earns; its PBO is near 0 and, against worlds where no family is better than
another, significant (p <= 0.01); choosing the in-sample best family after costs earns out of
sample (probability of loss near 0) on the edge instrument and loses (near 1) on the no-edge one.

Measured over the 8 seed pairs (3, 4) … (17, 18) (docs/markets.md, "Overfitting, measured"): the
edge was promoted in 4, 3, 3, 2, 4, 4, 3, 4 of 4 folds (at 100 sessions, test blocks of 14:
3, 2, 3, 1, 2, 3, 2, 1), its PBO p was 0.005 (the smallest 200 worlds allow) on all 8. The
no-edge PBO is not asserted: its estimate ranged 0.06 to 0.73 and its p 0.005 to 0.87 (the test's
first pair has the lowest of both: gross of costs one of its 12 families earned $3.32 a trade over
351 trades, t 2.75, a fluke that persists across the whole window, and net of costs it still
lost, so nothing was promoted); only that its worlds without skill centre on 0.5. Its
probability of loss was 0.71 on that first pair and 1.00 on the other 7, the edge's 0.00 on all 8.
Every other assertion held on all 8.
"""

from __future__ import annotations

import json

import pytest

from tests.cli_runs import run_edgefinder

pytestmark = pytest.mark.slow

SEEDS = ((3, 4), (5, 6))


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    from edgefinder.markets.synth import SynthConfig, generate_atlas

    out = []
    for edge_seed, none_seed in SEEDS:
        root = tmp_path_factory.mktemp(f"wf{edge_seed}")
        generate_atlas(root / "edge", SynthConfig(sessions=200, seed=edge_seed, edge="reverting"))
        generate_atlas(root / "none", SynthConfig(sessions=200, seed=none_seed, edge="none"))
        proc = run_edgefinder(
            [
                "markets", "walk-forward",
                "--data", f"MNQ={root / 'edge'}",
                "--data", f"MES={root / 'none'}",
                "--folds", "4", "--scheme", "anchored", "--purge", "1", "--embargo", "1",
                "--workers", "2", "--out", str(root / "study"), "--format", "json",
            ],
            timeout=1800,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        doc = json.loads(proc.stdout)
        assert doc == json.loads((root / "study" / "study.json").read_text())
        out.append(doc)
    return out


def test_no_edge_promotes_nothing_and_only_the_edge_instrument_is_promoted(
    studies: list[dict],
) -> None:
    for doc in studies:
        none = doc["instruments"]["MES"]
        assert all(not f["production_templates"] for f in none["folds"]), none["folds"]
        assert none["paper_trades_total"] == 0
        assert doc["pooled"]["instruments_promoting"] == ["MNQ"]
        assert {r["instrument"] for r in doc["stability"]} == {"MNQ"}


def test_the_edge_is_promoted_in_most_folds_and_its_paper_trade_earns(studies: list[dict]) -> None:
    for doc in studies:
        edge = doc["instruments"]["MNQ"]
        assert edge["folds_promoting"] >= 3, [f["promoted_families"] for f in edge["folds"]]
        fams = {f for fold in edge["folds"] for f in fold["promoted_families"]}
        assert all(f.startswith("ROCHE_SNAP 15s ") for f in fams), fams
        assert edge["paper_pnl_total"] > 0 and edge["paper_trades_total"] >= 200
        assert edge["paper_equity"][-1][1] == pytest.approx(edge["paper_pnl_total"])
        assert edge["pbo"]["estimate"] <= 0.1 and edge["pbo"]["p_value"] <= 0.01
        assert edge["pbo"]["resamples"] == 200
        # choosing the in-sample best family after costs earns out of sample in every split
        assert edge["pbo"]["probability_of_loss"] <= 0.1, edge["pbo"]
        # every trial is in the ledger: Phase 3's parameter sets dominate the count
        assert doc["n_trials"] > 1000 and doc["trials_by_stage"]["selection"] >= 8


def test_no_edge_pbo_is_reported_against_worlds_without_skill(studies: list[dict]) -> None:
    for doc in studies:
        pbo = doc["instruments"]["MES"]["pbo"]
        assert pbo["configurations"] >= 8 and pbo["resamples"] == 200, pbo
        assert 0.0 <= pbo["estimate"] <= 1.0 and 1 / 201 <= pbo["p_value"] <= 1.0, pbo
        # 12 families: ties at the median are rare, so the worlds centre on 0.5
        assert 0.4 <= pbo["null_mean"] <= 0.6, pbo
        # whatever ranks best in-sample after costs loses out of sample in most splits
        assert pbo["loss_configurations"] >= 2 and pbo["probability_of_loss"] >= 0.5, pbo
