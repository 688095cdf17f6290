"""Round win probability: the state of a round at any moment, a calibrated model of P(win | state),
its held-out evaluation, and the value of each micro action in win-probability points.

Modules: :mod:`.state` (the round state from the stored tables), :mod:`.metrics` (log loss, Brier,
AUC, ECE and their match-bootstrap CIs), :mod:`.model` (fit and evaluate, one model per game),
:mod:`.store` (versioned models in the database), :mod:`.actions` (win probability added per action).
"""
