"""Parquet export for ML training: ``edgefinder esports export --out DIR [--since DATE]``.

Three datasets under ``DIR`` (pyarrow datasets, hive-partitioned, one directory per date):

* ``features/match_date=YYYY-MM-DD/part-0.parquet``: one row per (round, team), exactly the columns
  of :func:`~edgefinder.esports.aggregate.extract_round_features` plus the ``match_date`` partition;
* ``micro_actions/match_date=…/``: the stored motion signals (``player_hash`` is the HMAC pseudonym
  written at ingest; raw player ids never reach the tables this reads), ``features`` as JSON text;
* ``correlation_results/run_date=…/``: every stored test result, ``details`` as JSON text. Results
  belong to runs, not matches, so they are partitioned by the UTC date the run stored them.

The match date is the UTC date of the match's MATCH_START timestamp (``matches.started_at``), or of
its first stored row when the match has none. ``--since DATE`` keeps match dates (run dates) on or
after DATE. Exporting again replaces the partitions it writes and leaves the others.

Every file's Parquet key-value metadata carries ``purpose`` ("research/ops"), ``disclaimer`` (not
for betting), ``dataset``, ``edgefinder_version`` and ``exported_at``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from sqlalchemy import Connection, Engine, func, select, union_all

from edgefinder import DISCLAIMER, PURPOSE, __version__
from edgefinder.esports.aggregate import extract_round_features
from edgefinder.esports.materialize import MICRO_COLS
from edgefinder.store.engine import make_engine
from edgefinder.store.tables import correlation_results, macro_outcomes, matches, micro_actions

__all__ = ["DATASETS", "ExportedDataset", "export_datasets", "parquet_bytes", "with_metadata"]

DATASETS: tuple[str, ...] = ("features", "correlation_results", "micro_actions")
# every stored column of a signal: what ingest writes, then when it was stored
_MICRO_COLUMNS = (*MICRO_COLS, "created_at")


@dataclass(frozen=True)
class ExportedDataset:
    """One written dataset: its directory, rows and files."""

    name: str
    path: Path
    rows: int
    files: int


def with_metadata(table: pa.Table, dataset: str, **extra: str) -> pa.Table:
    """``table`` with the purpose, disclaimer and provenance in its schema (Parquet key-value) metadata."""
    meta = {
        "purpose": PURPOSE,
        "disclaimer": DISCLAIMER,
        "dataset": dataset,
        "edgefinder_version": __version__,
        "exported_at": datetime.now(UTC).isoformat(),
        **extra,
    }
    encoded = {k.encode(): v.encode() for k, v in meta.items()}
    return table.replace_schema_metadata({**(table.schema.metadata or {}), **encoded})


def parquet_bytes(df: pd.DataFrame, dataset: str, **extra: str) -> bytes:
    """One Parquet file (zstd) of ``df`` with the metadata of :func:`with_metadata`, as bytes."""
    buf = io.BytesIO()
    pq.write_table(
        with_metadata(pa.Table.from_pandas(df, preserve_index=False), dataset, **extra),
        buf,
        compression="zstd",
    )
    return buf.getvalue()


def _utc_date(ts: Any) -> date | None:
    if ts is None or pd.isna(ts):
        return None
    t = pd.Timestamp(ts)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.date()


def match_dates(conn: Connection) -> dict[str, date | None]:
    """Match id -> UTC date of MATCH_START, or of the match's first stored outcome or signal."""
    first = union_all(
        *[
            select(t.c.match_id, func.min(t.c.created_at).label("t")).group_by(t.c.match_id)
            for t in (macro_outcomes, micro_actions)
        ]
    ).subquery()
    stored: dict[str, Any] = {
        r[0]: r[1]
        for r in conn.execute(
            select(first.c.match_id, func.min(first.c.t)).group_by(first.c.match_id)
        )
    }
    m = matches.c
    started: dict[str, Any] = {
        r[0]: r[1]
        for r in conn.execute(select(m.match_id, m.started_at).where(m.started_at.is_not(None)))
    }
    return {m: _utc_date(started.get(m, t)) for m, t in stored.items()}


