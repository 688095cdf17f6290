"""Outcome mechanisms: features that are the outcome by the rules of the game, never edges.

A test of such a feature against its outcome measures a definition, not a behaviour that moves the
outcome: it is computed and stored like any other (``outcome_mechanism`` = true, the reason in
``details.outcome_mechanism``), reported apart, kept out of the top findings and never called an
edge by :func:`edgefinder.esports.verdict.combine_verdicts`.

The rules (feature -> outcome):

* ``kills``, ``deaths``, ``opening_kill`` -> every outcome: fights decide the round (an elimination
  is a win condition) and pay kill rewards;
* any feature of the ``defuse`` intent -> every outcome: a defuse ends the round for the defenders;
* any feature of the ``plant`` intent -> every outcome: a plant *is* a site execute
  (``site_executed``), the bomb's win condition and a plant bonus;
* features of intents that the import rules derive from kills (``engage`` = the killer or a damage
  dealer, ``trade`` = a kill right after a team-mate's death; see :mod:`edgefinder.esports.importers.motion`)
  -> every outcome, **when the run's signals of that intent come from those rules** (the caller
  says which: :func:`kill_derived_intents`). The same intent from a vision model is a behaviour.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Connection, Engine, exists, select

from edgefinder.esports.events import INTENTS
from edgefinder.store.tables import micro_actions

IN_ROUND_MECHANISMS = {
    "kills": "kills decide the round's fights (elimination wins it) and pay kill rewards",
    "deaths": "deaths decide the round's fights (elimination loses it)",
    "opening_kill": "the round's first fight, part of how the round is won",
}
INTENT_MECHANISMS = {
    "defuse": "a defuse ends the round for the defenders (a win condition)",
    "plant": "a plant is a site execute by definition and the bomb's win condition",
}
#: Intents the import rules derive from kills, and what they are made of.
KILL_DERIVED = {
    "engage": "derived from kills by the import rules (the killer, a damage dealer, an assister)",
    "trade": "derived from kills by the import rules (a kill right after a team-mate's death)",
}
#: ``model_version`` prefix of the importers' rule-derived signals.
IMPORT_RULES_PREFIX = "import-rules"


def intent_of(feature: str) -> str | None:
    """The intent a feature is built from (``peek_open_count`` -> ``peek``), or None."""
    head = feature.split("_", 1)[0]
    return head if head in INTENTS and feature != head else None


def outcome_mechanism(feature: str, outcome: str, kill_derived: Collection[str] = ()) -> str | None:
    """Why ``feature`` is ``outcome`` by the rules of the game, or None when it is not.

    ``kill_derived``: intents whose signals in this data come from kills (import rules).
    """
    del outcome  # every rule applies to every outcome the job analyses; kept for the call's sense
    if feature in IN_ROUND_MECHANISMS:
        return IN_ROUND_MECHANISMS[feature]
    intent = intent_of(feature)
    if intent in INTENT_MECHANISMS:
        return INTENT_MECHANISMS[intent]
    if intent is not None and intent in kill_derived and intent in KILL_DERIVED:
        return KILL_DERIVED[intent]
    return None


def kill_derived_intents(source: Engine | Connection) -> tuple[str, ...]:
    """Intents of :data:`KILL_DERIVED` that have at least one signal made by the import rules."""
    ma = micro_actions

    def probe(conn: Connection) -> tuple[str, ...]:
        found = []
        for intent in KILL_DERIVED:
            stmt = select(
                exists().where(
                    ma.c.intent == intent, ma.c.model_version.like(f"{IMPORT_RULES_PREFIX}%")
                )
            )
            if conn.execute(stmt).scalar():
                found.append(intent)
        return tuple(found)

    if isinstance(source, Connection):
        return probe(source)
    with source.connect() as conn:
        return probe(conn)
