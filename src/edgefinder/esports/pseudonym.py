"""Keyed pseudonyms for player identifiers (HMAC-SHA256), applied at ingest.

Raw player ids never reach the materialized tables: ``match_players``, ``kills``, ``raw_events``
and ``micro_actions`` hold the 64-hex-character HMAC of the id under ``settings.pseudonym_key``.
(``dead_letters`` keeps a rejected entry's text as received, raw ids included; it is never served.) The same key maps the same
player to the same pseudonym across matches (so per-player joins still work); without the key the
mapping cannot be recomputed from a guessed id list.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache


class Pseudonymizer:
    """``pseudonymize(player_id) -> 64 hex chars``; results are cached (rosters repeat a lot)."""

    def __init__(self, key: str | bytes) -> None:
        key_bytes = key.encode("utf-8") if isinstance(key, str) else key
        if not key_bytes:
            raise ValueError("the pseudonym key must not be empty")
        self._key = key_bytes
        #: the cached function itself: the same results without a method call (hot loops)
        self.hash = lru_cache(maxsize=65536)(self._hash)

    def _hash(self, player_id: str) -> str:
        return hmac.new(self._key, player_id.encode("utf-8"), hashlib.sha256).hexdigest()

    def __call__(self, player_id: str) -> str:
        return self.hash(player_id)


def pseudonymize(player_id: str, key: str | bytes) -> str:
    """HMAC-SHA256 of ``player_id`` under ``key`` as 64 lowercase hex characters."""
    key_bytes = key.encode("utf-8") if isinstance(key, str) else key
    return hmac.new(key_bytes, player_id.encode("utf-8"), hashlib.sha256).hexdigest()
