"""Shared pieces of the simulators: the economy (buys, buy classes, income; dollars, team totals)."""

from __future__ import annotations

import numpy as np

PLAYERS = 5
WEAPONS_ECO = ("glock", "usp_s", "p250", "deagle")
WEAPONS_FORCE = ("mp9", "mac10", "galil", "famas", "deagle")
WEAPONS_FULL = ("ak47", "m4a1_s", "m4a4", "awp")
MAX_BANK = PLAYERS * 16_000.0


def _buy(rng: np.random.Generator, bank: np.ndarray, pistol: np.ndarray) -> np.ndarray:
    """Loadout value (dollars, team total, including 1,000 of default pistols) from the bank."""
    n = bank.size
    u = rng.random(n)
    full = 5 * rng.uniform(4200, 5200, n)
    force = np.minimum(bank, 5 * rng.uniform(1800, 3600, n))
    eco = rng.uniform(0, 1200, n)
    spend = np.where(
        bank >= full, full, np.where((bank >= 10_000) & (u < 0.6), force, np.minimum(eco, bank))
    )
    spend = np.where(pistol, np.minimum(bank, rng.uniform(2500, 4000, n)), spend)
    return 1000.0 + np.floor(np.minimum(spend, bank))


def _buy_class(loadout: np.ndarray) -> np.ndarray:
    """0 eco, 1 force, 2 full: a deterministic function of the loadout (so Z holds it)."""
    return np.where(loadout >= 20_000, 2, np.where(loadout >= 8_000, 1, 0))


def round_income(
    won: np.ndarray,
    streak_now: np.ndarray,
    kills_by: np.ndarray,
    attack: np.ndarray,
    planted: np.ndarray,
) -> np.ndarray:
    """Money earned in a round (dollars per team): win reward or the growing loss bonus, 300 per
    kill, and 800 to attackers who planted and still lost. All arrays have shape (n, 2) except
    ``planted`` (n,)."""
    loss_bonus = PLAYERS * (1400 + 500 * np.minimum(np.maximum(streak_now - 1, 0), 4))
    income = np.where(won, PLAYERS * 3250, loss_bonus) + 300 * kills_by
    return income + np.where(attack & planted[:, None] & ~won, 800, 0)


def weapons(rng: np.random.Generator, buy: np.ndarray) -> np.ndarray:
    """A weapon name per kill from the killer team's buy class (0 eco, 1 force, 2 full)."""
    n = buy.size
    return np.where(
        buy == 2,
        np.array(WEAPONS_FULL)[rng.integers(0, len(WEAPONS_FULL), n)],
        np.where(
            buy == 1,
            np.array(WEAPONS_FORCE)[rng.integers(0, len(WEAPONS_FORCE), n)],
            np.array(WEAPONS_ECO)[rng.integers(0, len(WEAPONS_ECO), n)],
        ),
    )


def concat_parts(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate per-round dicts of arrays key by key."""
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def round_unit_part(
    active: np.ndarray,
    round_no: int,
    economy: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    per_team: dict[str, np.ndarray],
    per_round: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """One round's (round, team) units for ``concat_parts``, two per active match.

    ``active`` are the match indices playing round ``round_no``; ``economy`` is the round's
    ``(attack, bank_start, loadout, bank_end, won)`` per match and team (dollars; the opponent's
    loadout is read from it); ``per_team`` values have the matches on axis 0 and the two teams on
    axis 1 (further axes kept, e.g. per-intent counts); ``per_round`` values have one entry per
    match and are given to both of its teams.
    """
    n = active.size
    attack, bank_start, loadout, bank_end, won = economy
    part = {"m": np.repeat(active, 2), "r": np.full(2 * n, round_no), "t": np.tile([0, 1], n)}
    teams = dict(
        attack=attack,
        bank_start=bank_start,
        loadout=loadout,
        opp_loadout=loadout[:, ::-1],
        bank_end=bank_end,
        won=won,
        **per_team,
    )
    part.update({k: v.reshape(2 * n, *v.shape[2:]) for k, v in teams.items()})
    part.update({k: np.repeat(v, 2) for k, v in per_round.items()})
    return part


def unit_columns(
    u: dict[str, np.ndarray], match_ids: np.ndarray, tid: np.ndarray
) -> dict[str, np.ndarray]:
    """The per-(round, team) columns both simulators share: keys, side, money (dollars), outcomes."""
    return {
        "match_id": match_ids[u["m"]],
        "round_no": u["r"],
        "team_id": tid[u["m"], u["t"]],
        "side": np.where(u["attack"], "attack", "defense"),
        "bank_start": u["bank_start"],
        "loadout_value": u["loadout"],
        "opp_loadout_value": u["opp_loadout"],
        "bank_end": u["bank_end"],
        "round_win": u["won"].astype(int),
        "econ_delta": u["bank_end"] - u["bank_start"],
        "site_executed": u["executed"].astype(int),
        "kills": u["kills"],
        "deaths": u["deaths"],
    }
