"""Phase 4 guards, the result block with its power statement, and checkpoint helpers that need no ATLAS."""

from __future__ import annotations

import io
import json
import os
import pickle
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from edgefinder.jsonsafe import jsonable
from edgefinder.markets._io import atomic_pickle, atomic_write_text
from edgefinder.markets.forward import ForwardError, check_against_training
from edgefinder.markets.summary import sample_block
from edgefinder.markets.views import print_block

TRAINED_UNTIL = 1_709_247_600  # 2024-02-29 23:00 UTC: start of the CME session ending 2024-03-01
TFS = ["5m", "1m", "15s"]


def _state(tmp_path: Path, train_until: int | None, timeframes: list[str] | None = TFS) -> Path:
    disc: dict = {"train_until": train_until}
    if timeframes is not None:
        disc["timeframes"] = timeframes
    (tmp_path / "state.json").write_text(json.dumps({"version": 1, "phases": {"discovery": disc}}))
    return tmp_path


def test_train_until_earlier_than_training_is_refused(tmp_path) -> None:
    """Sessions that fed the playbook must never be labelled out-of-sample."""
    ck = _state(tmp_path, TRAINED_UNTIL)
    with pytest.raises(ForwardError, match="earlier than the 2024-02-29 23:00 UTC"):
        check_against_training(ck, TRAINED_UNTIL - 86_400, TFS)
    # the same split, a later one (more sessions in-sample) and the recorded default are fine
    for t in (TRAINED_UNTIL, TRAINED_UNTIL + 86_400, None):
        check_against_training(ck, t, TFS)


def test_train_until_after_training_on_all_data_is_refused(tmp_path) -> None:
    ck = _state(tmp_path, None)
    with pytest.raises(ForwardError, match="learned from all the data"):
        check_against_training(ck, TRAINED_UNTIL, TFS)
    check_against_training(ck, None, TFS)


def test_hierarchy_must_be_the_one_templates_were_learned_with(tmp_path) -> None:
    ck = _state(tmp_path, TRAINED_UNTIL)
    with pytest.raises(ForwardError, match="differs from the hierarchy"):
        check_against_training(ck, None, ["15m", *TFS])
    check_against_training(
        _state(tmp_path, TRAINED_UNTIL, None), None, ["15m", *TFS]
    )  # nothing recorded


def test_no_record_checks_nothing(tmp_path) -> None:
    """A library made elsewhere (no state.json): what a record would refuse passes, nothing written."""
    early, other = TRAINED_UNTIL - 86_400, ["15m", *TFS]
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    _state(recorded, TRAINED_UNTIL)
    for args in ((early, TFS), (TRAINED_UNTIL, other)):
        with pytest.raises(ForwardError):
            check_against_training(recorded, *args)
    bare = tmp_path / "bare"
    bare.mkdir()
    for args in ((early, TFS), (TRAINED_UNTIL, other)):
        assert check_against_training(bare, *args) is None
    assert list(bare.iterdir()) == []


def test_final_block_prints_negative_money_with_the_sign_first() -> None:
    buf = io.StringIO()
    trades = pd.DataFrame({"pnl": [-10.0, 2.5, -3.0, -2.0], "template_id": [1, 1, 2, 2]})
    block = sample_block(trades, 3, [-10.0, -0.5, -2.0], 9)
    print_block(Console(file=buf, width=200), "Out-of-sample sessions", block)
    text = buf.getvalue()
    for line in (
        "Total PnL: -$12.50",
        "Max drawdown: -$12.50",
        "Mean PnL per trade: -$3.12",
        "Templates fired: 2/9",
        "Win rate: 25.0%",
        "4 trade(s): too few to support any conclusion",
    ):
        assert line in text
    assert "$-" not in text


