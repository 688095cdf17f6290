"""Benchmark: seconds for one full correlation job over N rounds, with the win-probability model fit and the action values (goal: <= 30 s for 20,000 rounds).

Setup (not timed): simulate matches with planted effects (edgefinder.esports.simulate) until at least
``--rounds`` rounds exist, keep the first ``--rounds`` rounds, and insert them directly, in batches,
into a fresh SQLite file (default) or a fresh Postgres database (``--pg-admin postgresql://...``).
Timed: ``run_correlation_job`` (feature extraction in SQL, every test clustered by match, BH, the
within-match and the naive AIPW of each of the nine intents, the refutation checks — placebo, random
common cause, half of the matches — of the significant within-match effects (``--refute all``: of
all nine), the round win-probability model (fit on the earlier 70 % of the matches, held-out
metrics with 500 match resamples, stored) and the action values of every signal, one batched
insert of the results), plus its parts; then the model's held-out metrics beside the baseline's.
``--no-action-values`` times the job without the model (the figure before it existed). The clustered intervals come from influence functions summed by match,
so there is no bootstrap loop to time.

    .venv/bin/python bench/esports_analysis.py [--rounds 20000] [--seed 0] [--pg-admin URL]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path


def _part(label: str) -> str:
    """Short name of a progress message of the job."""
    for key, name in (
        ("extracting", "features"),
        ("win-probability", "winprob fit + action values"),
        ("refutation", "refutations"),
        ("causal", "tests + causal"),
        ("storing", "store"),
    ):
        if key in label:
            return name
    return label


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20_000, help="rounds (each gives two team-rows)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--pg-admin", default=None, help="Postgres admin URL: benchmark on a fresh Postgres DB"
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="timed jobs (the machine may be shared: min and median)",
    )
    ap.add_argument(
        "--refute",
        choices=("all", "significant", "none"),
        default="significant",
        help="which within-match effects get the refutation checks (JobParams.refute)",
    )
    ap.add_argument(
        "--no-action-values",
        action="store_true",
        help="skip the win-probability model and the action values (JobParams.action_values)",
    )
    args = ap.parse_args()

    from edgefinder.esports.aggregate import extract_round_features
    from edgefinder.esports.jobs import JobParams, run_correlation_job
    from edgefinder.esports.simulate import simulate
    from edgefinder.esports.synthdb import load_units
    from edgefinder.store.engine import make_engine
    from edgefinder.store.migrate import upgrade

    t0 = time.perf_counter()
    sim = simulate(max(1, int(args.rounds / 21.5) + 10), seed=args.seed)
    units = sim.units
    keys = units[["match_id", "round_no"]].drop_duplicates().head(args.rounds)
    units = units.merge(keys, on=["match_id", "round_no"])
    from edgefinder.store.engine import temporary_database

    with ExitStack() as stack:
        if args.pg_admin:
            url = stack.enter_context(
                temporary_database(args.pg_admin, f"ef_bench_{uuid.uuid4().hex[:8]}")
            )
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            url = f"sqlite:///{Path(tmp, 'bench.sqlite3').as_posix()}"
        upgrade(url)
        engine = make_engine(url)
        counts = load_units(engine, units, seed=args.seed)
        setup = time.perf_counter() - t0
        print(f"setup (simulate + batched insert, not timed): {setup:.1f} s; rows: {counts}")

        t = time.perf_counter()
        feats = extract_round_features(engine)
        t_feat = time.perf_counter() - t
        backend = "postgres" if args.pg_admin else "sqlite"
        print(
            f"backend: {backend}; rounds: {keys.shape[0]}; team-rows: {len(feats)}; signals: {counts['micro_actions']}"
        )
        print(f"extract_round_features alone: {t_feat:.2f} s")
        walls, cpus = [], []
        for i in range(max(1, args.repeat)):
            marks: list[tuple[str, float]] = []
            c0 = time.process_time()
            start = time.perf_counter()
            res = run_correlation_job(
                engine,
                params=JobParams(
                    seed=args.seed, refute=args.refute, action_values=not args.no_action_values
                ),
                progress=lambda s, marks=marks: marks.append((s, time.perf_counter())),
            )
            total = time.perf_counter() - start
            cpu = time.process_time() - c0
            walls.append(total)
            cpus.append(cpu)
            stamps = [m[1] for m in marks] + [start + total]
            parts = "; ".join(
                f"{_part(label)}: {nxt - at:.2f} s"
                for (label, at), nxt in zip(marks, stamps[1:], strict=True)
            )
            print(
                f"run {i + 1}: {total:.2f} s wall, {cpu:.2f} s CPU ({parts}); {res.n_tests} tests, {res.n_significant} significant"
            )
        walls.sort()
        print(
            f"full run_correlation_job over {keys.shape[0]:,} rounds: min {walls[0]:.2f} s, median {walls[len(walls) // 2]:.2f} s "
            f"wall (CPU median {sorted(cpus)[len(cpus) // 2]:.2f} s; refute={args.refute}) "
            f"on {os.cpu_count()} cores, "
            f"load average {os.getloadavg()[0]:.1f}; goal <= 30 s"
        )
        from rich.console import Console

        from edgefinder.esports.winprob.metrics import METRICS, Metric
        from edgefinder.esports.winprob.store import latest_models
        from edgefinder.esports.winprob.tables import METRIC_LABEL

        for game, m in latest_models(engine).items():
            print(
                f"win-probability model {m.model_version} ({game}): {m.n_rounds:,} rounds, "
                f"held out {m.metrics['n_matches']} matches / {m.metrics['n']:,} states"
            )
            for k in METRICS:
                a, b = Metric(**m.metrics[k]), Metric(**m.baseline_metrics[k])
                Console().print(
                    f"  {METRIC_LABEL[k]:26s} model {a.estimate:.4f} [{a.ci_low:.4f}, {a.ci_high:.4f}]"
                    f"  baseline {b.estimate:.4f} [{b.ci_low:.4f}, {b.ci_high:.4f}]",
                    highlight=False,
                )
        engine.dispose()


if __name__ == "__main__":
    main()
