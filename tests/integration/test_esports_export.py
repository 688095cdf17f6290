"""Parquet export on both back ends: round trip against extract_round_features, no raw player id, metadata.

Simulated matches go through the real command line (``esports ingest --from-file``, ``analyze``,
``export``) into a private SQLite file and a private Postgres database. The simulator starts a match
every two hours from 2025-01-01 00:00 UTC, so 30 matches span three match dates (12, 12 and 6).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from edgefinder import DISCLAIMER, PURPOSE
from edgefinder.app import create_app
from edgefinder.esports.aggregate import ALL_COLUMNS, KEY_COLUMNS, extract_round_features
from edgefinder.esports.export import export_datasets
from edgefinder.esports.pseudonym import pseudonymize
from edgefinder.esports.simulate import simulate_to_file
from edgefinder.settings import Settings
from tests.cli_runs import clean_env, run_edgefinder
from tests.esports_pg import private_pg_database

pytestmark = pytest.mark.slow
KEY = "export-test-key"
N_MATCHES = 30


def _cli(url: str, tmp: Path, *args: str) -> str:
    env = clean_env(EDGEFINDER_PSEUDONYM_KEY=KEY, EDGEFINDER_DATA_DIR=str(tmp), COLUMNS="200")
    r = run_edgefinder(["--database-url", url, *args], env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _raw_player_ids(path: Path) -> set[str]:
    ids: set[str] = set()
    for line in path.read_text().splitlines():
        ev = json.loads(line)
        if "player_id" in ev:
            ids.add(ev["player_id"])
        p = ev.get("payload") or {}
        for team in p.get("teams") or []:
            ids.update(team.get("players") or [])
        ids.update(v for k in ("killer", "victim") if isinstance(v := p.get(k), str))
        if isinstance(ev.get("actor"), str):
            ids.add(ev["actor"])
    return ids


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def exported(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp(f"export-{request.param}")
    events = tmp / "events.jsonl"
    simulate_to_file(N_MATCHES, 41, events)
    with (
        private_pg_database(request.getfixturevalue("pg_url"), "export")
        if request.param == "postgres"
        else _sqlite(tmp)
    ) as url:
        _cli(url, tmp, "esports", "ingest", "--from-file", str(events), "--no-progress")
        _cli(url, tmp, "esports", "analyze")
        out = tmp / "out"
        printed = _cli(url, tmp, "esports", "export", "--out", str(out))
        yield {"url": url, "out": out, "events": events, "tmp": tmp, "printed": printed}


class _sqlite:
    def __init__(self, tmp: Path) -> None:
        self.url = f"sqlite:///{(tmp / 'export.sqlite3').as_posix()}"

    def __enter__(self) -> str:
        return self.url

    def __exit__(self, *_: object) -> None:
        pass


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(list(KEY_COLUMNS)).reset_index(drop=True)


def test_features_round_trip_equals_extract_round_features(exported: dict) -> None:
    table = pads.dataset(
        exported["out"] / "features", format="parquet", partitioning="hive"
    ).to_table()
    back = table.to_pandas()
    dates = sorted({str(d) for d in back["match_date"]})
    assert dates == ["2025-01-01", "2025-01-02", "2025-01-03"]
    assert back.groupby("match_date", observed=True)["match_id"].nunique().tolist() == [12, 12, 6]
    expected = extract_round_features(exported["url"])
    got = _sorted(back.drop(columns="match_date"))
    assert list(got.columns) == list(ALL_COLUMNS)
    pd.testing.assert_frame_equal(got, _sorted(expected), check_exact=True)
    assert "features" in exported["printed"] and f"{len(expected):,}" in exported["printed"]


def test_no_raw_player_id_in_any_exported_file_and_metadata_everywhere(exported: dict) -> None:
    raw = _raw_player_ids(exported["events"])
    assert len(raw) >= 10 * 2  # rosters of at least two teams
    files = sorted(exported["out"].rglob("*.parquet"))
    datasets = {f.relative_to(exported["out"]).parts[0] for f in files}
    assert datasets == {"features", "micro_actions", "correlation_results"}
    hashes: set[str] = set()
    for f in files:
        meta = pq.read_metadata(f).metadata
        assert meta[b"purpose"].decode() == PURPOSE and meta[b"disclaimer"].decode() == DISCLAIMER
        assert meta[b"dataset"].decode() == f.relative_to(exported["out"]).parts[0]
        df = pq.read_table(f).to_pandas()
        cells = {str(v) for col in df.columns for v in df[col].tolist()}
        text = "\n".join(cells) + "\n".join(v.decode(errors="replace") for v in meta.values())
        leaked = [p for p in raw if p in text]
        assert not leaked, f"{f}: raw player ids {leaked[:3]}"
        if "player_hash" in df.columns:
            hashes.update(df["player_hash"])
    # the signals are there, under their HMAC pseudonyms
    assert hashes and hashes <= {pseudonymize(p, KEY) for p in raw}
    micro = pads.dataset(exported["out"] / "micro_actions", partitioning="hive").to_table()
    n_signals = sum(
        1 for line in exported["events"].read_text().splitlines() if '"signal_id"' in line
    )
    assert micro.num_rows == n_signals


def test_since_keeps_later_dates_and_a_second_export_replaces_partitions(exported: dict) -> None:
    out = exported["tmp"] / "since"
    _cli(
        exported["url"],
        exported["tmp"],
        "esports",
        "export",
        "--out",
        str(out),
        "--since",
        "2025-01-02",
    )
    feats = pads.dataset(out / "features", partitioning="hive").to_table().to_pandas()
    assert sorted({str(d) for d in feats["match_date"]}) == ["2025-01-02", "2025-01-03"]
    full = pads.dataset(exported["out"] / "features", partitioning="hive").to_table().to_pandas()
    assert len(feats) == int((full["match_date"].astype(str) >= "2025-01-02").sum())
    again = export_datasets(exported["url"], out, since=date(2025, 1, 2))
    assert again[0].name == "features" and again[0].rows == len(feats)
    assert len(list((out / "features").rglob("*.parquet"))) == 2  # replaced, not duplicated
    cmd = [
        sys.executable,
        "-m",
        "edgefinder",
        "--database-url",
        exported["url"],
        "esports",
        "export",
        "--out",
        str(out),
        "--since",
        "yesterday",
    ]
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "--since must be a date YYYY-MM-DD" in bad.stderr


def test_api_serves_the_latest_runs_features_as_parquet(exported: dict) -> None:
    client = TestClient(create_app(Settings(database_url=exported["url"])))
    r = client.get("/api/v1/analytics/export/features.parquet")
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.apache.parquet"
    run_id = client.get("/api/v1/analytics/stats/summary").json()["last_run"]["run_id"]
    assert r.headers["x-edgefinder-run-id"] == run_id
    table = pq.read_table(io.BytesIO(r.content))
    assert table.schema.metadata[b"disclaimer"].decode() == DISCLAIMER
    assert table.schema.metadata[b"run_id"].decode() == run_id
    pd.testing.assert_frame_equal(
        _sorted(table.to_pandas()), _sorted(extract_round_features(exported["url"]))
    )
    assert int(r.headers["x-edgefinder-rows"]) == table.num_rows


def test_features_endpoint_404_before_any_run(sqlite_url: str) -> None:
    r = TestClient(create_app(Settings(database_url=sqlite_url))).get(
        "/api/v1/analytics/export/features.parquet"
    )
    assert r.status_code == 404 and "run the analysis first" in r.json()["message"]
