"""Databento DBN sources for ``atlas build``: files written with Databento's own encoder
(``databento_dbn``) give the same ATLAS as the equivalent CSV; several files and directories
combine; bad DBN input is a one-line error naming the file."""

from __future__ import annotations

from pathlib import Path

import databento_dbn as dbn
import numpy as np
import pandas as pd
import pytest
import zstandard
from typer.testing import CliRunner

from edgefinder.cli import app
from edgefinder.markets import atlas
from edgefinder.markets.atlas import AtlasError, build_atlas

TFS = ["15s", "1m", "5m", "1h"]


def _ticks(n: int = 4000, seed: int = 3) -> pd.DataFrame:
    """ES-like trades: 0.25-point prices, bursts of several trades in one millisecond, a weekend gap."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-03-08 20:30", tz="UTC").value  # Friday, 14:30 Chicago
    gaps = rng.exponential(0.4e9, n).astype(np.int64) * (
        rng.random(n) > 0.3
    )  # 30 % share a timestamp
    ns = start + np.cumsum(gaps)
    ns[n // 2 :] += 2 * 86400 * 10**9  # the second half after the weekend (DST change included)
    price = 5100 + 0.25 * np.cumsum(rng.integers(-2, 3, n))
    return pd.DataFrame({"ns": ns, "price": price, "size": rng.integers(1, 20, n)})


def _meta(schema: dbn.Schema, start: int) -> bytes:
    m = dbn.Metadata(
        dataset="GLBX.MDP3",
        start=start,
        stype_in=dbn.SType.RAW_SYMBOL,
        stype_out=dbn.SType.INSTRUMENT_ID,
        schema=schema,
        symbols=["ESM4"],
    )
    return bytes(m.encode())


def _write_trades(
    path: Path, t: pd.DataFrame, *, zstd: bool = False, two_instruments: bool = False
) -> Path:
    recs = [
        bytes(
            dbn.TradeMsg(
                publisher_id=1,
                instrument_id=42 + (i % 2 if two_instruments else 0),
                ts_event=int(ns),
                price=int(round(p * dbn.FIXED_PRICE_SCALE)),
                size=int(s),
                action=dbn.Action.TRADE,
                side=dbn.Side.ASK,
                depth=0,
                ts_recv=int(ns),
            )
        )
        for i, (ns, p, s) in enumerate(zip(t["ns"], t["price"], t["size"], strict=True))
    ]
    data = _meta(dbn.Schema.TRADES, int(t["ns"].iloc[0])) + b"".join(recs)
    path.write_bytes(zstandard.ZstdCompressor().compress(data) if zstd else data)
    return path


def _write_ohlcv_1m(path: Path, bars: pd.DataFrame) -> Path:
    scale = dbn.FIXED_PRICE_SCALE
    recs = [
        bytes(
            dbn.OHLCVMsg(
                rtype=dbn.RType.OHLCV_1M,
                publisher_id=1,
                instrument_id=42,
                ts_event=int(ts) * 10**9,
                open=int(round(o * scale)),
                high=int(round(h * scale)),
                low=int(round(lo * scale)),
                close=int(round(c * scale)),
                volume=int(v),
            )
        )
        for ts, o, h, lo, c, v in bars[atlas.BAR_COLUMNS].itertuples(index=False)
    ]
    path.write_bytes(
        _meta(dbn.Schema.OHLCV_1M, int(bars["timestamp"].iloc[0]) * 10**9) + b"".join(recs)
    )
    return path


def _csv_of(t: pd.DataFrame, path: Path) -> Path:
    pd.DataFrame(
        {
            "timestamp": pd.to_datetime(t["ns"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "price": t["price"],
            "volume": t["size"],
        }
    ).to_csv(path, index=False)
    return path


def _atlas(root: Path) -> dict[str, pd.DataFrame]:
    return {tf: atlas.read_bars(root, tf) for tf in atlas.available_timeframes(root)}


def _same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    assert sorted(a) == sorted(b) and a
    for tf in a:
        assert len(a[tf]) > 0
        pd.testing.assert_frame_equal(a[tf], b[tf], check_exact=True)


@pytest.mark.parametrize("zstd", [False, True], ids=["dbn", "dbn.zst"])
def test_dbn_trades_give_the_same_atlas_as_the_csv(tmp_path: Path, zstd: bool) -> None:
    t = _ticks()
    src = _write_trades(tmp_path / ("es.dbn.zst" if zstd else "es.dbn"), t, zstd=zstd)
    build_atlas(_csv_of(t, tmp_path / "es.csv"), tmp_path / "from_csv", timeframes=TFS)
    summary = build_atlas(src, tmp_path / "from_dbn", timeframes=TFS)
    _same(_atlas(tmp_path / "from_csv"), _atlas(tmp_path / "from_dbn"))
    # and both equal an independent pandas resample of the ticks
    ref = (
        pd.DataFrame(
            {"price": t["price"].to_numpy(), "volume": t["size"].to_numpy().astype(float)},
            index=pd.to_datetime(t["ns"], utc=True),
        )
        .resample("1min")
        .agg({"price": ["first", "max", "min", "last"], "volume": "sum"})
        .dropna()
    )
    got = atlas.read_bars(tmp_path / "from_dbn", "1m")
    assert len(got) == len(ref) == int(summary.set_index("timeframe").loc["1m", "bars"])
    np.testing.assert_array_equal(
        got[["open", "high", "low", "close", "volume"]].to_numpy(), ref.to_numpy()
    )


def test_dbn_ohlcv_gives_the_same_atlas_as_the_csv(tmp_path: Path) -> None:
    bars = atlas.resample(
        pd.DataFrame(
            {
                "timestamp": _ticks()["ns"] // 10**9,
                "price": _ticks()["price"],
                "volume": _ticks()["size"].astype(float),
            }
        ),
        60,
    )
    bars.to_csv(tmp_path / "bars.csv", index=False)
    _write_ohlcv_1m(tmp_path / "bars.dbn", bars)
    build_atlas(tmp_path / "bars.csv", tmp_path / "a")
    summary = build_atlas(tmp_path / "bars.dbn", tmp_path / "b")
    _same(_atlas(tmp_path / "a"), _atlas(tmp_path / "b"))
    # the schema states the bar length: no timeframe finer than 1m is built
    assert summary["timeframe"].tolist() == ["1m", "5m", "15m", "1h", "4h", "1D", "1W"]
    one = _write_ohlcv_1m(tmp_path / "one.dbn", bars.iloc[:1])
    assert build_atlas(one, tmp_path / "c")["timeframe"].iloc[0] == "1m"


def test_several_files_and_a_directory_equal_one_file(tmp_path: Path) -> None:
    t = _ticks()
    cut = len(t) // 3
    while t["ns"].iloc[cut] // 10**9 == t["ns"].iloc[cut - 1] // 10**9:
        cut += 1  # split between seconds
    d = tmp_path / "parts"
    d.mkdir()
    _write_trades(d / "a.dbn", t.iloc[:cut])
    _write_trades(d / "b.dbn.zst", t.iloc[cut:], zstd=True)
    (d / "README.txt.bak").write_text("not a source")
    build_atlas(_write_trades(tmp_path / "all.dbn", t), tmp_path / "one", timeframes=TFS)
    build_atlas(d, tmp_path / "dir", timeframes=TFS)
    # given in reverse order: files are put in time order
    build_atlas([d / "b.dbn.zst", d / "a.dbn"], tmp_path / "list", timeframes=TFS)
    one = _atlas(tmp_path / "one")
    _same(one, _atlas(tmp_path / "dir"))
    _same(one, _atlas(tmp_path / "list"))
    # CSV and DBN parts of one instrument mix
    build_atlas(
        [_csv_of(t.iloc[:cut], tmp_path / "a.csv"), d / "b.dbn.zst"],
        tmp_path / "mixed",
        timeframes=TFS,
    )
    _same(one, _atlas(tmp_path / "mixed"))


def test_cli_takes_repeated_sources(tmp_path: Path) -> None:
    t = _ticks(1500)
    a = _write_trades(tmp_path / "a.dbn", t.iloc[:700])
    b = _write_trades(tmp_path / "b.dbn", t.iloc[700:])
    res = CliRunner().invoke(
        app,
        [
            "markets",
            "atlas",
            "build",
            "--source",
            str(a),
            "--source",
            str(b),
            "--out",
            str(tmp_path / "atlas"),
            "--timeframes",
            "1m,5m",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "a.dbn, b.dbn" in res.output
    build_atlas(_write_trades(tmp_path / "all.dbn", t), tmp_path / "ref", timeframes=["1m", "5m"])
    _same(_atlas(tmp_path / "atlas"), _atlas(tmp_path / "ref"))


def _err(src: object, tmp_path: Path, **kw: object) -> str:
    with pytest.raises(AtlasError) as exc:
        build_atlas(src, tmp_path / "out", **kw)  # type: ignore[arg-type]
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_bad_dbn_input_is_one_line_naming_the_file(tmp_path: Path) -> None:
    t = _ticks(300)
    garbage = tmp_path / "junk.dbn"
    garbage.write_bytes(b"DBN\x02 this is not a DBN stream")
    assert "junk.dbn: malformed DBN file" in _err(garbage, tmp_path)
    good = _write_trades(tmp_path / "good.dbn", t)
    truncated = tmp_path / "cut.dbn"
    truncated.write_bytes(good.read_bytes()[:-7])
    assert "cut.dbn" in _err(truncated, tmp_path)
    assert "good.dbn: DBN timestamps are UTC" in _err(good, tmp_path, tz="America/Chicago")
    two = _write_trades(tmp_path / "two.dbn", t, two_instruments=True)
    assert "two.dbn: holds 2 instruments" in _err(two, tmp_path)
    overlap = _write_trades(tmp_path / "late.dbn", t.iloc[100:])
    assert "overlapping sources" in _err([good, overlap], tmp_path)
    bars = atlas.resample(
        pd.DataFrame({"timestamp": t["ns"] // 10**9 + 10**6, "price": t["price"], "volume": 1.0}),
        60,
    )
    ohlcv = _write_ohlcv_1m(tmp_path / "bars.dbn", bars)
    assert "one kind per build" in _err([good, ohlcv], tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "empty: no" in _err(empty, tmp_path)
