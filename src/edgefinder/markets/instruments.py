"""Futures contract specifications and trading-cost defaults (CME equity-index futures).

Units, everywhere in this module:

* ``tick_size``  — points (index points per minimum price increment)
* ``tick_value`` — US dollars per tick per contract
* ``point_value`` — US dollars per point per contract (= tick_value / tick_size)
* ``commission_per_side`` — US dollars per contract per side (entry or exit), all-in
  (broker + exchange + NFA fees; a round trip costs twice this)
* ``slippage_ticks`` — ticks lost per side against the trade on market orders
"""

from __future__ import annotations

from dataclasses import dataclass

from edgefinder.errors import EdgefinderError


class UnknownInstrument(EdgefinderError):
    """The requested futures symbol is not in the instrument table."""


@dataclass(frozen=True)
class Instrument:
    """One futures contract. Money in US dollars, distances in points or ticks (see module doc)."""

    symbol: str
    tick_size: float  # points per tick
    tick_value: float  # dollars per tick per contract
    point_value: float  # dollars per point per contract
    commission_per_side: float  # dollars per contract per side
    slippage_ticks: float  # ticks per side against the trade

    def __post_init__(self) -> None:
        # A table typo (e.g. $5/tick with $2/pt on a 0.25 tick) would silently mis-price every trade.
        if abs(self.tick_value - self.tick_size * self.point_value) > 1e-9:
            raise ValueError(
                f"{self.symbol}: tick_value ${self.tick_value} != tick_size {self.tick_size} pt "
                f"x point_value ${self.point_value}/pt"
            )

    @property
    def round_trip_cost_dollars(self) -> float:
        """Commission plus slippage for entry and exit of one contract, in dollars."""
        return 2.0 * (self.commission_per_side + self.slippage_ticks * self.tick_value)

    def describe(self) -> str:
        """One line for reports: ``ES: $12.50 a tick (0.25 points), $29.50 a round trip``."""
        return (
            f"{self.symbol}: ${self.tick_value:,.2f} a tick ({self.tick_size:g} points), "
            f"${self.round_trip_cost_dollars:,.2f} a round trip"
        )

    def ticks_to_dollars(self, ticks: float) -> float:
        """Gross dollars for a move of ``ticks`` ticks on one contract."""
        return ticks * self.tick_value

    def points_to_ticks(self, points: float) -> float:
        """Convert a price distance in points to ticks."""
        return points / self.tick_size


# Commission defaults are typical retail all-in rates (2024): micros ~$0.62/side, minis ~$2.25/side.
# One tick of slippage per side on market orders is the usual conservative assumption.
INSTRUMENTS: dict[str, Instrument] = {
    "MNQ": Instrument(
        "MNQ",
        tick_size=0.25,
        tick_value=0.50,
        point_value=2.0,
        commission_per_side=0.62,
        slippage_ticks=1.0,
    ),
    "NQ": Instrument(
        "NQ",
        tick_size=0.25,
        tick_value=5.00,
        point_value=20.0,
        commission_per_side=2.25,
        slippage_ticks=1.0,
    ),
    "ES": Instrument(
        "ES",
        tick_size=0.25,
        tick_value=12.50,
        point_value=50.0,
        commission_per_side=2.25,
        slippage_ticks=1.0,
    ),
    "MES": Instrument(
        "MES",
        tick_size=0.25,
        tick_value=1.25,
        point_value=5.0,
        commission_per_side=0.62,
        slippage_ticks=1.0,
    ),
}

DEFAULT_SYMBOL = "MNQ"


def get_instrument(symbol: str = DEFAULT_SYMBOL) -> Instrument:
    """Return the :class:`Instrument` for ``symbol`` (case-insensitive); raise UnknownInstrument."""
    key = symbol.strip().upper()
    try:
        return INSTRUMENTS[key]
    except KeyError:
        known = ", ".join(sorted(INSTRUMENTS))
        raise UnknownInstrument(f"unknown instrument {symbol!r}; known symbols: {known}") from None
