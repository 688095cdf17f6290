"""The correlation job: features -> every test -> BH over the run -> causal estimates -> one stored run.

:func:`run_correlation_job` reads the round features (:func:`~edgefinder.esports.aggregate.extract_round_features`),
runs

* point-biserial r of every feature against ``round_win`` and ``site_executed``,
* Spearman rho of every feature against ``econ_delta`` (dollars),
* chi-square (Cramér's V) of every intent count (binned 0 / 1 / 2+) against the two binary outcomes,
* logistic regression of each binary outcome on each feature **adjusted for the pre-round
  covariates** (side, bank, loadouts and the match state: score difference, previous result, loss
  streak); the feature and covariates are standardized so the effect is the log odds ratio per
  standard deviation of the feature,
* every CI and p-value above **clustered by match** (rounds of one match are not independent),
* for every intent count, the causal effect of the binarized count (T = count > median; "at least
  one" when the median is 0) on ``round_win`` comparing a team with its own rounds of the same
  match (``aipw_within``: :func:`~edgefinder.stats.causal.within_unit_effect`, Mundlak terms,
  cross-fitted and clustered by match), beside the naive between-team AIPW on the same covariates
  (``aipw_naive``, comparison only: outside the BH family, never significant),
* for every intent's opening-phase count (signals before the round's first kill), the
  exposure-aware round-level effect on ``round_win`` (``opening_within``, per opening signal, within
  a team's match: :mod:`edgefinder.esports.exposure`),
* a Benjamini-Hochberg correction over all other tests of the run (q-values),
* the refutation checks (placebo, random common cause, half of the matches) of the significant
  within-match effects (``JobParams.refute='all'``: of every one) and each effect's verdict (``correlation_results.verdict``: robust, fragile, not
  significant), with E-values,
* the second design (``JobParams.action_values``, :mod:`edgefinder.esports.design`): the round
  win-probability model of each game fit and stored, every action valued in win-probability points,
  and one verdict per intent from both designs (in the run's ``summary.verdicts``),

and writes one ``analysis_runs`` row and all its ``correlation_results`` and ``action_values`` rows
in one transaction.
Rows whose feature is the outcome by the rules of the game carry ``outcome_mechanism`` = true
(:mod:`edgefinder.esports.mechanisms`) and are never top findings.

Layout: the battery of tests is :mod:`edgefinder.esports.battery` (:func:`compute_results`), the
row shape and :class:`JobParams` :mod:`edgefinder.esports.resultrows`, the run lock and queue
:mod:`edgefinder.esports.runs`; this module runs and stores a job and re-exports their public
names, so callers import them from here as before.

Populations: ``site_executed`` is analysed on attacking team-rounds only (defenders never execute a
site, so the outcome has no variation on defense and ``side`` would separate it perfectly); the
other outcomes use every finished team-round.

Effects by method (``correlation_results.effect``, always signed so ``direction`` is its sign):
``point_biserial`` r; ``spearman`` rho; ``chi2`` Cramér's V (unsigned; direction taken from the
point-biserial r of the same pair); ``logistic`` log odds ratio per SD of the feature (odds ratio
and its CI in ``details``); ``aipw_within`` / ``aipw_naive`` average treatment effect in probability
points.

**Run lifecycle** (``analysis_runs.status``): ``queued`` (POST /run-analysis put it on the Celery
broker) → ``running`` → ``succeeded`` | ``failed`` (with ``error``). A run started directly (CLI, beat,
Python, the API without a broker) starts at ``running``. ``trigger`` says who started it, ``worker``
which process (host:pid) runs it, ``db_queries``/``db_seconds`` what it asked of the database.

**One job at a time**, across processes: on Postgres a session advisory lock (held by a dedicated
connection for the whole job, released by the server if the process dies); on SQLite an atomic
conditional INSERT (or UPDATE of the queued row) of the ``running`` row (SQLite serializes writers).
A second job raises :class:`JobAlreadyRunning`. A run whose process died is marked failed
(:func:`reap_abandoned`): on Postgres when nobody holds the lock, on SQLite when its process is gone
or after ``stale_after_s`` (default 10 minutes); :func:`queue_run` refuses while a run is queued or
running.

After each run :mod:`edgefinder.esports.postrun` computes alerts, keeps the feature frame and
publishes insights (see there). The original system calls ``asyncio.run(run_correlation_job())``;
the job is synchronous (CPU-bound statistics): ``edgefinder.analytics.jobs.run_correlation_job`` is
that awaitable, and ``await arun_correlation_job()`` here runs it in a thread
(:func:`asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pandas as pd
from sqlalchemy import (
    Engine,
    event,
    insert,
    update,
)

from edgefinder import DISCLAIMER, PURPOSE
from edgefinder.errors import first_line
from edgefinder.esports.aggregate import (
    extract_round_features,
)
from edgefinder.esports.battery import (
    COVARIATE_EFFECTS,
    _causal_rows,
    compute_results,
    not_available,
    top_findings,
)
from edgefinder.esports.contract import ResultRow
from edgefinder.esports.design import DesignVerdicts, store_values, value_and_combine
from edgefinder.esports.mechanisms import kill_derived_intents
from edgefinder.esports.postrun import after_run
from edgefinder.esports.resultrows import (
    CAUSAL_METHODS,
    MATCH_CODE,
    NAIVE_METHOD,
    OPENING_METHOD,
    RESULT_COLUMNS,
    UNIT_COL,
    WITHIN_METHOD,
    JobParams,
    JobResult,
)
from edgefinder.esports.runs import (
    ABANDONED,
    QUEUED_EXPIRES_S,
    JobAlreadyRunning,
    RunLock,
    _now,
    acquire_run,
    fail_queued,
    queue_run,
    reap_abandoned,
    worker_id,
)
from edgefinder.jsonsafe import finite_or_none, jsonable
from edgefinder.settings import Settings, get_settings
from edgefinder.store.engine import make_engine
from edgefinder.store.tables import analysis_runs, correlation_results

__all__ = [
    "ABANDONED",
    "CAUSAL_METHODS",
    "COVARIATE_EFFECTS",
    "MATCH_CODE",
    "NAIVE_METHOD",
    "OPENING_METHOD",
    "QUEUED_EXPIRES_S",
    "RESULT_COLUMNS",
    "UNIT_COL",
    "WITHIN_METHOD",
    "_causal_rows",
    "JobAlreadyRunning",
    "JobParams",
    "JobResult",
    "RunLock",
    "acquire_run",
    "arun_correlation_job",
    "compute_results",
    "not_available",
    "fail_queued",
    "queue_run",
    "reap_abandoned",
    "run_correlation_job",
    "top_findings",
    "worker_id",
]


class _QueryCounter:
    """Counts the SQL statements one thread issues on an engine, and their time (seconds)."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.thread = engine, threading.get_ident()
        self.queries, self.seconds, self._t0 = 0, 0.0, 0.0

    def _before(self, *_: Any) -> None:
        if threading.get_ident() == self.thread:
            self._t0 = time.perf_counter()

    def _after(self, *_: Any) -> None:
        if threading.get_ident() == self.thread:
            self.queries += 1
            self.seconds += time.perf_counter() - self._t0

    def __enter__(self) -> _QueryCounter:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *_: Any) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)


