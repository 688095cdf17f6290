"""The original module layout (``app.analytics.*``) as a thin layer over :mod:`edgefinder.esports`.

Why: docs/decisions.md §D13. Code written against the original README (its examples are kept
verbatim, and run, in ``tests/integration/test_seed_readme.py``) runs with ``app.analytics``
replaced by ``edgefinder.analytics``:

============================  ==============================================================
``stream_ingest``             ``pg_connect()``, ``await consume_micro(pool)``
``canonical_ingest``          ``await consume_canonical(pool)``
``aggregate``                 ``await extract_round_features(pool)`` (asyncpg pool, URL or Engine)
``stats``                     point_biserial, chi2_feature_counts, logistic_model, multiple_test_correction
``causal``                    compute_propensity, weighted_outcome_diff, propensity_adjusted_effect
``jobs``                      ``await run_correlation_job()``, Celery tasks ``run_correlation_job_task``
                              and ``start_analytics_consumers``
``api``                       ``router`` (``/api/v1/analytics``), ``create_app``
============================  ==============================================================

Every function here calls the same code as the ``edgefinder.esports`` modules; the only additions
are the original call shapes: awaitables where the original awaits, and a "pool" argument that may be an
asyncpg pool, a database URL or an SQLAlchemy Engine.
"""
