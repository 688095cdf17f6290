"""The ATLAS: a multi-timeframe OHLCV bar store on disk, plus resampling and import.

Layout: ``{root}/{tf}/YYYY_MM.parquet`` — one file per UTC calendar month (of the bar open) per
timeframe. Columns: ``timestamp`` (int64, epoch **seconds** UTC, bar **open**), ``open``, ``high``,
``low``, ``close`` (float64, price in points), ``volume`` (float64, contracts).

Bar time is ``floor(ts / interval) * interval`` on the epoch-seconds axis (so 1D bars open at
00:00 UTC and 1W bars on Thursdays 00:00 UTC, as the original ATLAS did). A "day" in the markets
pipeline is a CME trading session, 17:00–16:00 America/Chicago, labelled by the date it ends; see
:func:`session_ids` and :func:`read_session`.

Reading never loads months outside the requested range, and a corrupt month file is named in an
:class:`AtlasReadWarning` and skipped rather than failing the whole read.
"""

from __future__ import annotations

import datetime as _dt
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from edgefinder.errors import EdgefinderError
from edgefinder.files import expand_paths

TIMEFRAMES: dict[str, int] = {
    "1s": 1,
    "5s": 5,
    "15s": 15,
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "1h": 3600,
    "4h": 14400,
    "1D": 86400,
    "1W": 604800,
}
DISCOVERY_ORDER: list[str] = ["1D", "4h", "1h", "15m", "5m", "1m", "15s", "5s", "1s"]
BAR_COLUMNS: list[str] = ["timestamp", "open", "high", "low", "close", "volume"]

CME_TZ = ZoneInfo("America/Chicago")
SESSION_OPEN = _dt.time(17, 0)  # previous calendar day, Chicago wall clock
SESSION_CLOSE = _dt.time(16, 0)  # label day, Chicago wall clock

_MONTH_FILE = re.compile(r"^(\d{4})_(\d{2})\.parquet$")
_SCHEMA = pa.schema(
    [
        ("timestamp", pa.int64()),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("volume", pa.float64()),
    ]
)


class AtlasError(EdgefinderError):
    """A source file or ATLAS request is unusable (message names the file)."""


class AtlasReadWarning(UserWarning):
    """A corrupt ATLAS month file was skipped while reading (message names the file)."""


# --------------------------------------------------------------------------------------------
# timeframes and time helpers
# --------------------------------------------------------------------------------------------


def tf_seconds(tf: str) -> int:
    """Seconds per bar of timeframe ``tf`` (e.g. ``"15s"`` -> 15); AtlasError if unknown."""
    try:
        return TIMEFRAMES[tf]
    except KeyError:
        raise AtlasError(f"unknown timeframe {tf!r}; known: {', '.join(TIMEFRAMES)}") from None


def parse_timeframes(text: str | Sequence[str] | None) -> list[str] | None:
    """Parse ``"15s,1m,5m"`` (or a list) into known timeframe names sorted finest first."""
    if text is None:
        return None
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    for t in items:
        tf_seconds(t)
    return sorted(dict.fromkeys(items), key=tf_seconds)


