from pathlib import Path

import pytest
from pydantic import ValidationError

from edgefinder.settings import Settings


def test_defaults_point_at_embedded_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("EDGEFINDER_DATABASE_URL", "EDGEFINDER_REDIS_URL", "EDGEFINDER_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    s = Settings(_env_file=None)
    assert s.redis_url is None
    assert s.data_dir == Path("edgefinder-data")
    assert s.effective_database_url == "sqlite:///edgefinder-data/edgefinder.sqlite3"


def test_environment_and_explicit_values(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGEFINDER_DATABASE_URL", "postgresql://u@db:5432/x")
    monkeypatch.setenv("EDGEFINDER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("EDGEFINDER_LOG_LEVEL", "debug")
    s = Settings(_env_file=None)
    assert s.effective_database_url == "postgresql://u@db:5432/x"
    assert s.data_dir == tmp_path
    assert s.log_level == "DEBUG"
    # An explicit value (what a CLI flag passes) wins over the environment.
    assert (
        Settings(_env_file=None, database_url="sqlite:///y.db").effective_database_url
        == "sqlite:///y.db"
    )


def test_bad_log_level_is_rejected() -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, log_level="LOUD")


def test_forward_pass_gates_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(_env_file=None)
    assert (s.match_distance, s.min_prob, s.min_conf, s.q_max) == (3.0, 0.05, 0.0, 0.10)
    monkeypatch.setenv("EDGEFINDER_MATCH_DISTANCE", "2.5")
    monkeypatch.setenv("EDGEFINDER_Q_MAX", "0.2")
    s = Settings(_env_file=None)
    assert (s.match_distance, s.q_max) == (2.5, 0.2)
    monkeypatch.setenv("EDGEFINDER_MIN_PROB", "1.5")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)
