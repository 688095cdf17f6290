"""The event contract (pydantic models, parse_line), pseudonyms and the match simulator."""

from __future__ import annotations

import hashlib
import hmac
import json

import numpy as np
import pytest
from scipy import stats as sps
from scipy.special import expit

from edgefinder.esports.events import (
    INTENTS,
    CanonicalEvent,
    InvalidEvent,
    KillPayload,
    MatchStartPayload,
    MotionSignal,
    RoundEndPayload,
    RoundStartPayload,
    SitePayload,
    is_signal_line,
    parse_line,
    parse_lines,
)
from edgefinder.esports.pseudonym import Pseudonymizer, pseudonymize
from edgefinder.esports.simulate import _conditional_effects, simulate, truth_path

TS = "2025-01-01T00:00:00Z"


def canon(event_type: str, payload: dict, **extra) -> str:
    return json.dumps(
        {
            "event_id": "e1",
            "match_id": "m1",
            "event_type": event_type,
            "ts": 12.5,
            "timestamp": TS,
            "payload": payload,
            **extra,
        }
    )


def signal(**over) -> dict:
    base = {
        "signal_id": "s1",
        "match_id": "m1",
        "player_id": "p1",
        "ts": 3.0,
        "intent": "hold",
        "confidence": 0.7,
        "features": {"speed": 1.5, "approach_velocity": -0.2, "dist_to_objective": 12.0},
    }
    base.update(over)
    return base


# --- canonical events ---------------------------------------------------------------------


def test_every_known_event_type_parses_into_its_payload_model() -> None:
    cases = {
        "MATCH_START": (
            {
                "map": "de_dust2",
                "teams": [
                    {"team_id": "A", "players": ["a1", "a2"]},
                    {"team_id": "B", "players": ["b1"]},
                ],
            },
            MatchStartPayload,
        ),
        "ROUND_START": (
            {
                "round_no": 3,
                "teams": [
                    {"team_id": "A", "side": "attack", "bank": 12000, "loadout_value": 9000},
                    {"team_id": "B", "side": "defense", "bank": 4000, "loadout_value": 1500},
                ],
            },
            RoundStartPayload,
        ),
        "KILL": (
            {
                "round_no": 3,
                "killer": "a1",
                "victim": "b1",
                "killer_team": "A",
                "victim_team": "B",
                "weapon": "ak47",
                "headshot": True,
            },
            KillPayload,
        ),
        "BOMB_PLANT": ({"round_no": 3, "team": "A", "site": "B"}, SitePayload),
        "SITE_EXECUTE": ({"round_no": 3, "team": "A", "site": "B"}, SitePayload),
        "BOMB_DEFUSE": ({"round_no": 3, "team": "B", "site": "B"}, SitePayload),
        "ROUND_END": (
            {
                "round_no": 3,
                "winner": "B",
                "win_reason": "bomb_defused",
                "teams": [{"team_id": "A", "bank": 14000}, {"team_id": "B", "bank": 9000}],
            },
            RoundEndPayload,
        ),
    }
    for etype, (payload, model) in cases.items():
        ev = parse_line(canon(etype, payload))
        assert isinstance(ev, CanonicalEvent)
        assert ev.event_type == etype and isinstance(ev.payload, model), etype
        assert ev.timestamp.utcoffset().total_seconds() == 0
    ev = parse_line(canon("MATCH_END", {"winner": "A", "score": {"A": 13, "B": 7}}))
    assert ev.payload.score == {"A": 13, "B": 7}


def test_aliases_round_and_winner_team_are_accepted() -> None:
    ev = parse_line(
        canon(
            "ROUND_END",
            {
                "round": 4,
                "winner_team": "A",
                "teams": [{"team_id": "A", "bank": 1}, {"team_id": "B", "bank": 2}],
            },
        )
    )
    assert ev.payload.round_no == 4 and ev.payload.winner == "A"
    sig = parse_line(json.dumps(signal(round=7)))
    assert isinstance(sig, MotionSignal) and sig.round_no == 7


def test_unknown_event_types_are_kept_raw() -> None:
    ev = parse_line(canon("ECONOMY_UPDATE", {"anything": [1, 2, {"x": None}]}))
    assert isinstance(ev, CanonicalEvent)
    assert ev.payload == {"anything": [1, 2, {"x": None}]} and not ev.known


