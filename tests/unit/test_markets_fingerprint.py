"""The data fingerprint every phase checks: read once per process while the ATLAS's files are
unchanged, read again (and different) once a file changes."""

from __future__ import annotations

import pandas as pd
import pytest

from edgefinder.markets import atlas, checkpoints
from edgefinder.markets.synth import SynthConfig, generate_atlas, session_dates


@pytest.fixture()
def data(tmp_path):
    root = tmp_path / "a"
    generate_atlas(root, SynthConfig(sessions=6, seed=4, edge="none"))
    return root


def test_fingerprint_is_read_once_and_follows_a_changed_file(data, monkeypatch) -> None:
    reads: list[tuple[str, int | None]] = []
    real = atlas.read_bars

    def counting(root, tf, start=None, end=None):  # type: ignore[no-untyped-def]
        reads.append((tf, end))
        return real(root, tf, start, end)

    monkeypatch.setattr(atlas, "read_bars", counting)
    checkpoints._content_fingerprint.cache_clear()
    end = atlas.session_start(session_dates(SynthConfig().start, 6)[4].isoformat())
    first = checkpoints.data_fingerprint(data, "1h", end)
    again = checkpoints.data_fingerprint(str(data) + "/", "1h", end)  # the same directory
    assert again == first and len(reads) == 1
    whole = checkpoints.data_fingerprint(data, "1h", None)  # another end: read, and it differs
    assert len(reads) == 2 and whole["bars"] > first["bars"] and whole["end"] > end

    # one bar's close changes in place: the month file's size or mtime changes with it
    path = atlas.month_files(data, "1h")[0]
    bars = pd.read_parquet(path)
    bars.loc[0, "close"] += 0.25
    bars.to_parquet(path, index=False)
    changed = checkpoints.data_fingerprint(data, "1h", end)
    assert len(reads) == 3
    assert changed["bars"] == first["bars"] and changed["sha256"] != first["sha256"]
