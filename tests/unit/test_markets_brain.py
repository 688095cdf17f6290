"""BayesianBrain and TradeOutcome: probabilities, gates, persistence."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from edgefinder.markets.brain import (
    UNSEEN_PROBABILITY,
    BayesianBrain,
    BrainFileError,
    TradeOutcome,
    trades_frame,
)


def _trade(tid: int, pnl: float, t: float = 1000.0) -> TradeOutcome:
    return TradeOutcome(
        state=None,
        entry_price=100.0,
        exit_price=100.0 + pnl / 2.0,
        pnl=pnl,
        result="WIN" if pnl > 0 else "LOSS",
        timestamp=t + 60,
        exit_reason="TARGET",
        entry_time=t,
        exit_time=t + 60,
        duration=60.0,
        direction="LONG",
        template_id=tid,
    )


def test_unseen_template_probability_is_one_eleventh_and_zero_confidence() -> None:
    brain = BayesianBrain()
    assert brain.get_probability(7) == pytest.approx(1 / 11)
    assert UNSEEN_PROBABILITY == pytest.approx(0.0909, abs=1e-4)
    assert brain.get_confidence(7) == 0.0
    # exploration gates of the original (0.05 / 0.0) let an unseen template trade
    assert brain.should_fire(7, 0.05, 0.0)
    assert not brain.should_fire(7, 0.10, 0.0)
    assert not brain.should_fire(7, 0.05, 0.01)


def test_update_counts_and_formulas() -> None:
    brain = BayesianBrain()
    pnls = [10.0, -5.0, 0.0, 3.0]  # zero PnL counts as a loss, as result='WIN' if pnl > 0
    for p in pnls:
        brain.update(_trade(3, p))
    assert brain.table[3] == {"wins": 2, "losses": 2, "total": 4}
    assert brain.get_probability(3) == pytest.approx((2 + 1) / (4 + 11))
    assert brain.get_confidence(3) == pytest.approx(0.04)
    assert [t.pnl for t in brain.trade_history] == pnls
    for _ in range(200):
        brain.update(_trade(4, -1.0))
    assert brain.get_confidence(4) == 1.0  # capped
    assert brain.get_probability(4) == pytest.approx(1 / 211)
    assert not brain.should_fire(4, 0.05, 0.0)  # a proven loser stops trading
    assert brain.stats() == {"templates_seen": 2, "trades": 204, "templates_over_30": 1}


def test_trade_outcome_is_frozen_and_frames() -> None:
    t = _trade(1, 5.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.pnl = 3.0  # type: ignore[misc]
    df = trades_frame([t, _trade(2, -1.0, 2000.0)])
    assert list(df["template_id"]) == [1, 2]
    assert list(df["result"]) == ["WIN", "LOSS"]


def test_save_load_roundtrip_and_bad_file(tmp_path) -> None:
    brain = BayesianBrain()
    for i, p in enumerate([1.0, -2.0, 3.0]):
        brain.update(_trade(i % 2, p, 1000.0 * i))
    path = brain.save(tmp_path / "brain.pkl")
    again = BayesianBrain.load(path)
    assert again.table == brain.table
    assert again.trade_history == brain.trade_history
    assert not list(tmp_path.glob(".brain.pkl.*"))  # the temp file was renamed away
    (tmp_path / "bad.pkl").write_bytes(b"not a pickle")
    with pytest.raises(BrainFileError, match="bad.pkl"):
        BayesianBrain.load(tmp_path / "bad.pkl")
    # junk that the unpickler reads as opcodes fails with ValueError/KeyError, not UnpicklingError
    for junk in (b"garbage\n", b"I12x\n.", b"\x80\x05K"):
        (tmp_path / "junk.pkl").write_bytes(junk)
        with pytest.raises(BrainFileError, match="junk.pkl"):
            BayesianBrain.load(tmp_path / "junk.pkl")
    (tmp_path / "other.pkl").write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(BrainFileError, match="not an edgefinder brain"):
        BayesianBrain.load(tmp_path / "other.pkl")
    with pytest.raises(BrainFileError, match="not found"):
        BayesianBrain.load(tmp_path / "missing.pkl")


def test_columnar_history_keeps_order_states_and_counts() -> None:
    """record() (a session's trades as columns) and update() (one trade) interleave in trade order, and
    trade_history rebuilds equal TradeOutcome objects, entry states and chains included."""
    from edgefinder.markets.physics import ThreeBodyQuantumState

    state = ThreeBodyQuantumState(
        1000,
        1.0,
        2.0,
        0.5,
        1.5,
        10.0,
        1.2,
        0.3,
        2.5,
        0.6,
        4.0,
        -0.4,
        -1.0,
        2.6,
        0.1,
        0.8,
        0.1,
        0.6,
        0.55,
        "L2_ROCHE",
        True,
        False,
        True,
        True,
        "15s",
    )
    a = dataclasses.replace(
        _trade(1, 4.0),
        state=state,
        chain=(("1m", "ROCHE_SNAP"), ("5m", "STRUCTURAL_DRIVE")),
        depth=2,
        family="ROCHE_SNAP 15s long ← STRUCTURAL_DRIVE",
        out_of_sample=True,
    )
    b, c, d = _trade(2, -1.0, 2000.0), _trade(1, -2.0, 3000.0), _trade(3, 0.0, 4000.0)
    brain = BayesianBrain()
    brain.update(a)
    brain.record(trades_frame([b, c]))
    brain.update(d)
    assert brain.trade_history == [a, b, c, d]
    assert brain.table == {
        1: {"wins": 1, "losses": 1, "total": 2},
        2: {"wins": 0, "losses": 1, "total": 1},
        3: {"wins": 0, "losses": 1, "total": 1},
    }
    assert list(brain.trades()["chain"]) == ["1m ROCHE_SNAP < 5m STRUCTURAL_DRIVE", "", "", ""]
    assert brain.trade_history[0].state == state


def test_a_brain_over_count_arrays_is_the_same_brain_with_one_copy_of_the_counts() -> None:
    """The replay engine's brain (a CountTable over its loop's arrays) answers exactly as a dict brain
    fed the same trades, writes through to the arrays, reads what the arrays say, and refuses a
    template outside its library."""
    import numpy as np

    from edgefinder.markets.brain import CountTable

    rng = np.random.default_rng(4)
    ids = np.array([3, 8, 11, 20], np.int64)
    wins, totals = np.zeros(4, np.int64), np.zeros(4, np.int64)
    view, plain = BayesianBrain(table=CountTable(ids, wins, totals)), BayesianBrain()
    trades = [_trade(int(rng.choice(ids[:3])), float(rng.normal()), 1000.0 + i) for i in range(80)]
    for t in trades[:30]:
        view.update(t)
        plain.update(t)
    view.record(trades_frame(trades[30:]))
    plain.record(trades_frame(trades[30:]))
    assert view.table == plain.table and dict(view.table) == plain.table
    assert view.stats() == plain.stats() and view.trade_history == plain.trade_history
    for t in ids.tolist():
        assert view.get_probability(t) == plain.get_probability(t)
        assert view.get_confidence(t) == plain.get_confidence(t)
        assert view.should_fire(t, 0.3, 0.1) == plain.should_fire(t, 0.3, 0.1)
    assert totals.sum() == 80 and 20 not in view.table  # written through; unseen stays unseen
    wins[3], totals[3] = 9, 10  # the loop's arrays change: the brain reads them
    assert view.table[20] == {"wins": 9, "losses": 1, "total": 10}
    assert view.get_probability(20) == pytest.approx(10 / 21)
    # history that the loop already counted adds no counts
    view.record(trades_frame(trades[:5]), counted=True)
    assert totals.sum() == 90 and len(view.trades()) == 85
    with pytest.raises(KeyError):
        view.update(_trade(99, 1.0))
    restored = BayesianBrain.from_payload(pickle.loads(pickle.dumps(view.to_payload())))
    assert restored.table == dict(view.table)