# --------------------------------------------------------------------------------- the job


def _finish(
    lock: RunLock,
    status: str,
    *,
    results: pd.DataFrame | None,
    n_rows: int,
    message: str,
    error: str | None = None,
    queries: _QueryCounter | None = None,
    design: DesignVerdicts | None = None,
    missing: dict[str, str] | None = None,
) -> float:
    duration = time.perf_counter() - lock.started
    n_tests = 0 if results is None else int(len(results))
    n_sig = 0 if results is None else int(results["significant"].sum())
    summary: dict[str, Any] = {
        "message": message,
        "n_significant": n_sig,
        "not_available": missing or {},
        "purpose": PURPOSE,
        "disclaimer": DISCLAIMER,
    }
    if results is not None and n_tests:
        top = top_findings(results, 5)
        summary["top"] = [
            {
                k: r[k]
                for k in ("feature", "outcome", "method", "effect", "ci_low", "ci_high", "q_value")
            }
            for r in top.to_dict(orient="records")
        ]
    if design is not None:
        summary.update(design.summary())
    with lock.engine.begin() as tx:
        if design is not None:
            store_values(tx, lock.run_id, design.values)
        if results is not None and n_tests:
            # pandas turns None into NaN in float columns; Postgres would store NaN (not NULL)
            records = [
                {str(k): (finite_or_none(v) if isinstance(v, float) else v) for k, v in rec.items()}
                for rec in results.assign(run_id=lock.run_id).to_dict(orient="records")
            ]
            for rec in records:  # the typed contract: a row of the wrong shape fails the run here
                ResultRow.model_validate({k: rec.get(k) for k in RESULT_COLUMNS})
            tx.execute(insert(correlation_results), records)
        # the statements so far, the results' INSERT included (the final UPDATE stores the count)
        db = (
            {"db_queries": queries.queries, "db_seconds": queries.seconds}
            if queries is not None
            else {}
        )
        tx.execute(
            update(analysis_runs)
            .where(analysis_runs.c.run_id == lock.run_id)
            .values(
                status=status,
                finished_at=_now(),
                duration_s=duration,
                n_rows=n_rows,
                n_tests=n_tests,
                summary=jsonable(summary),
                error=error,
                **db,
            )
        )
    return duration


