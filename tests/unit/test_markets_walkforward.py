"""A rolling fold learns only from its window; the trial ledger holds every scored parameter set."""

from __future__ import annotations

import io

import pandas as pd
from rich.console import Console

from edgefinder.markets import atlas
from edgefinder.markets.ledger import ledger_frame, playbook_rows
from edgefinder.markets.orchestrator import Orchestrator
from edgefinder.markets.synth import SynthConfig, generate_atlas, session_dates


def test_rolling_window_learns_only_inside_it_and_every_trial_is_ledgered(tmp_path) -> None:
    generate_atlas(tmp_path / "a", SynthConfig(sessions=12, seed=4, edge="reverting"))
    dates = session_dates(SynthConfig().start, 12)
    lo, hi = atlas.session_start(dates[4].isoformat()), atlas.session_start(dates[9].isoformat())
    events: list[dict] = []
    orch = Orchestrator(
        tmp_path / "a",
        tmp_path / "ck",
        iterations=4,
        learn_from=dates[4].isoformat(),
        train_until=dates[9].isoformat(),
        timeframes="5m,1m,15s",
        dashboard=False,
        console=Console(file=io.StringIO()),
        on_playbook_event=lambda e, info: events.append(info) if e == "trials" else None,
    )
    orch.run(fresh=True)
    ts = [p.timestamp for p in orch._need_manifest()]
    assert ts and lo <= min(ts) and max(ts) < hi
    # the same run without the window sees earlier patterns too
    full = Orchestrator(
        tmp_path / "a",
        tmp_path / "ck_full",
        iterations=4,
        train_until=dates[9].isoformat(),
        timeframes="5m,1m,15s",
        dashboard=False,
        console=Console(file=io.StringIO()),
    )
    full.run(fresh=True)
    assert min(p.timestamp for p in full._need_manifest()) < lo
    # every template searched reports its 4 scored parameter sets, best first in the library
    library = orch.load_library()
    searched = {int(e["template_id"]) for e in events}
    assert searched and searched <= set(library)
    rows = ledger_frame(r for e in events for r in playbook_rows("MNQ", 0, e))
    assert len(rows) == 4 * len(events)
    for e in events:
        best = max(s for _, s in e["trials"])
        assert library[int(e["template_id"])]["train_score"] == best
    assert isinstance(rows, pd.DataFrame) and set(rows["stage"]) == {"playbook"}