def to_epoch_seconds(value: object, tz: str | None = None) -> int:
    """Epoch seconds (UTC) of an int/float (already seconds), datetime, date, numpy or text time.

    Naive datetimes/text are read in ``tz`` (default UTC).
    """
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(np.floor(value))
    if isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
        value = _dt.datetime.combine(value, _dt.time())
    if not isinstance(value, (str, _dt.datetime, np.datetime64)):
        raise TypeError(f"cannot read {value!r} ({type(value).__name__}) as a time")
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize(tz or "UTC")
    return int(ts.value // 1_000_000_000)


def _session_date(session_date: object) -> _dt.date:
    if isinstance(session_date, _dt.datetime):
        return session_date.date()
    if isinstance(session_date, _dt.date):
        return session_date
    # pandas-stubs leave out None, which pandas reads as NaT (how a report shows a missing date)
    return pd.Timestamp(session_date).date()  # type: ignore[arg-type]


def session_bounds(session_date: object) -> tuple[int, int]:
    """[start, end) epoch seconds of the CME session that ends on ``session_date``.

    Start is 17:00 America/Chicago on the previous calendar day, end 16:00 Chicago on the day
    (DST handled by the zone database, so the UTC length is 23 h except on DST-change days).
    """
    d = _session_date(session_date)
    start = _dt.datetime.combine(d - _dt.timedelta(days=1), SESSION_OPEN, tzinfo=CME_TZ)
    end = _dt.datetime.combine(d, SESSION_CLOSE, tzinfo=CME_TZ)
    return int(start.timestamp()), int(end.timestamp())


def session_start(value: object, flag: str = "--train-until") -> int | None:
    """A session boundary given by a user, as epoch seconds (an exclusive bound on bar opens), or None.

    A date (``YYYY-MM-DD`` text or ``datetime.date``) is the start of the CME session that ends on
    that date, so whole sessions fall on either side; a date-time (ISO text or ``datetime``) or
    epoch seconds are taken literally, naive = UTC. Text goes through the date flags' one parser
    (:func:`edgefinder.dates.parse_date`); ``flag`` names the option in its error message.
    """
    from edgefinder.dates import parse_date

    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = parse_date(value, flag, with_time=True)
    if isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
        return session_bounds(value)[0]
    try:
        return to_epoch_seconds(value)
    except (ValueError, TypeError) as exc:
        raise AtlasError(f"cannot read {flag} {value!r}: use YYYY-MM-DD ({exc})") from None


def session_ids(timestamps: np.ndarray) -> np.ndarray:
    """CME session date (``datetime64[D]``) of each epoch-second timestamp.

    A session runs 17:00–16:00 America/Chicago and is labelled by the date it ends, so shifting
    Chicago wall-clock time by +7 h maps the whole session onto its label date.
    """
    ts = np.asarray(timestamps, dtype=np.int64)
    if ts.size == 0:
        return np.empty(0, dtype="datetime64[D]")
    # tz conversion is done only on the distinct UTC hours (offsets change on whole hours), which is
    # much cheaper than converting every 15s bar.
    hours, inv = np.unique(ts // 3600, return_inverse=True)
    local = (
        pd.DatetimeIndex(hours * 3600 * 1_000_000_000, tz="UTC")
        .tz_convert(CME_TZ)
        .tz_localize(None)
        .values.view(np.int64)
        // 1_000_000_000
    )
    offset = local - hours * 3600  # local - utc, seconds
    local_s = ts + offset[inv.reshape(-1)]
    return ((local_s + 7 * 3600) // 86400).astype("datetime64[D]")


# --------------------------------------------------------------------------------------------
# resampling
# --------------------------------------------------------------------------------------------


def resample(data: pd.DataFrame, interval: int | str) -> pd.DataFrame:
    """Aggregate ticks or bars into bars of ``interval`` seconds (or a timeframe name).

    ``data`` needs ``timestamp`` (epoch seconds, non-decreasing) and ``volume`` plus either
    ``price`` (ticks) or ``open/high/low/close`` (bars). Bar time = floor(ts/interval)*interval;
    open=first, high=max, low=min, close=last, volume=sum; empty bars do not appear.
    Vectorized with ``np.ufunc.reduceat`` over the run boundaries of the integer bins.
    """
    seconds = tf_seconds(interval) if isinstance(interval, str) else int(interval)
    if seconds <= 0:
        raise AtlasError(f"resample interval must be positive seconds, got {interval!r}")
    ts = np.asarray(data["timestamp"], dtype=np.int64)
    if "open" in data.columns:
        o = np.asarray(data["open"], dtype=np.float64)
        h = np.asarray(data["high"], dtype=np.float64)
        lo = np.asarray(data["low"], dtype=np.float64)
        c = np.asarray(data["close"], dtype=np.float64)
    else:
        o = h = lo = c = np.asarray(data["price"], dtype=np.float64)
    v = np.asarray(data["volume"], dtype=np.float64)
    if ts.size == 0:
        return empty_bars()
    if np.any(np.diff(ts) < 0):
        raise AtlasError("resample needs non-decreasing timestamps")
    bins = (ts // seconds) * seconds
    starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
    ends = np.r_[starts[1:], ts.size] - 1
    return pd.DataFrame(
        {
            "timestamp": bins[starts],
            "open": o[starts],
            "high": np.maximum.reduceat(h, starts),
            "low": np.minimum.reduceat(lo, starts),
            "close": c[ends],
            "volume": np.add.reduceat(v, starts),
        }
    )


def empty_bars() -> pd.DataFrame:
    """An empty bar frame with the ATLAS columns and dtypes."""
    return _SCHEMA.empty_table().to_pandas()


# --------------------------------------------------------------------------------------------
# reading and writing
# --------------------------------------------------------------------------------------------


def _month_key(ts: np.ndarray) -> np.ndarray:
    """year*12 + (month-1) of each UTC epoch second."""
    months = ts.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)  # since 1970-01
    return months


def write_bars(root: str | Path, tf: str, bars: pd.DataFrame) -> list[Path]:
    """Write ``bars`` of timeframe ``tf`` into ``{root}/{tf}/YYYY_MM.parquet`` (one file a month).

    Each written month file is replaced entirely (months not present in ``bars`` are untouched).
    Returns the written paths in month order.
    """
    tf_seconds(tf)
    out = Path(root) / tf
    out.mkdir(parents=True, exist_ok=True)
    df = bars[BAR_COLUMNS]
    ts = np.asarray(df["timestamp"], dtype=np.int64)
    if ts.size == 0:
        return []
    if np.any(np.diff(ts) <= 0):
        df = df.sort_values("timestamp", kind="stable").drop_duplicates("timestamp", keep="last")
        ts = np.asarray(df["timestamp"], dtype=np.int64)
    table = pa.Table.from_pandas(
        df.astype(
            {
                "timestamp": np.int64,
                "open": np.float64,
                "high": np.float64,
                "low": np.float64,
                "close": np.float64,
                "volume": np.float64,
            }
        ),
        schema=_SCHEMA,
        preserve_index=False,
    )
    months = _month_key(ts)
    starts = np.flatnonzero(np.r_[True, months[1:] != months[:-1]])
    ends = np.r_[starts[1:], ts.size]
    paths = []
    for s, e in zip(starts, ends):
        m = int(months[s])
        path = out / f"{1970 + m // 12:04d}_{m % 12 + 1:02d}.parquet"
        pq.write_table(table.slice(int(s), int(e - s)), path, compression="zstd")
        paths.append(path)
    return paths


def month_files(root: str | Path, tf: str) -> list[Path]:
    """The month files of timeframe ``tf`` in time order (empty list if the timeframe is absent)."""
    d = Path(root) / tf
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if _MONTH_FILE.match(p.name))


def available_timeframes(root: str | Path) -> list[str]:
    """Timeframes with at least one month file, in DISCOVERY_ORDER (coarsest first)."""
    return [tf for tf in DISCOVERY_ORDER if month_files(root, tf)]


def read_bars(
    root: str | Path,
    tf: str,
    start: object | None = None,
    end: object | None = None,
    *,
    skipped: list[Path] | None = None,
) -> pd.DataFrame:
    """Bars of ``tf`` with bar-open ``start <= timestamp < end`` (epoch s or any datetime), sorted.

    Only the month files that overlap the range are opened, and rows are filtered inside the
    Parquet reader. A corrupt file raises an :class:`AtlasReadWarning` naming it, is skipped, and
    (if given) appended to ``skipped``.
    """
    tf_seconds(tf)
    lo = None if start is None else to_epoch_seconds(start)
    hi = None if end is None else to_epoch_seconds(end)
    lo_m = None if lo is None else int(_month_key(np.array([lo]))[0])
    hi_m = None if hi is None else int(_month_key(np.array([hi - 1]))[0])
    filters = []
    if lo is not None:
        filters.append(("timestamp", ">=", lo))
    if hi is not None:
        filters.append(("timestamp", "<", hi))
    tables = []
    for path in month_files(root, tf):
        mt = _MONTH_FILE.match(path.name)
        assert mt is not None
        m = (int(mt.group(1)) - 1970) * 12 + int(mt.group(2)) - 1
        if (lo_m is not None and m < lo_m) or (hi_m is not None and m > hi_m):
            continue
        try:
            t = pq.read_table(path, columns=BAR_COLUMNS, filters=filters or None)
            t = t.cast(_SCHEMA)
        except Exception as exc:
            warnings.warn(
                f"skipping corrupt ATLAS file {path}: {exc}", AtlasReadWarning, stacklevel=2
            )
            if skipped is not None:
                skipped.append(path)
            continue
        tables.append(t)
    if not tables:
        return empty_bars()
    df = pa.concat_tables(tables).to_pandas()
    ts = df["timestamp"].to_numpy()
    if ts.size > 1 and np.any(np.diff(ts) <= 0):
        df = df.sort_values("timestamp", kind="stable").reset_index(drop=True)
    return df


def read_session(
    root: str | Path, tf: str, session_date: object, *, skipped: list[Path] | None = None
) -> pd.DataFrame:
    """Bars of ``tf`` whose open lies in the CME session ending on ``session_date``."""
    lo, hi = session_bounds(session_date)
    return read_bars(root, tf, lo, hi, skipped=skipped)


# --------------------------------------------------------------------------------------------
# import (atlas build)
# --------------------------------------------------------------------------------------------

_TS_ALIASES = ("timestamp", "time", "datetime", "date", "ts", "date_time")
#: File names ``atlas build`` reads (a directory source contributes its files with these endings).
SOURCE_SUFFIXES = (".csv", ".csv.gz", ".txt", ".parquet", ".pq", ".dbn", ".dbn.zst")
#: Databento OHLCV schemas and their bar length (seconds).
DBN_OHLCV_SECONDS = {"ohlcv-1s": 1, "ohlcv-1m": 60, "ohlcv-1h": 3600, "ohlcv-1d": 86400}


def _is_dbn(path: Path) -> bool:
    return path.name.lower().endswith((".dbn", ".dbn.zst"))


def _read_dbn(path: Path) -> pd.DataFrame:
    """A Databento DBN file (plain or zstd) of the trades or an OHLCV schema, via ``databento``.

    Prices are DBN fixed-point (1e-9 units) and become points; ``timestamp`` is ``ts_event``
    (epoch nanoseconds UTC: the trade, or the bar's open). ``attrs["bar_seconds"]`` carries an
    OHLCV schema's bar length. One instrument per file: the ATLAS holds one series.
    """
    import databento as db
    from databento_dbn import FIXED_PRICE_SCALE, UNDEF_PRICE

    try:
        store = db.DBNStore.from_file(path)
        schema = str(store.schema) if store.schema is not None else "mixed"
        records = store.to_ndarray() if schema == "trades" or schema in DBN_OHLCV_SECONDS else None
    except Exception as exc:
        detail = " ".join(str(exc).split())
        raise AtlasError(f"{path}: malformed DBN file ({type(exc).__name__}: {detail})") from exc
    if records is None:
        raise AtlasError(
            f"{path}: DBN schema {schema!r} is not supported (use trades or "
            f"{', '.join(DBN_OHLCV_SECONDS)})"
        )
    # databento stops silently at a cut-off last record; the records' own lengths (in 4-byte
    # words, DBN header) must add up to the bytes after the metadata block
    reader = store.reader
    head = reader.read(8)
    body = sum(len(chunk) for chunk in iter(lambda: reader.read(1 << 20), b""))
    body -= int.from_bytes(head[4:8], "little")
    expected = int(records["length"].astype(np.int64).sum()) * 4 if len(records) else 0
    if body != expected:
        raise AtlasError(
            f"{path}: truncated DBN file ({body - expected} bytes after the last whole record)"
        )
    ids = np.unique(records["instrument_id"])
    if ids.size > 1:
        raise AtlasError(
            f"{path}: holds {ids.size} instruments (ids {', '.join(map(str, ids[:5]))}"
            f"{', …' if ids.size > 5 else ''}); the ATLAS is one instrument: export one symbol per file"
        )
    cols = ["price"] if schema == "trades" else ["open", "high", "low", "close"]
    out: dict[str, np.ndarray] = {"timestamp": records["ts_event"].astype(np.int64)}
    for c in cols:
        raw = records[c].astype(np.int64)
        undef = np.flatnonzero(raw == UNDEF_PRICE)
        if undef.size:
            raise AtlasError(f"{path}: undefined {c} (DBN UNDEF_PRICE) at record {int(undef[0])}")
        out[c] = raw / FIXED_PRICE_SCALE
    out["volume"] = records["size" if schema == "trades" else "volume"].astype(np.float64)
    df = pd.DataFrame(out)
    if schema in DBN_OHLCV_SECONDS:
        df.attrs["bar_seconds"] = DBN_OHLCV_SECONDS[schema]
    return df


def _read_source(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise AtlasError(f"{path}: source file not found")
    suffix = path.suffix.lower()
    if _is_dbn(path):
        return _read_dbn(path)
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        elif suffix in (".csv", ".txt", ".gz"):
            df = pd.read_csv(path)
        else:
            raise AtlasError(
                f"{path}: unsupported file type {suffix!r} (use .csv, .parquet or .dbn[.zst])"
            )
    except AtlasError:
        raise
    except Exception as exc:
        detail = " ".join(
            str(exc).split()
        )  # pandas messages end in a newline: keep the error one line
        raise AtlasError(f"{path}: malformed file ({type(exc).__name__}: {detail})") from exc
    if df.index.name is not None or isinstance(df.index, pd.DatetimeIndex):
        df = df.reset_index()
    df.columns = [str(c).strip().lower() for c in df.columns]
    return df


def _pick_timestamp_column(df: pd.DataFrame, path: Path) -> str:
    for name in _TS_ALIASES:
        if name in df.columns:
            return name
    # pandas writes the index of a saved frame as an unnamed first column (e.g. backtesting's EURUSD)
    first = df.columns[0] if len(df.columns) else None
    if first is not None and (first == "" or first.startswith("unnamed") or first == "index"):
        return first
    raise AtlasError(f"{path}: missing column 'timestamp' (found: {', '.join(df.columns)})")


def _parse_timestamps(col: pd.Series, path: Path, tz: str | None) -> np.ndarray:
    """Epoch nanoseconds (int64, UTC) of a numeric (s/ms/us/ns by magnitude) or text/datetime column."""
    if col.isna().any():
        row = int(np.flatnonzero(col.isna().to_numpy())[0])
        raise AtlasError(f"{path}: empty timestamp at row {row}")
    if pd.api.types.is_bool_dtype(col):
        raise AtlasError(f"{path}: malformed timestamp column (booleans)")
    if pd.api.types.is_numeric_dtype(col):
        vals = col.to_numpy(dtype=np.float64)
        mag = float(np.nanmax(np.abs(vals))) if vals.size else 0.0
        # Magnitudes for dates 1973..2286: s < 1e10 <= ms < 1e13 <= us < 1e16 <= ns.
        if mag >= 1e16:
            return col.to_numpy(dtype=np.int64)
        scale = 1_000 if mag >= 1e13 else 1_000_000 if mag >= 1e10 else 1_000_000_000
        if pd.api.types.is_integer_dtype(col):
            return col.to_numpy(dtype=np.int64) * scale
        return np.round(vals * scale).astype(np.int64)
    if pd.api.types.is_datetime64_any_dtype(col):
        dt = pd.DatetimeIndex(col)
    else:
        text = col.astype(str)
        try:
            parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
        except (ValueError, TypeError):  # e.g. mixed time-zone offsets
            parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
        bad = np.flatnonzero(pd.isna(parsed).to_numpy())
        if bad.size:
            row = int(bad[0])
            raise AtlasError(
                f"{path}: malformed timestamp {text.iloc[row]!r} at row {row} "
                "(expected epoch s/ms/ns or ISO 8601 text)"
            )
        dt = pd.DatetimeIndex(parsed)
    if dt.tz is None:
        if tz:
            try:
                dt = dt.tz_localize(tz, ambiguous="infer", nonexistent="raise")
            except Exception as exc:
                raise AtlasError(
                    f"{path}: cannot localize times to {tz!r} ({type(exc).__name__}: {exc})"
                ) from exc
        else:
            dt = dt.tz_localize("UTC")
    elif tz:
        raise AtlasError(f"{path}: timestamps already carry a time zone; drop --tz")
    return dt.tz_convert("UTC").as_unit("ns").values.view(np.int64).copy()


def load_source(source: str | Path, tz: str | None = None) -> tuple[pd.DataFrame, bool]:
    """Read and validate a ticks/bars CSV, Parquet or Databento DBN file.

    Returns ``(frame, is_ticks)`` where frame has int64 ``timestamp`` (epoch seconds, floored),
    ``volume`` and ``price`` (ticks) or ``open/high/low/close`` (bars); ``frame.attrs
    ["bar_seconds"]`` is set when the file states its bar length (DBN OHLCV schemas). Raises
    AtlasError naming the file for a malformed file, a missing column, a bad value or
    non-monotonic time.
    """
    path = Path(source)
    if tz:
        try:
            ZoneInfo(tz)
        except Exception:
            raise AtlasError(f"unknown time zone {tz!r}") from None
        if _is_dbn(path):
            raise AtlasError(f"{path}: DBN timestamps are UTC nanoseconds; drop --tz")
    df = _read_source(path)
    bar_seconds = df.attrs.get("bar_seconds")
    if df.empty:
        raise AtlasError(f"{path}: no rows")
    ts_col = _pick_timestamp_column(df, path)
    is_ticks = "price" in df.columns and not {"open", "high", "low", "close"} <= set(df.columns)
    price_cols = ["price"] if is_ticks else ["open", "high", "low", "close"]
    for name in price_cols + ["volume"]:
        if name not in df.columns:
            raise AtlasError(
                f"{path}: missing column {name!r} (need timestamp, price or open/high/low/close, "
                f"volume; found: {', '.join(df.columns)})"
            )
    ns = _parse_timestamps(df[ts_col], path, tz)
    bad = np.flatnonzero(np.diff(ns) < 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise AtlasError(
            f"{path}: timestamps not in time order (row {i} is earlier than row {i - 1})"
        )
    out = {"timestamp": np.floor_divide(ns, 1_000_000_000)}
    for name in price_cols + ["volume"]:
        vals = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64)
        nonfinite = ~np.isfinite(vals)
        if nonfinite.any():
            row = int(np.flatnonzero(nonfinite)[0])
            raise AtlasError(
                f"{path}: malformed {name!r} value {df[name].iloc[row]!r} at row {row}"
            )
        out[name] = vals
    frame = pd.DataFrame(out)
    if not is_ticks:
        o, h, lo, c = (frame[k].to_numpy() for k in ("open", "high", "low", "close"))
        bad_rows = np.flatnonzero((h < np.maximum(o, c)) | (lo > np.minimum(o, c)))
        if bad_rows.size:
            raise AtlasError(
                f"{path}: high/low inconsistent with open/close at row {int(bad_rows[0])}"
            )
    if bar_seconds:
        frame.attrs["bar_seconds"] = int(bar_seconds)
    return frame, is_ticks


def source_files(sources: str | Path | Sequence[str | Path]) -> list[Path]:
    """The files of ``sources``: files as given, directories' readable files (sorted, not recursive);
    :class:`AtlasError` for a path that does not exist or a directory without any."""
    items = [sources] if isinstance(sources, (str, Path)) else list(sources)
    if not items:
        raise AtlasError("no source given")
    return expand_paths(items, SOURCE_SUFFIXES, AtlasError)


def load_sources(
    sources: str | Path | Sequence[str | Path], tz: str | None = None
) -> tuple[pd.DataFrame, bool, int]:
    """Read several files of one instrument into one time-ordered frame.

    Every file must hold the same kind (all ticks, or all bars of one length); files are put in
    the order of their first timestamp and may not overlap in time (a later file starts at or
    after the second the previous one ends, for bars strictly after). Returns ``(frame,
    is_ticks, base_seconds)``: 1 for ticks, the bar length (seconds) for bars.
    """
    parts = []
    for path in source_files(sources):
        frame, is_ticks = load_source(path, tz)
        ts = frame["timestamp"].to_numpy()
        base = 1 if is_ticks else int(frame.attrs.get("bar_seconds") or _source_resolution(ts))
        parts.append((int(ts[0]), int(ts[-1]), path, frame, is_ticks, base))
    parts.sort(key=lambda x: (x[0], str(x[2])))
    first = parts[0]
    for prev, cur in zip(parts, parts[1:]):
        if cur[4] != first[4] or cur[5] != first[5]:
            kind = lambda x: "ticks" if x[4] else f"{x[5]}-second bars"  # noqa: E731
            raise AtlasError(
                f"{cur[2]}: holds {kind(cur)}, but {first[2]} holds {kind(first)}: one kind per build"
            )
        if cur[0] < prev[1] or (cur[0] == prev[1] and not cur[4]):
            raise AtlasError(
                f"{cur[2]}: starts at {pd.Timestamp(cur[0], unit='s', tz='UTC')}, before {prev[2]} "
                f"ends ({pd.Timestamp(prev[1], unit='s', tz='UTC')}): overlapping sources"
            )
    frame = pd.concat([x[3] for x in parts], ignore_index=True) if len(parts) > 1 else first[3]
    return frame, first[4], first[5]


def _source_resolution(ts: np.ndarray) -> int:
    """Bar length of a bar file: the smallest positive spacing (seconds)."""
    d = np.diff(ts)
    d = d[d > 0]
    return int(d.min()) if d.size else 86400


def build_atlas(
    source: str | Path | Sequence[str | Path],
    out: str | Path,
    tz: str | None = None,
    timeframes: Sequence[str] | str | None = None,
    *,
    progress: Callable[[str, int, int], None] | None = None,
) -> pd.DataFrame:
    """Import ticks or bars (CSV, Parquet or Databento DBN; files or directories) into an ATLAS.

    ``source`` is one path or several (see :func:`load_sources` for how files combine).
    Ticks feed every requested timeframe (default: all of 1s..1W). Bars feed the timeframes that
    are whole multiples of the file's bar length (default: all of those); asking for a finer or
    incompatible timeframe is an AtlasError. Each timeframe is resampled from the source in one
    vectorized pass. ``progress(tf, done, total)`` is called after each timeframe.
    Summary columns: timeframe, seconds, bars, files, first (UTC), last (UTC).
    """
    label = str(source) if isinstance(source, (str, Path)) else ", ".join(map(str, source))
    frame, is_ticks, base = load_sources(source, tz)
    wanted = parse_timeframes(timeframes)
    if wanted is None:
        wanted = [tf for tf, s in TIMEFRAMES.items() if s >= base and s % base == 0]
        if not wanted:
            raise AtlasError(f"{label}: bar length {base}s is coarser than every ATLAS timeframe")
    for tf in wanted:
        s = TIMEFRAMES[tf]
        if s < base or s % base:
            raise AtlasError(
                f"{label}: cannot build {tf} bars from {base}-second source bars "
                f"(timeframes must be whole multiples of the source bar length)"
            )
    rows = []
    for k, tf in enumerate(wanted, 1):
        bars = resample(frame, TIMEFRAMES[tf])
        files = write_bars(out, tf, bars)
        first = (
            pd.Timestamp(int(bars["timestamp"].iloc[0]), unit="s", tz="UTC") if len(bars) else None
        )
        last = (
            pd.Timestamp(int(bars["timestamp"].iloc[-1]), unit="s", tz="UTC") if len(bars) else None
        )
        rows.append(
            {
                "timeframe": tf,
                "seconds": TIMEFRAMES[tf],
                "bars": len(bars),
                "files": len(files),
                "first": first,
                "last": last,
            }
        )
        if progress is not None:
            progress(tf, k, len(wanted))
    return pd.DataFrame(rows)


def write_all_timeframes(
    root: str | Path, base_bars: pd.DataFrame, base_tf: str, timeframes: Iterable[str] | None = None
) -> dict[str, int]:
    """Write ``base_bars`` (timeframe ``base_tf``) and every coarser timeframe resampled from it.

    Returns ``{tf: bar count}``. Used by the synthetic generator.
    """
    base = tf_seconds(base_tf)
    tfs = (
        list(timeframes)
        if timeframes is not None
        else [tf for tf, s in TIMEFRAMES.items() if s >= base and s % base == 0 and tf != "1W"]
    )
    counts = {}
    for tf in sorted(tfs, key=tf_seconds):
        bars = base_bars if tf == base_tf else resample(base_bars, TIMEFRAMES[tf])
        write_bars(root, tf, bars)
        counts[tf] = len(bars)
    return counts
