"""The shared whole-ATLAS states: every prefix is bit for bit what reading and computing up to its
end gives, and a forward pass and a paper trade inside the cache figure the same."""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console

from edgefinder.markets import atlas, state_cache
from edgefinder.markets.physics import PhysicsConfig, state_arrays
from edgefinder.markets.synth import SynthConfig, generate_atlas, session_dates


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("cache") / "a"
    generate_atlas(root, SynthConfig(sessions=10, seed=9, edge="reverting"))
    return root


def test_a_prefix_is_the_states_computed_up_to_its_end(data) -> None:
    # Ends inside sessions, at session starts, before the first bar and past the last; every
    # timeframe; two threshold sets: the same arrays, dtypes and bits as read_bars + state_arrays.
    dates = session_dates(SynthConfig().start, 10)
    ends = [None, 0, atlas.session_start(dates[3].isoformat()) + 7 * 3600 + 15]
    ends += [atlas.session_start(d.isoformat()) for d in dates[1::3]]
    with state_cache.shared_states():
        for phys in (PhysicsConfig(), PhysicsConfig(snap_z=1.5)):
            for tf in atlas.available_timeframes(data):
                for end in ends:
                    ref = state_arrays(atlas.read_bars(data, tf, None, end), phys)
                    got = state_cache.states(data, tf, phys, end)
                    assert set(got) == set(ref)
                    for k in ref:
                        assert got[k].dtype == ref[k].dtype, (tf, end, k)
                        np.testing.assert_array_equal(got[k], ref[k], err_msg=f"{tf} {end} {k}")
                        assert not got[k].flags.writeable  # shared with the other folds


def test_off_outside_the_block_and_a_changed_file_is_read_again(data, tmp_path) -> None:
    assert not state_cache.enabled()
    st = state_cache.states(data, "1h", PhysicsConfig())
    assert st["close"].flags.writeable  # computed afresh, nothing shared
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    with state_cache.shared_states():
        before = state_cache.states(copy, "1h", PhysicsConfig())
        path = atlas.month_files(copy, "1h")[-1]
        bars = atlas.read_bars(copy, "1h")
        last = bars[bars["timestamp"] >= bars["timestamp"].iloc[-1]]
        import pyarrow as pa
        import pyarrow.parquet as pq

        t = pq.read_table(path)
        keep = t.slice(0, t.num_rows - 1)  # the month file loses its last bar
        pq.write_table(pa.Table.from_batches(keep.to_batches(), t.schema), path)
        after = state_cache.states(copy, "1h", PhysicsConfig())
    assert after["timestamp"].size == before["timestamp"].size - 1
    assert int(last["timestamp"].iloc[0]) not in set(after["timestamp"].tolist())


def test_phases_2_to_4_inside_the_cache_are_identical(data, tmp_path) -> None:
    # Discovery, the parameter search and the forward pass run once reading the ATLAS afresh and
    # once from a cache that already holds the whole series: the same report and trades.
    from edgefinder.markets.forward import ForwardConfig, run_forward_pass
    from edgefinder.markets.orchestrator import Orchestrator

    dates = session_dates(SynthConfig().start, 10)

    def run(ck) -> tuple:
        Orchestrator(
            data,
            ck,
            iterations=3,
            train_until=dates[6].isoformat(),
            timeframes="5m,1m,15s",
            dashboard=False,
            console=Console(file=io.StringIO()),
        ).run(fresh=True)
        r = run_forward_pass(
            data, ck, ForwardConfig(), forward_until=dates[8].isoformat(), fresh=True
        )
        return r.report, r.trades

    plain = run(tmp_path / "plain")
    with state_cache.shared_states():
        for tf in ("5m", "1m", "15s"):
            state_cache.states(data, tf, PhysicsConfig())  # whole series already cached
        cached = run(tmp_path / "cached")
    assert plain[0] == cached[0]
    assert plain[1].equals(cached[1]) and len(plain[1]) > 0
