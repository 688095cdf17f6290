"""edgefinder: statistically robust edges in esports and futures data."""

__version__ = "0.1.0"

PURPOSE = "research/ops"
DISCLAIMER = (
    "For research and operations only. Not for gambling or real-money betting decisions; "
    "any recommendation that leads to a production action must pass human review."
)
