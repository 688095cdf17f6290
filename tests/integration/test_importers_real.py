"""The three importers on the real match files of the shared data folder (read in place, never copied).

Every expected figure is recomputed here from the source files with plain json/pandas (or is a
count the data folder's description states), then compared with what the importer produced.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd
import pytest

from edgefinder.esports.events import CanonicalEvent, MotionSignal
from edgefinder.esports.importers import RULES_VERSION, MalformedSource, import_files
from edgefinder.esports.importers.awpy import ALIASES, DEFAULT_TICK_RATE
from edgefinder.esports.importers.motion import (
    HOLD_MIN_S,
    HOLD_UNITS_PER_S,
    MOVE_UNITS,
    TRADE_WINDOW_S,
)
from edgefinder.esports.importers.ribgg import ROUND_SLOT_S


def _events(builders, event_type: str | None = None) -> list[CanonicalEvent]:
    return [
        e
        for b in builders
        for e in b.items
        if isinstance(e, CanonicalEvent) and (event_type is None or e.event_type == event_type)
    ]


def _signals(builders, intent: str | None = None) -> list[MotionSignal]:
    return [
        e
        for b in builders
        for e in b.items
        if isinstance(e, MotionSignal) and (intent is None or e.intent == intent)
    ]


def _round_event(builder, event_type: str, round_no: int) -> CanonicalEvent:
    return next(e for e in _events([builder], event_type) if e.payload.round_no == round_no)


# ------------------------------------------------------------------------------------ rib.gg


@pytest.fixture(scope="module")
def valorant_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "esports_real" / "valorant_impact"


@pytest.fixture(scope="module")
def ribgg(valorant_dir: Path):
    return import_files("ribgg", [valorant_dir])


@pytest.fixture(scope="module")
def raw_valorant(valorant_dir: Path) -> dict[str, dict]:
    return {p.name: json.load(gzip.open(p)) for p in sorted(valorant_dir.glob("*.json.gz"))}


def _map_of(doc: dict) -> dict:
    mid = doc["matches"]["matchDetails"]["id"]
    return next(m for m in doc["series"]["seriesById"]["matches"] if m["id"] == mid)


def test_ribgg_counts(ribgg) -> None:
    builders, report = ribgg
    assert report.maps == len(builders) == 42 and report.rounds == 887
    assert report.events["KILL"] == 6150 and report.events["BOMB_PLANT"] == 568
    assert report.events["BOMB_DEFUSE"] == 152 and report.events["REVIVAL"] == 72
    assert report.events["ROUND_START"] == report.events["ROUND_END"] == 887
    assert report.skipped == []
    reasons = Counter(e.payload.win_reason for e in _events(builders, "ROUND_END"))
    assert reasons == {"elimination": 599, "defuse": 153, "bomb": 95, "time": 40}


def test_ribgg_spot_checks_against_the_json(ribgg, raw_valorant) -> None:
    builders, _ = ribgg
    b = next(x for x in builders if x.match_id == "ribgg-25345")
    doc = raw_valorant["25345.json.gz"]
    m = _map_of(doc)
    start = next(
        e for e in b.items if isinstance(e, CanonicalEvent) and e.event_type == "MATCH_START"
    )
    assert start.payload.map == "Haven" and [t.team_id for t in start.payload.teams] == [
        "Fnatic",
        "KRÜ Esports",
    ]
    assert sorted(len(t.players) for t in start.payload.teams) == [5, 5]
    # round 3: Fnatic (team 1) attacked and won by the bomb, tiers 4 and 3
    r3 = _round_event(b, "ROUND_START", 3)
    fn, kru = r3.payload.teams
    assert (fn.side, kru.side) == ("attack", "defense") and (fn.buy_tier, kru.buy_tier) == (3, 2)
    team = {p["playerId"]: p["teamNumber"] for p in m["players"]}
    econ = [e for e in doc["matches"]["matchDetails"]["economies"] if e["roundNumber"] == 3]
    assert fn.loadout_value == sum(e["loadoutValue"] for e in econ if team[e["playerId"]] == 1)
    assert kru.bank == sum(
        e["remainingCreds"] + e["spentCreds"] for e in econ if team[e["playerId"]] == 2
    )
    end3 = _round_event(b, "ROUND_END", 3)
    assert end3.payload.winner == "Fnatic" and end3.payload.win_reason == "bomb"
    # the first kill of round 1: 2532 killed 2011 at 19.563 s into the round
    k = next(
        e
        for e in b.items
        if isinstance(e, CanonicalEvent) and e.event_type == "KILL" and e.payload.round_no == 1
    )
    assert (k.payload.killer, k.payload.victim, k.ts) == (
        "ribgg-2532",
        "ribgg-2011",
        pytest.approx(19.563),
    )
    assert k.payload.killer_team != k.payload.victim_team
    # the spike's own kill (25345 round 3, player 3535 died to the bomb) has no killer
    bomb = [
        e
        for e in _events([b], "KILL")
        if e.payload.round_no == 3 and e.payload.victim == "ribgg-3535"
    ]
    assert len(bomb) == 1 and bomb[0].payload.killer is None
    # every map's score is the source's
    end = next(e for e in b.items if isinstance(e, CanonicalEvent) and e.event_type == "MATCH_END")
    assert end.payload.score == {"Fnatic": m["team1Score"], "KRÜ Esports": m["team2Score"]}
    assert end.payload.score == {"Fnatic": 13, "KRÜ Esports": 5} and end.payload.winner == "Fnatic"


def test_ribgg_time_line_keeps_rounds_apart(ribgg) -> None:
    for b in ribgg[0]:
        for e in b.items:
            rn = e.round_no if isinstance(e, MotionSignal) else getattr(e.payload, "round_no", None)
            if rn is not None:
                assert (rn - 1) * ROUND_SLOT_S <= e.ts < rn * ROUND_SLOT_S


def test_ribgg_derived_signals_follow_their_rules(ribgg, raw_valorant) -> None:
    builders, report = ribgg
    sig = _signals(builders)
    assert report.n_signals == len(sig) and all(
        s.model_version == RULES_VERSION and s.artifact_url for s in sig
    )
    counts = Counter(s.intent for s in sig)
    print("\nrib.gg derived signals:", dict(counts))
    assert set(counts) == {
        "engage",
        "trade",
        "plant",
        "defuse",
        "advance",
        "retreat",
        "rotate",
        "hold",
    }
    # plant / defuse: exactly one per plant / defuse event
    assert counts["plant"] == 568 and counts["defuse"] == 152
    # engage: every kill by another player, plus every assist by a team-mate of the killer
    kills = assists = trades = 0
    for doc in raw_valorant.values():
        team = {p["playerId"]: p["teamNumber"] for p in _map_of(doc)["players"]}
        by_round = defaultdict(list)
        for e in doc["matches"]["matchDetails"]["events"]:
            if e["eventType"] == "kill" and e["playerId"] != e["referencePlayerId"]:
                kills += 1
                assists += sum(
                    1
                    for a in e["assists"] or []
                    if team.get(a["assistantId"]) == team[e["playerId"]]
                )
                by_round[e["roundNumber"]].append(e)
        # trade, recomputed: the victim had killed the killer's team-mate within the window
        for evs in by_round.values():
            evs.sort(key=lambda e: e["roundTimeMillis"])
            for i, e in enumerate(evs):
                if any(
                    p["playerId"] == e["referencePlayerId"]
                    and team[p["referencePlayerId"]] == team[e["playerId"]]
                    and (e["roundTimeMillis"] - p["roundTimeMillis"]) / 1000 <= TRADE_WINDOW_S
                    for p in evs[:i]
                ):
                    trades += 1
    assert counts["engage"] == kills + assists and counts["trade"] == trades
    # the artifact points at a kill row of the file named in it
    t = next(s for s in sig if s.intent == "trade")
    name, row = t.artifact_url.split("#events[")
    src = raw_valorant[name]["matches"]["matchDetails"]["events"][int(row.rstrip("]"))]
    assert src["eventType"] == "kill" and f"ribgg-{src['playerId']}" == t.player_id
    # movement signals carry the inputs of their rule, and the inputs satisfy it
    for s in sig:
        f = s.features
        if s.intent == "hold":
            assert (
                f["dt_s"] >= HOLD_MIN_S and f["speed"] <= HOLD_UNITS_PER_S
            )  # rounded to 3 decimals
        elif s.intent == "advance":
            assert f["approach_velocity"] * f["dt_s"] > MOVE_UNITS - 0.01
        elif s.intent == "retreat":
            assert -f["approach_velocity"] * f["dt_s"] > MOVE_UNITS - 0.01
        if s.intent in ("advance", "retreat", "rotate", "hold"):
            assert s.confidence < 1.0 and s.artifact_url.count("locations[") == 2
        else:
            assert s.confidence >= 0.8


# ------------------------------------------------------------------------------------ awpy


@pytest.fixture(scope="module")
def eg_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "esports_real" / "portfolio-eg"


@pytest.fixture(scope="module")
def awpy(eg_dir: Path):
    return import_files("awpy", [eg_dir])


def test_awpy_counts(awpy, eg_dir: Path) -> None:
    builders, report = awpy
    assert report.maps == 5 and report.rounds == 132 and report.skipped == []
    assert (
        report.events["KILL"] == 891
        and report.events["BOMB_PLANT"] == 72
        and report.events["BOMB_DEFUSE"] == 23
    )
    ends = _events(builders, "ROUND_END")
    starts = {(e.match_id, e.payload.round_no): e for e in _events(builders, "ROUND_START")}
    sides = Counter(
        next(
            t.side
            for t in starts[(e.match_id, e.payload.round_no)].payload.teams
            if t.team_id == e.payload.winner
        )
        for e in ends
    )
    assert sides == {"defense": 78, "attack": 54}
    assert Counter(e.payload.win_reason for e in ends) == {
        "elimination": 90,
        "defuse": 23,
        "bomb": 14,
        "time": 5,
    }
    maps = sorted((e.match_id, e.payload.map) for e in _events(builders, "MATCH_START"))
    assert maps == [
        ("awpy-2hwmhm2w-1", "de_inferno"),
        ("awpy-2hwmhm2w-2", "de_ancient"),
        ("awpy-2hwmhm2w-3", "de_nuke"),
        ("awpy-2x7q7fae-1", "de_ancient"),
        ("awpy-3z6hw9ra-1", "de_ancient"),
    ]


def test_awpy_spot_checks_against_the_tables(awpy, eg_dir: Path) -> None:
    builders, _ = awpy
    b = next(x for x in builders if x.match_id == "awpy-2hwmhm2w-1")
    rounds = pd.read_csv(eg_dir / "game_round.csv")
    first_start = rounds[(rounds.match_id == "2hwmhm2w") & (rounds.series == 1)].start_tick.min()
    r2 = next(e for e in _events([b], "ROUND_START") if e.payload.round_no == 2)
    t, ct = r2.payload.teams
    # "2hwmhm2w",1,2,"mastermix123","EC Brugge",...,"Half Buy","Full Buy"
    assert (t.team_id, t.side, t.buy_tier) == ("mastermix123", "attack", 3)
    assert (ct.team_id, ct.side, ct.buy_tier) == ("EC Brugge", "defense", 2)
    assert (
        t.bank is None and t.loadout_value is None and ct.bank is None
    )  # the tables hold no money
    assert r2.ts == pytest.approx((38039 - first_start) / DEFAULT_TICK_RATE)
    # the first kill of the map: eneshan (T, mastermix123) killed MAGILA- at tick 32882, a first kill
    k = min(_events([b], "KILL"), key=lambda e: e.ts)
    assert (
        k.payload.killer == "steam-76561198821532633"
        and k.payload.victim == "steam-76561198315324300"
    )
    assert (k.payload.killer_team, k.payload.victim_team) == ("mastermix123", "EC Brugge")
    assert k.ts == pytest.approx((32882 - first_start) / DEFAULT_TICK_RATE)
    plant = next(e for e in _events([b], "BOMB_PLANT") if e.payload.round_no == 1)
    assert plant.payload.site == "B" and plant.payload.team == "mastermix123"
    assert plant.ts == pytest.approx((33920 - first_start) / DEFAULT_TICK_RATE)


def test_awpy_derived_signals_follow_their_rules(awpy, eg_dir: Path) -> None:
    builders, report = awpy
    sig = _signals(builders)
    counts = Counter(s.intent for s in sig)
    print("\nawpy derived signals:", dict(counts))
    kills = pd.read_csv(eg_dir / "kills.csv", na_values=["NULL"])
    bomb = pd.read_csv(eg_dir / "bomb_events.csv")
    dmg = pd.read_csv(eg_dir / "damage.csv")
    own = kills[~kills.is_teamkill]
    assert counts["trade"] == int(own.is_trade.sum()) > 100
    assert counts["plant"] == int((bomb.bomb_action == "plant_begin").sum())
    assert counts["defuse"] == int((bomb.bomb_action == "defuse_start").sum())
    # engage: every kill that is not a team kill, plus damage to a player of the other team
    roster = {**dict(zip(kills.attacker_steam_id.astype(str), kills.attacker_team, strict=True))}
    enemy = dmg[
        dmg.attacker_steam_id.notna()
        & (dmg.victim_steam_id.astype(str).map(roster) != dmg.attacker_team)
    ]
    assert counts["engage"] == len(own) + len(enemy)
    for s in sig:
        if s.intent == "advance":
            assert s.features["area_to"].startswith("Bombsite") and not s.features[
                "area_from"
            ].startswith("Bombsite")
        elif s.intent == "retreat":
            assert s.features["area_from"].startswith("Bombsite") and not s.features[
                "area_to"
            ].startswith("Bombsite")
        elif s.intent == "rotate":
            assert s.features["area_from"] != s.features["area_to"]
    assert counts["advance"] > 100 and counts["retreat"] > 100 and counts["hold"] > 100


def test_awpy_2x_column_names_give_the_same_events(eg_dir: Path, tmp_path: Path) -> None:
    back = {v: k for k, v in ALIASES.items()}
    renames = {
        "game_round.csv": "rounds.csv",
        "bomb_events.csv": "bomb.csv",
        "damage.csv": "damages.csv",
    }
    for name in ("game_round.csv", "kills.csv", "bomb_events.csv", "damage.csv"):
        df = pd.read_csv(
            eg_dir / name,
            na_values=["NULL"],
            dtype={"attacker_steam_id": str, "victim_steam_id": str, "player_steam_id": str},
        )
        df.rename(columns={c: back[c] for c in df.columns if c in back}).to_parquet(
            tmp_path / renames.get(name, name).replace(".csv", ".parquet")
        )
    new, _ = import_files("awpy", [tmp_path])
    tables = ("game_round.csv", "kills.csv", "bomb_events.csv", "damage.csv")
    old, _ = import_files("awpy", [eg_dir / n for n in tables])

    def strip(builders) -> list[str]:
        # ids and artifacts name the source files, which differ; everything else must be equal
        drop = {"event_id", "signal_id", "artifact_url"}
        dumps = (e.model_dump(mode="json", exclude=drop) for b in builders for e in b.items)
        return sorted(json.dumps(d, sort_keys=True) for d in dumps)

    a, c = strip(new), strip(old)
    assert len(a) == len(c) > 3000 and a == c


# ------------------------------------------------------------------------------------ ESEA


@pytest.fixture(scope="module")
def esea(shared_dir: Path):
    return import_files("esea", [shared_dir / "data" / "esports_real" / "tiangefei.github.io"])


def test_esea_counts_and_spot_checks(esea, shared_dir: Path) -> None:
    builders, report = esea
    assert report.maps == 1 and report.rounds == 24
    rounds = sorted(e.payload.round_no for e in _events(builders, "ROUND_START"))
    assert rounds == [r for r in range(1, 26) if r != 16]
    # 184 kill rows: the 6 of round 16 (absent from the meta table) are reported, not imported
    assert report.events["KILL"] == 178
    skipped = Counter((s.source, s.reason.split(",")[0]) for s in report.skipped)
    assert skipped == {
        ("esea_master_kills_demos.part1.csv", "kill row of round 16"): 6,
        ("esea_master_dmg_demos.part1.csv", "damage row of round 16"): 26,
    }
    plants = {e.payload.round_no: e.payload.site for e in _events(builders, "BOMB_PLANT")}
    assert plants == {1: "B", 4: "A", 6: "B", 11: "A", 22: "A"}
    r1 = next(e for e in _events(builders, "ROUND_START") if e.payload.round_no == 1)
    hh, anim = sorted(r1.payload.teams, key=lambda t: t.team_id, reverse=True)
    # esea_match_13770997.dem,de_overpass,1,94.30782,160.9591,Hentai Hooligans,Terrorist,PISTOL_ROUND,4300,4250
    assert (hh.team_id, hh.side, hh.loadout_value, hh.bank) == (
        "Hentai Hooligans",
        "attack",
        4250,
        None,
    )
    assert (anim.side, anim.loadout_value) == ("defense", 4300)
    assert r1.ts == pytest.approx(94.30782)
    k = min((e for e in _events(builders, "KILL") if e.payload.round_no == 1), key=lambda e: e.ts)
    assert k.ts == pytest.approx(94.30782 + 30.74165) and k.payload.killer_team == "Animal Style"
    assert k.payload.killer is None and k.payload.victim is None  # the ids are mangled in this copy
    end11 = next(e for e in _events(builders, "ROUND_END") if e.payload.round_no == 11)
    assert end11.payload.winner == "Animal Style" and end11.payload.win_reason == "defuse"
    assert report.n_signals == 0


# ------------------------------------------------------------------------------------ errors


def test_malformed_files_are_one_line_errors_naming_the_file(tmp_path: Path, eg_dir: Path) -> None:
    bad_gz = tmp_path / "broken.json.gz"
    bad_gz.write_bytes(b"\x1f\x8b\x08\x00garbage")
    not_ribgg = tmp_path / "other.json"
    not_ribgg.write_text('{"series": {}}')
    short = tmp_path / "kills.csv"
    pd.read_csv(eg_dir / "kills.csv").drop(columns=["attacker_team"]).to_csv(short, index=False)
    (tmp_path / "game_round.csv").write_bytes((eg_dir / "game_round.csv").read_bytes())
    for fmt, path, needle in (
        ("ribgg", bad_gz, "broken.json.gz"),
        ("ribgg", not_ribgg, "other.json"),
        ("awpy", tmp_path, "kills.csv: missing column(s) attacker_team"),
    ):
        with pytest.raises(MalformedSource) as exc:
            import_files(fmt, [path])
        msg = str(exc.value)
        assert needle in msg and "\n" not in msg


def test_a_bad_row_is_reported_and_skipped_not_dropped(valorant_dir: Path, tmp_path: Path) -> None:
    doc = json.load(gzip.open(valorant_dir / "25345.json.gz"))
    events = doc["matches"]["matchDetails"]["events"]
    kill = next(i for i, e in enumerate(events) if e["eventType"] == "kill")
    events[kill]["referencePlayerId"] = 999_999_999  # a victim who is not on either roster
    events[kill + 1]["roundTimeMillis"] = None
    path = tmp_path / "25345-edited.json"
    path.write_text(json.dumps(doc))
    builders, report = import_files("ribgg", [path])
    want = [(path.name, f"events[{kill}]"), (path.name, f"events[{kill + 1}]")]
    assert sorted((s.source, s.row) for s in report.skipped) == want
    assert any("unknown player" in s.reason for s in report.skipped)
    _, original = import_files("ribgg", [valorant_dir / "25345.json.gz"])
    # everything else is still there
    assert report.n_events == original.n_events - 2 and report.rounds == original.rounds