def _write(table: pa.Table, base: Path, partition: str) -> int:
    part = pads.partitioning(pa.schema([(partition, pa.date32())]), flavor="hive")
    pads.write_dataset(
        table,
        base,
        format="parquet",
        partitioning=part,
        basename_template="part-{i}.parquet",
        existing_data_behavior="delete_matching",
        # a few thousand rows: one thread is as fast, and leaves none of Arrow's writer threads
        # running when the CLI exits (a pyarrow process can abort at exit if one still is)
        use_threads=False,
        file_options=pads.ParquetFileFormat().make_write_options(compression="zstd"),
    )
    return len(list(base.rglob("*.parquet")))


def _arrow(df: pd.DataFrame, dataset: str, partition: str) -> pa.Table:
    table = pa.Table.from_pandas(df, preserve_index=False)
    idx = table.schema.get_field_index(partition)
    table = table.set_column(idx, partition, table.column(partition).cast(pa.date32()))
    return with_metadata(table, dataset)


def _json_text(values: pd.Series) -> list[str | None]:
    return [None if v is None else json.dumps(v, allow_nan=False, default=str) for v in values]


def export_datasets(
    source: Engine | str,
    out: str | Path,
    *,
    since: date | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[ExportedDataset]:
    """Write the three datasets under ``out`` (see the module docstring); returns what was written."""
    engine = make_engine(source) if isinstance(source, str) else source
    out = Path(out)
    written = []
    try:
        with engine.connect() as conn:
            dates = match_dates(conn)

        def dated(df: pd.DataFrame) -> pd.DataFrame:
            df = df.assign(match_date=pd.to_datetime(df["match_id"].map(dates)))
            if since is not None:
                df = df.loc[df["match_date"] >= pd.Timestamp(since)]
            return df.reset_index(drop=True)

        if progress:
            progress("features")
        feats = dated(extract_round_features(engine))
        written.append(_dataset("features", feats, out, "match_date"))

        if progress:
            progress("micro_actions")
        with engine.connect() as conn:
            stmt = select(*[micro_actions.c[k] for k in _MICRO_COLUMNS]).order_by(
                micro_actions.c.signal_id
            )
            res = conn.execute(stmt)
            # rows as tuples, which pandas makes of them anyway (the stubs take no Sequence rows)
            rows = [tuple(r) for r in res.fetchall()]
            micro = pd.DataFrame.from_records(rows, columns=list(_MICRO_COLUMNS))
        micro["features"] = _json_text(micro["features"])
        written.append(_dataset("micro_actions", dated(micro), out, "match_date"))

        if progress:
            progress("correlation_results")
        with engine.connect() as conn:
            cr = correlation_results
            stmt = select(cr).order_by(cr.c.id)
            if since is not None:
                stmt = stmt.where(
                    cr.c.created_at >= datetime(since.year, since.month, since.day, tzinfo=UTC)
                )
            res = conn.execute(stmt)
            rows = [tuple(r) for r in res.fetchall()]
            results = pd.DataFrame.from_records(rows, columns=list(res.keys()))
        results["details"] = _json_text(results["details"])
        results["run_date"] = pd.to_datetime(
            [_utc_date(t) for t in results["created_at"]]  # type: ignore[arg-type]  # pandas-stubs: no None (NaT)
        )
        written.append(_dataset("correlation_results", results, out, "run_date"))
    finally:
        if isinstance(source, str):
            engine.dispose()
    return written


def _dataset(name: str, df: pd.DataFrame, out: Path, partition: str) -> ExportedDataset:
    base = out / name
    if df.empty:
        base.mkdir(parents=True, exist_ok=True)
        return ExportedDataset(name, base, 0, len(list(base.rglob("*.parquet"))))
    files = _write(_arrow(df, name, partition), base, partition)
    return ExportedDataset(name, base, len(df), files)