def test_motion_signal_optional_round_and_team_and_routing_by_signal_id() -> None:
    sig = parse_line(json.dumps(signal()).encode())
    assert isinstance(sig, MotionSignal)
    assert sig.round_no is None and sig.team is None and sig.intent == "hold"
    assert sig.feature("speed") == 1.5 and sig.feature("missing") is None
    assert is_signal_line(json.dumps(signal())) and not is_signal_line(canon("KILL", {}))
    # a payload that merely contains the text "signal_id" is still a canonical event
    ev = parse_line(canon("CHAT", {"text": '"signal_id"'}))
    assert isinstance(ev, CanonicalEvent)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"event_id": "e1", "match_id": ', "bad JSON"),
        ("[1, 2, 3]", "bad JSON: expected an object"),
        (
            json.dumps(
                {
                    "match_id": "m1",
                    "event_type": "KILL",
                    "ts": 1,
                    "timestamp": TS,
                    "payload": {"round_no": 1, "victim": "b1"},
                }
            ),
            "missing field event_id",
        ),
        (canon("KILL", {"victim": "b1"}), "missing field round_no"),
        (json.dumps(signal(player_id=None)), "player_id"),
        (
            json.dumps(
                {
                    "event_id": "e1",
                    "match_id": "m1",
                    "event_type": "KILL",
                    "ts": "soon",
                    "timestamp": TS,
                    "payload": {"round_no": 1, "victim": "b"},
                }
            ),
            "ts",
        ),
        (canon("ROUND_START", {"round_no": "third", "teams": []}), "round_no"),
        (json.dumps(signal(confidence="high")), "confidence"),
        (json.dumps(signal(intent="teleport")), "unknown intent 'teleport'"),
        (json.dumps(signal(confidence=1.2)), "confidence"),
        (json.dumps(signal(confidence=-0.1)), "confidence"),
        (
            canon(
                "ROUND_START",
                {
                    "round_no": 1,
                    "teams": [{"team_id": "A", "side": "north", "bank": 1, "loadout_value": 1}] * 2,
                },
            ),
            "side",
        ),
    ],
)
def test_invalid_events_raise_with_a_reason(line: str, reason: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_line(line)
    assert reason in info.value.reason
    assert "\n" not in info.value.reason


def test_oversize_payload_is_refused_before_parsing() -> None:
    big = json.dumps(signal(features={"blob": "x" * 70_000}))
    with pytest.raises(InvalidEvent, match="oversize payload: 7\\d{4} bytes > limit 65536"):
        parse_line(big)
    assert isinstance(parse_line(big, max_bytes=200_000), MotionSignal)


def test_parse_lines_gives_what_parse_line_gives_for_every_entry_of_a_mixed_batch() -> None:
    """The batch parser's inline fast path must not change any result: valid signals, signals
    off the fast path (int, huge or nested features, a NUL escape, oversize), invalid signals,
    canonical events and lines that are no event, in one batch."""
    lines = [
        json.dumps(signal()),
        json.dumps(signal(features={"speed": 3, "approach_velocity": 0.5})),
        json.dumps(signal(features={"speed": 1e16})),
        json.dumps(signal(features={"nested": {"a": [1, 2]}})),
        json.dumps(signal(player_id="p\u0000x")).replace("\\u0000", "\u0000"),
        json.dumps(signal(intent="teleport")),
        json.dumps(signal(confidence=1.2)),
        json.dumps(signal(features={"blob": "x" * 500})),
        canon("KILL", {"round_no": 1, "victim": "b1"}),
        canon("KILL", {"victim": "b1"}),
        '{"signal_id": "s1", "match_id": ',
        "[1, 2, 3]",
        '"signal_id"',
    ]
    raws = [line.encode() for line in lines]
    got = parse_lines(raws, max_bytes=400)
    assert len(got) == len(raws)
    for raw, result in zip(raws, got):
        try:
            expected = parse_line(raw, max_bytes=400)
        except InvalidEvent as exc:
            assert isinstance(result, InvalidEvent), raw
            assert result.reason == exc.reason
        else:
            assert result == expected, raw
    kinds = [type(r).__name__ for r in got]
    assert kinds.count("MotionSignal") == 3 and kinds.count("InvalidEvent") == 9, kinds


# --- pseudonyms ----------------------------------------------------------------------------


def test_pseudonym_is_hmac_sha256_of_the_player_id() -> None:
    want = hmac.new(b"secret", b"player-7", hashlib.sha256).hexdigest()
    assert pseudonymize("player-7", "secret") == want
    p = Pseudonymizer("secret")
    assert p("player-7") == want and p("player-7") == want  # cached path
    assert Pseudonymizer("other")("player-7") != want
    assert len(want) == 64


# --- simulator -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim():
    return simulate(40, seed=11)


def test_simulation_is_deterministic_and_every_line_is_valid(sim) -> None:
    again = simulate(40, seed=11)
    assert again.lines == sim.lines
    assert simulate(40, seed=12).lines != sim.lines
    parsed = [parse_line(line) for line in sim.lines]
    n_sig = sum(isinstance(e, MotionSignal) for e in parsed)
    assert n_sig == sim.n_signals and len(parsed) - n_sig == sim.n_canonical
    ids = [e.signal_id if isinstance(e, MotionSignal) else e.event_id for e in parsed]
    assert len(set(ids)) == len(ids)
    sigs = [e for e in parsed if isinstance(e, MotionSignal)]
    assert any(s.round_no is None for s in sigs) and any(s.team is None for s in sigs)
    assert {s.intent for s in sigs} == set(INTENTS)


def test_matches_follow_the_rules(sim) -> None:
    parsed = [parse_line(line) for line in sim.lines]
    ends = [e for e in parsed if isinstance(e, CanonicalEvent) and e.event_type == "MATCH_END"]
    assert len(ends) == 40
    for e in ends:
        score = sorted(e.payload.score.values())
        assert score[1] == 13 and score[0] <= 12  # first to 13
    starts = [e for e in parsed if isinstance(e, CanonicalEvent) and e.event_type == "MATCH_START"]
    assert all(len(t.players) == 5 for e in starts for t in e.payload.teams)
    u = sim.units
    # MR12: sides switch after round 12; both teams present in every round, one winner
    first = u[u.round_no <= 12].groupby(["match_id", "team_id"]).side.agg(["nunique", "first"])
    second = (
        u[(u.round_no >= 13) & (u.round_no <= 24)]
        .groupby(["match_id", "team_id"])
        .side.agg(["nunique", "first"])
    )
    assert (first["nunique"] == 1).all() and (second["nunique"] == 1).all()
    assert (first["first"] != second["first"]).all()
    per_round = u.groupby(["match_id", "round_no"])
    assert (per_round.size() == 2).all() and (per_round.round_win.sum() == 1).all()
    assert (per_round.side.nunique() == 2).all()
    assert np.allclose(u.econ_delta, u.bank_end - u.bank_start)
    assert (u.loc[u.side == "defense", "site_executed"] == 0).all()
    assert (u.loc[u.side == "defense", "plant_count"] == 0).all()
    # the economy matters: full buys beat eco rounds far more often than not
    gap = u.loadout_value - u.opp_loadout_value
    assert u.round_win[gap > 15_000].mean() > 0.7 and u.round_win[gap < -15_000].mean() < 0.3


def test_some_signals_come_before_their_round_in_file_order(sim) -> None:
    seen_rounds: set[tuple[str, int]] = set()
    early = 0
    for line in sim.lines:
        ev = parse_line(line)
        if isinstance(ev, CanonicalEvent) and ev.event_type == "ROUND_START":
            seen_rounds.add((ev.match_id, ev.payload.round_no))
        elif isinstance(ev, MotionSignal) and ev.round_no is not None:
            early += (ev.match_id, ev.round_no) not in seen_rounds
    assert early > 50


def test_truth_file_names_planted_effects_and_the_confounded_intent(sim, tmp_path) -> None:
    truth = sim.truth
    planted = {(p["feature"], p["outcome"]): p for p in truth["planted_effects"]}
    assert set(planted) == {
        ("trade_count", "round_win"),
        ("retreat_count", "round_win"),
        ("hold_count", "round_win"),
        ("plant_count", "site_executed"),
    }
    assert planted[("trade_count", "round_win")]["true_ate"] > 0
    assert planted[("retreat_count", "round_win")]["true_ate"] < 0
    assert planted[("plant_count", "site_executed")]["true_ate"] > 0
    conf = truth["confounded"]
    assert conf["feature"] == "hold_count" and conf["treatment_rule"] == "count > median(count)"
    assert conf["threshold"] == float(np.median(sim.units.hold_count))
    assert not set(truth["null_features"]) & set(truth["planted_features"])
    from edgefinder.esports.simulate import write_simulation

    out, tp = write_simulation(sim, tmp_path / "events.jsonl")
    assert tp == truth_path(out) == tmp_path / "events.truth.json"
    assert json.loads(tp.read_text())["confounded"]["true_ate"] == conf["true_ate"]
    assert out.read_text().count("\n") == len(sim.lines)


def test_conditional_effect_matches_direct_enumeration() -> None:
    mu = np.array([0.7, 2.5, 5.0])
    base = np.array([-0.4, 0.1, 0.9])
    beta = 0.3
    got = _conditional_effects(mu, base, beta, [2.0])[2.0]
    k = np.arange(200)
    for i in range(3):
        pmf = sps.poisson.pmf(k, mu[i])
        py = expit(base[i] + beta * k)
        want1 = (pmf * py)[k > 2].sum() / pmf[k > 2].sum()
        want0 = (pmf * py)[k <= 2].sum() / pmf[k <= 2].sum()
        assert got[0][i] == pytest.approx(want1, abs=1e-12)
        assert got[1][i] == pytest.approx(want0, abs=1e-12)


def test_planted_truth_holds_in_a_large_simulation() -> None:
    """Null intents carry no association; the confounded intent's naive difference is biased."""
    big = simulate(300, seed=5)
    u = big.units
    for feat in ("advance_count", "peek_count", "rotate_count", "engage_count", "defuse_count"):
        r, p = sps.pointbiserialr(u.round_win, u[feat])
        assert abs(r) < 0.04, feat
    hold = big.truth["confounded"]
    # naive difference of hold overstates the true effect by more than 5 points of win rate
    assert hold["naive_diff"] - hold["true_ate"] > 0.05
    trade = next(p for p in big.truth["planted_effects"] if p["feature"] == "trade_count")
    # trade is not confounded: its naive difference estimates the true effect (SE ~ 0.009)
    assert abs(trade["naive_diff"] - trade["true_ate"]) < 0.03
