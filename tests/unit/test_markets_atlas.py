"""ATLAS store: resampling vs pandas, month files, session reads (DST), imports and their errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from edgefinder.markets import atlas
from edgefinder.markets.atlas import AtlasError, AtlasReadWarning
from edgefinder.markets.instruments import UnknownInstrument, get_instrument

T0 = 1_704_067_200  # 2024-01-01 00:00 UTC


def _ticks(n: int = 50_000, seed: int = 0, span_days: int = 75) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(T0, T0 + span_days * 86400, n))
    # gaps of several hours so that empty bars really occur
    ts = ts[(ts // 3600) % 24 != 5]
    price = 17000 + np.cumsum(rng.normal(0, 0.5, ts.size))
    return pd.DataFrame(
        {"timestamp": ts, "price": price, "volume": rng.integers(1, 9, ts.size).astype(float)}
    )


def _pandas_bars(ticks: pd.DataFrame, seconds: int) -> pd.DataFrame:
    idx = pd.to_datetime(ticks["timestamp"], unit="s")
    g = ticks.set_index(idx).resample(f"{seconds}s")
    ref = pd.DataFrame(
        {
            "open": g["price"].first(),
            "high": g["price"].max(),
            "low": g["price"].min(),
            "close": g["price"].last(),
            "volume": g["volume"].sum(),
            "n": g["price"].count(),
        }
    )
    ref = ref[ref["n"] > 0].drop(columns="n")
    ref.insert(0, "timestamp", ref.index.asi8 // 1_000_000_000)
    return ref.reset_index(drop=True)


@pytest.mark.parametrize("tf", ["15s", "1m", "1h", "1D"])
def test_resample_matches_pandas(tf: str) -> None:
    ticks = _ticks()
    got = atlas.resample(ticks, tf)
    ref = _pandas_bars(ticks, atlas.TIMEFRAMES[tf])
    pd.testing.assert_frame_equal(got, ref, check_dtype=False)
    assert np.all(got["timestamp"] % atlas.TIMEFRAMES[tf] == 0)


def test_resample_bars_to_bars_matches_pandas() -> None:
    ticks = _ticks(seed=3)
    m1 = atlas.resample(ticks, "1m")
    idx = pd.to_datetime(m1["timestamp"], unit="s")
    g = (
        m1.set_index(idx)
        .resample("300s")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    )
    g = g[m1.set_index(idx)["open"].resample("300s").count() > 0]
    got = atlas.resample(m1, "5m")
    np.testing.assert_array_equal(got["timestamp"], g.index.asi8 // 1_000_000_000)
    np.testing.assert_allclose(got[["open", "high", "low", "close", "volume"]], g.to_numpy())


def test_write_and_read_month_files(tmp_path: Path) -> None:
    bars = atlas.resample(_ticks(), "1m")
    paths = atlas.write_bars(tmp_path, "1m", bars)
    assert [p.name for p in paths] == ["2024_01.parquet", "2024_02.parquet", "2024_03.parquet"]
    back = atlas.read_bars(tmp_path, "1m")
    pd.testing.assert_frame_equal(back, bars, check_dtype=False)
    assert back["timestamp"].dtype == np.int64
    lo, hi = atlas.to_epoch_seconds("2024-02-03"), atlas.to_epoch_seconds(dt.datetime(2024, 2, 5))
    part = atlas.read_bars(tmp_path, "1m", "2024-02-03", dt.datetime(2024, 2, 5))
    exp = bars[(bars["timestamp"] >= lo) & (bars["timestamp"] < hi)].reset_index(drop=True)
    pd.testing.assert_frame_equal(part, exp, check_dtype=False)
    assert atlas.available_timeframes(tmp_path) == ["1m"]


def test_read_only_touches_needed_months(tmp_path: Path) -> None:
    bars = atlas.resample(_ticks(), "1m")
    atlas.write_bars(tmp_path, "1m", bars)
    # corrupt January: a February read must not open it, a full read warns and skips it
    (tmp_path / "1m" / "2024_01.parquet").write_bytes(b"not parquet at all")
    feb = atlas.read_bars(tmp_path, "1m", "2024-02-01", "2024-03-01")
    assert len(feb) > 0
    skipped: list[Path] = []
    with pytest.warns(AtlasReadWarning, match="2024_01.parquet"):
        full = atlas.read_bars(tmp_path, "1m", skipped=skipped)
    assert skipped == [tmp_path / "1m" / "2024_01.parquet"]
    assert full["timestamp"].min() >= atlas.to_epoch_seconds("2024-02-01")


def test_session_ids_and_bounds_across_dst() -> None:
    chicago = "America/Chicago"
    # 2024-03-10 is the US DST start (a Sunday): the Monday session opens Sun 17:00 CDT = 22:00 UTC
    start, end = atlas.session_bounds(dt.date(2024, 3, 11))
    assert pd.Timestamp(start, unit="s", tz="UTC") == pd.Timestamp("2024-03-10 17:00", tz=chicago)
    assert pd.Timestamp(end, unit="s", tz="UTC") == pd.Timestamp("2024-03-11 16:00", tz=chicago)
    assert end - start == 23 * 3600
    # winter: Thursday session opens Wed 17:00 CST = 23:00 UTC
    s2, _ = atlas.session_bounds("2024-01-04")
    assert s2 == atlas.to_epoch_seconds("2024-01-03 23:00")
    stamps = np.array(
        [
            pd.Timestamp("2024-03-10 16:59:59", tz=chicago),  # before the Monday session
            pd.Timestamp("2024-03-10 17:00", tz=chicago),
            pd.Timestamp("2024-03-11 15:59:45", tz=chicago),
            pd.Timestamp("2024-03-11 17:00", tz=chicago),
            pd.Timestamp("2024-11-03 17:00", tz=chicago),  # first session after DST end
            pd.Timestamp("2024-11-04 15:00", tz=chicago),
        ]
    )
    ts = np.array([int(t.timestamp()) for t in stamps])
    got = atlas.session_ids(ts).astype(str).tolist()
    assert got == [
        "2024-03-10",
        "2024-03-11",
        "2024-03-11",
        "2024-03-12",
        "2024-11-04",
        "2024-11-04",
    ]


def test_read_session_boundaries(tmp_path: Path) -> None:
    # one 15s bar every 15 s around the DST change
    start = atlas.to_epoch_seconds("2024-03-08 00:00")
    ts = np.arange(start, start + 5 * 86400, 15, dtype=np.int64)
    close = np.arange(ts.size, dtype=float)
    bars = pd.DataFrame(
        {"timestamp": ts, "open": close, "high": close, "low": close, "close": close, "volume": 1.0}
    )
    atlas.write_bars(tmp_path, "15s", bars)
    sess = atlas.read_session(tmp_path, "15s", dt.date(2024, 3, 11))
    first = pd.Timestamp(int(sess["timestamp"].iloc[0]), unit="s", tz="UTC").tz_convert(
        "America/Chicago"
    )
    last = pd.Timestamp(int(sess["timestamp"].iloc[-1]), unit="s", tz="UTC").tz_convert(
        "America/Chicago"
    )
    assert (first.hour, first.minute, first.day) == (17, 0, 10)
    assert (last.hour, last.minute, last.second, last.day) == (15, 59, 45, 11)
    assert len(sess) == 23 * 240
    assert set(atlas.session_ids(sess["timestamp"].to_numpy()).astype(str)) == {"2024-03-11"}


def test_build_atlas_from_iso_ticks_with_tz(tmp_path: Path) -> None:
    ticks = _ticks(n=20_000, span_days=40)
    local = (
        pd.to_datetime(ticks["timestamp"], unit="s", utc=True)
        .dt.tz_convert("America/Chicago")
        .dt.tz_localize(None)
    )
    src = tmp_path / "ticks.csv"
    pd.DataFrame(
        {
            "Timestamp": local.dt.strftime("%Y-%m-%dT%H:%M:%S"),
            "Price": ticks["price"],
            "Volume": ticks["volume"],
        }
    ).to_csv(src, index=False)
    out = tmp_path / "atlas"
    summary = atlas.build_atlas(src, out, tz="America/Chicago", timeframes="1m,15s,1h")
    assert summary["timeframe"].tolist() == ["15s", "1m", "1h"]
    got = atlas.read_bars(out, "1m")
    ref = atlas.resample(ticks, 60)
    np.testing.assert_array_equal(got["timestamp"], ref["timestamp"])
    np.testing.assert_allclose(
        got[["open", "high", "low", "close", "volume"]],
        ref[["open", "high", "low", "close", "volume"]],
    )
    assert summary.set_index("timeframe").loc["1m", "bars"] == len(ref)
    assert atlas.available_timeframes(out) == ["1h", "1m", "15s"]


def test_build_atlas_from_ms_epoch_parquet_bars(tmp_path: Path) -> None:
    m1 = atlas.resample(_ticks(), "1m")
    src = tmp_path / "bars.parquet"
    m1.assign(timestamp=m1["timestamp"] * 1000).to_parquet(src)
    out = tmp_path / "atlas"
    summary = atlas.build_atlas(src, out)
    # default: every timeframe that is a whole multiple of the 60 s source bars
    assert summary["timeframe"].tolist() == ["1m", "5m", "15m", "1h", "4h", "1D", "1W"]
    pd.testing.assert_frame_equal(atlas.read_bars(out, "1m"), m1, check_dtype=False)
    h4 = atlas.read_bars(out, "4h")
    pd.testing.assert_frame_equal(h4, atlas.resample(m1, "4h"), check_dtype=False)
    with pytest.raises(AtlasError, match="cannot build 15s"):
        atlas.build_atlas(src, out, timeframes="15s")


def test_build_atlas_real_eurusd_hourly(tmp_path: Path) -> None:
    import backtesting

    src = Path(backtesting.__file__).parent / "test" / "EURUSD.csv"
    summary = atlas.build_atlas(src, tmp_path)
    assert summary["timeframe"].tolist() == ["1h", "4h", "1D", "1W"]
    h1 = atlas.read_bars(tmp_path, "1h")
    raw = pd.read_csv(src)
    assert len(h1) == len(raw)
    assert h1["close"].iloc[-1] == pytest.approx(raw["Close"].iloc[-1])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("timestamp,open,high,low,close\n1704067200,1,1,1,1\n", "missing column 'volume'"),
        ("time_x,price,volume\n1,2,3\n", "missing column 'timestamp'"),
        ("timestamp,price,volume\n1704067260,1,1\n1704067200,1,1\n", "not in time order"),
        (
            "timestamp,price,volume\n2024-01-01T00:00:00,1,1\nnot-a-date,1,1\n",
            "malformed timestamp",
        ),
        ("timestamp,price,volume\n1704067200,abc,1\n", "malformed 'price'"),
        ('timestamp,price,volume\n"1704067200,1,1\n1,2\n', "malformed file"),
        ("timestamp,price\n1704067200,1\n,,,,\n", r"malformed file \(ParserError: .*saw 5\)$"),
    ],
)
def test_bad_sources_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    src = tmp_path / "bad_source.csv"
    src.write_text(content)
    with pytest.raises(AtlasError, match=message) as info:
        atlas.build_atlas(src, tmp_path / "out")
    assert "bad_source.csv" in str(info.value)
    assert "\n" not in str(info.value)


def test_corrupt_parquet_source_is_named(tmp_path: Path) -> None:
    src = tmp_path / "broken.parquet"
    src.write_bytes(b"PAR1 garbage")
    with pytest.raises(AtlasError, match=r"broken\.parquet: malformed file"):
        atlas.load_source(src)


def test_cli_atlas_build(tmp_path: Path) -> None:
    from edgefinder.markets.cli import markets_app

    src = tmp_path / "t.csv"
    _ticks(n=5000, span_days=3).to_csv(src, index=False)
    res = CliRunner().invoke(
        markets_app,
        [
            "atlas",
            "build",
            "--source",
            str(src),
            "--out",
            str(tmp_path / "a"),
            "--timeframes",
            "1m,5m",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "1m" in res.output and "5m" in res.output
    assert atlas.available_timeframes(tmp_path / "a") == ["5m", "1m"]


def test_instruments() -> None:
    mnq = get_instrument("mnq")
    assert (mnq.tick_size, mnq.tick_value, mnq.point_value) == (0.25, 0.5, 2.0)
    assert get_instrument("NQ").point_value == 20.0 and get_instrument("ES").tick_value == 12.5
    assert get_instrument("MES").point_value == 5.0
    assert mnq.round_trip_cost_dollars == pytest.approx(2 * (mnq.commission_per_side + 0.5))
    with pytest.raises(UnknownInstrument, match="unknown instrument 'XYZ'"):
        get_instrument("XYZ")