def run_correlation_job(
    engine: Engine | str | None = None,
    settings: Settings | None = None,
    *,
    params: JobParams | None = None,
    lock: RunLock | None = None,
    progress: Callable[[str], None] | None = None,
    trigger: str = "python",
) -> JobResult:
    """Run the whole job once and store it; see the module docstring.

    ``engine``: an Engine or URL (default: ``settings.effective_database_url``). ``lock``: a lock
    already taken with :func:`acquire_run` (the API and the Celery task take it first); without it
    the job takes one (stored with ``trigger``) and raises :class:`JobAlreadyRunning` if another job
    runs. A database without finished rounds gives a succeeded run with zero tests and a message.

    After the run is stored, :func:`edgefinder.esports.postrun.after_run` compares it with the
    previous run (alerts), keeps its feature frame, publishes insights and hands alerts to the
    webhook; none of that can fail or delay the stored run (errors are logged).
    """
    settings = settings or get_settings()
    own_engine = False
    if lock is not None:
        eng = lock.engine
    elif isinstance(engine, Engine):
        eng = engine
    else:
        eng = make_engine(engine if isinstance(engine, str) else settings.effective_database_url)
        own_engine = True
    try:
        lock = lock or acquire_run(eng, params, trigger=trigger)
        params = lock.params
        features: pd.DataFrame | None = None
        try:
            with _QueryCounter(eng) as queries:
                if progress:
                    progress("extracting round features")
                features = extract_round_features(eng)
                missing = not_available(features) if not features.empty else {}
                design = None
                if features.empty:
                    message = "no finished rounds in the database: ingest events first (edgefinder esports ingest)"
                    results = pd.DataFrame(columns=[*RESULT_COLUMNS, "purpose"])
                else:
                    results = compute_results(
                        features, params, progress, kill_derived=kill_derived_intents(eng)
                    )
                    if params.action_values:
                        if progress:
                            progress("win-probability models and action values")
                        design = value_and_combine(
                            eng, results, seed=params.seed, alpha=params.alpha
                        )
                    n_sig = int(results["significant"].sum())
                    message = (
                        f"{len(features)} team-rounds, {len(results)} tests, "
                        f"{n_sig} significant at q < {params.alpha:g}"
                    )
                if progress:
                    progress("storing results")
                duration = _finish(
                    lock,
                    "succeeded",
                    results=results if len(results) else None,
                    n_rows=len(features),
                    message=message,
                    queries=queries,
                    design=design,
                    missing=missing,
                )
            out = JobResult(
                lock.run_id,
                "succeeded",
                len(features),
                len(results),
                int(results["significant"].sum()),
                duration,
                message,
                results,
                not_available=missing,
                action_values=None if design is None else design.values,
                verdicts=None if design is None else design.verdicts,
            )
        except BaseException as exc:
            error = f"{type(exc).__name__}: {first_line(exc)}"
            try:
                _finish(lock, "failed", results=None, n_rows=0, message="failed", error=error)
            except Exception:
                pass
            lock.release()
            after_run(eng, lock.run_id, settings)
            raise
        lock.release()
        n_alerts = after_run(eng, lock.run_id, settings, features=features)
        return replace(out, n_alerts=n_alerts)
    finally:
        if lock is not None:
            lock.release()
        if own_engine:
            eng.dispose()


async def arun_correlation_job(
    engine: Engine | str | None = None,
    settings: Settings | None = None,
    *,
    params: JobParams | None = None,
    trigger: str = "python",
) -> JobResult:
    """Awaitable :func:`run_correlation_job` (runs in a worker thread): ``asyncio.run(arun_correlation_job())``."""
    return await asyncio.to_thread(
        run_correlation_job, engine, settings, params=params, trigger=trigger
    )