def test_power_statement_matches_statsmodels_and_a_simulation() -> None:
    """The block's minimum detectable mean is the one statsmodels solves for, and a simulation of a
    sample with that true mean rejects about 80 % of the time (one-sided t-test at 5 %)."""
    from scipy import stats as sps
    from statsmodels.stats.power import TTestPower

    rng = np.random.default_rng(4)
    pnl = rng.normal(0.0, 12.0, 400)
    block = sample_block(pd.DataFrame({"pnl": pnl, "template_id": 1}), 20, [], 1)
    pw = block["power"]
    sd = float(pnl.std(ddof=1))
    want = (
        TTestPower().solve_power(
            effect_size=None, nobs=400, alpha=0.05, power=0.8, alternative="larger"
        )
        * sd
    )
    assert pw["n"] == 400 and pw["conclusive"] and pw["minimum_detectable"] == pytest.approx(want)
    sims = rng.normal(pw["minimum_detectable"], sd, (4000, 400))
    hit = (sps.ttest_1samp(sims, 0.0, axis=1, alternative="greater").pvalue < 0.05).mean()
    assert 0.77 < hit < 0.83
    small = sample_block(pd.DataFrame({"pnl": pnl[:10], "template_id": 1}), 1, [], 1)
    assert not small["power"]["conclusive"]


def test_atomic_writes_use_ordinary_permissions_and_leave_no_temp(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        p = atomic_pickle({"a": 1}, tmp_path / "x.pkl")
        q = atomic_write_text("hello", tmp_path / "x.json")
    finally:
        os.umask(old)
    assert pickle.loads(p.read_bytes()) == {"a": 1} and q.read_text() == "hello"
    assert stat.S_IMODE(p.stat().st_mode) == 0o644 == stat.S_IMODE(q.stat().st_mode)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["x.json", "x.pkl"]


def test_jsonable() -> None:
    doc = jsonable(
        {1: (np.int64(2), np.float64("nan"), np.bool_(True)), "a": np.array([0.5, np.inf])}
    )
    assert doc == {"1": [2, None, True], "a": [0.5, None]}
    json.dumps(doc)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_categorical_from_codes_is_astype_category_of_the_strings(seed: int) -> None:
    """The trades frame's text columns, built from codes, equal pandas' own conversion of the
    strings: the values that occur, sorted, whatever the table's order, repeats or unused names."""
    from edgefinder.markets.brain import categorical

    rng = np.random.default_rng(seed)
    names = np.array(["WIN", "LOSS", "", "4h ROCHE_SNAP", "LOSS", "1D STRUCTURAL_DRIVE"], object)
    codes = rng.choice([0, 1, 2, 4, 5], size=500)  # name 3 never occurs; 1 and 4 are both LOSS
    got = pd.Series(categorical(names, codes))
    pd.testing.assert_series_equal(got, pd.Series(names[codes]).astype("category"))
    assert "4h ROCHE_SNAP" not in got.cat.categories
    empty = pd.Series(categorical(names, np.zeros(0, np.int64)))
    pd.testing.assert_series_equal(empty, pd.Series(names[:0]).astype("category"))


def test_parquet_files_read_back_as_written(tmp_path: Path) -> None:
    """Dictionary encoding only the categorical columns changes nothing a reader sees."""
    from edgefinder.markets._io import write_parquet

    rng = np.random.default_rng(3)
    df = pd.DataFrame(
        {
            "pnl": rng.normal(size=300),
            "template_id": rng.integers(0, 9, 300),
            "out_of_sample": rng.random(300) > 0.5,
            "family": pd.Categorical(rng.choice(["a", "b", "c"], 300)),
            "session": rng.choice(["2024-01-02", "2024-01-03"], 300).astype(object),
        }
    )
    back = pd.read_parquet(write_parquet(df, tmp_path / "t.parquet"))
    pd.testing.assert_frame_equal(back, df)
    assert pd.read_parquet(tmp_path / "t.parquet", columns=["family"])["family"].dtype == "category"


def test_short_trades_are_found_in_any_case_and_type() -> None:
    """The regret analysis's side: SHORT in any case, from text or categorical columns, and a
    missing direction counts as long, as ``str.upper() == "SHORT"`` decides."""
    from edgefinder.markets.regret import _is_short

    d = pd.Series(["LONG", "SHORT", "short", "Long", None, "SHORT"] * 50, dtype=object)
    want = (d.str.upper() == "SHORT").to_numpy()
    assert np.array_equal(_is_short(d), want) and want.sum() == 150
    assert np.array_equal(_is_short(d.astype("category")), want)
