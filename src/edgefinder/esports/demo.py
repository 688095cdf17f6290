"""Esports part of ``edgefinder demo``: simulate -> ingest (JSONL, SQLite) -> analyze -> findings.

Everything lives under ``settings.data_dir/demo/``: the events file with its ground truth and a
demo SQLite database that is rebuilt on every run (the demo never writes into the user's own
database). About 60 matches (~1,300 rounds) keep it well under a minute.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgefinder.esports.contract import details_of
from edgefinder.settings import Settings

DEMO_MATCHES = 60
DEMO_SEED = 7


def _fmt(v: float | None) -> str:
    return (
        "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{float(v):+.3f}"
    )


def run(
    settings: Settings, console: Console, *, matches: int = DEMO_MATCHES, seed: int = DEMO_SEED
) -> Path:
    """Run the esports pipeline on simulated data; returns the demo database path."""
    from edgefinder.esports.ingest import make_pipeline, run_ingest
    from edgefinder.esports.jobs import WITHIN_METHOD, JobParams, run_correlation_job
    from edgefinder.esports.report import causal_table, findings_table
    from edgefinder.esports.simulate import simulate_to_file, truth_path

    demo_dir = Path(settings.data_dir) / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    events = demo_dir / "esports_events.jsonl"
    db = demo_dir / "esports_demo.sqlite3"
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)
    url = f"sqlite:///{db.as_posix()}"

    t0 = time.perf_counter()
    sim = simulate_to_file(matches, seed, events)
    console.print(
        f"1. simulated {matches} matches ({sim.truth['rounds']:,} rounds): {sim.n_canonical:,} game events + "
        f"{sim.n_signals:,} motion signals -> {events} (truth: {truth_path(events).name})"
    )
    t1 = time.perf_counter()
    pipeline = make_pipeline(url, settings.pseudonym_key.get_secret_value())
    try:
        counters = run_ingest(pipeline, from_file=events)
    finally:
        pipeline.engine.dispose()
    t2 = time.perf_counter()
    console.print(
        f"2. ingested {counters.canonical:,} canonical events and {counters.signals:,} signals into {db.name} "
        f"({counters.dead_letters} dead letters) in {t2 - t1:.1f} s"
    )
    result = run_correlation_job(url, params=JobParams(seed=seed))
    console.print(f"3. correlation job: {result.message} in {result.duration_s:.1f} s")
    if result.n_tests == 0:
        return db
    console.print(causal_table(result.results))
    console.print(findings_table(result.results, 10))

    # What the simulator planted, next to what the job found (the demo knows the truth; real data does not).
    truth = Table(
        title="Planted effects (simulator truth) vs the job's adjusted estimate",
        title_justify="left",
    )
    for col in (
        "feature",
        "outcome",
        "true ATE",
        "within-match ATE [95% CI]",
        "verdict",
        "naive diff",
        "q",
    ):
        truth.add_column(col, justify="left" if col in ("feature", "outcome") else "right")
    res = result.results
    for p in sim.truth.get("planted_effects", []):
        pair = (res["feature"] == p["feature"]) & (res["outcome"] == p["outcome"])
        hit = res[pair & (res["method"] == WITHIN_METHOD)]
        if hit.empty:  # site_executed has no causal row: show the adjusted logistic test instead
            hit = res[
                (res["feature"] == p["feature"])
                & (res["outcome"] == p["outcome"])
                & (res["method"] == "logistic")
            ]
        if hit.empty:
            continue
        r = hit.iloc[0]
        est = f"{_fmt(r['effect'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
        if r["method"] != WITHIN_METHOD:
            est += " (log-OR/SD)"
        q = r["q_value"]
        truth.add_row(
            p["feature"],
            p["outcome"],
            _fmt(p.get("true_ate")),
            est,
            r.get("verdict") or "—",
            _fmt(details_of(r["details"]).naive),
            "—" if q is None or not math.isfinite(q) else f"{q:.1e}",
        )
    console.print(truth)
    console.print(
        f"[dim]esports demo done in {time.perf_counter() - t0:.1f} s. Results are for research/ops only — "
        "not for gambling or real-money betting.[/dim]"
    )
    return db
