"""Phase 3's template steps give the same playbook whatever runs them and in whatever order they
finish: inline (each when its result is taken), all at once when submitted, on threads (a study's Dask tasks are checked
against the serial study in ``test_markets_walkforward_dask.py``)."""

from __future__ import annotations

import pytest

from edgefinder.markets.playbook import optimize_templates

pytestmark = pytest.mark.slow


class _EagerPool:
    """Each call runs when it is submitted: every template's step before the first is taken."""

    def share(self, fn, *args):
        return fn(*args)

    def submit(self, fn, *args):
        class Done:
            value = fn(*args)

            def result(self):
                return self.value

        return Done()


class _ThreadPool:
    """Calls on four threads, finishing in whatever order they do."""

    def __init__(self, ex) -> None:
        self.ex = ex
        self.steps = 0

    def share(self, fn, *args):
        return fn(*args)

    def submit(self, fn, *args):
        self.steps += 1
        return self.ex.submit(fn, *args)


def test_any_pool_gives_the_same_library_event_for_event(tmp_path):
    # A synthetic ATLAS's real templates (Phase 2 and 2.5 of a small run), then Phase 3 with its
    # steps run inline, eagerly at submission, and on threads: the ids children get,
    # the library, the fissions and every progress event are the same.
    import io
    import pickle
    from concurrent.futures import ThreadPoolExecutor

    from rich.console import Console

    from edgefinder.markets.orchestrator import Orchestrator
    from edgefinder.markets.playbook import InlinePool
    from edgefinder.markets.synth import SynthConfig, generate_atlas

    root = tmp_path / "atlas"
    generate_atlas(root, SynthConfig(sessions=12, seed=9, edge="reverting"))
    ck = tmp_path / "ck"
    Orchestrator(
        root,
        ck,
        iterations=2,
        timeframes="5m,1m,15s",
        dashboard=False,
        console=Console(file=io.StringIO()),
    ).run()
    templates = pickle.loads((ck / "templates.pkl").read_bytes())

    def phase3(pool) -> tuple:
        events: list = []
        res = optimize_templates(
            templates,
            root,
            iterations=6,
            seed=5,
            sampler="tpe",
            pool=pool,
            progress=lambda e, i: events.append((e, i)),
        )
        return res.library, res.fissions, res.skipped_members, events

    ref = phase3(InlinePool())
    # many splits, some of a child: ids that depend on the order in which results are taken
    assert len(ref[1]) >= 10 and any(f["depth"] == 2 for f in ref[1]), ref[1]
    assert sum(e == "trials" for e, _ in ref[3]) == len(ref[0])  # every entry had trades
    assert phase3(None) == ref
    assert pickle.dumps(phase3(_EagerPool())) == pickle.dumps(ref)
    with ThreadPoolExecutor(4) as ex:
        threads = _ThreadPool(ex)
        assert pickle.dumps(phase3(threads)) == pickle.dumps(ref)
    # one step a template, children included (a split parent's step decided the split)
    assert threads.steps >= len(templates) + sum(len(f["children"]) for f in ref[1])
