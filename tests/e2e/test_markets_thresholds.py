"""Physics thresholds are settings: Settings/env → PhysicsConfig, `markets run`
flags, Phase 2's fingerprint and record in state.json, and the forward pass reusing (and guarding)
the recorded thresholds. Small synthetic ATLAS (8 sessions, 5m/1m/15s), 2 Optuna trials."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pandas as pd
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from edgefinder.markets.cascade import FractalCascadeScanner
from edgefinder.markets.cli import markets_app
from edgefinder.markets.discovery import load_manifest
from edgefinder.markets.forward import ForwardError, resolve_physics
from edgefinder.markets.physics import PhysicsConfig
from edgefinder.markets.synth import SynthConfig, generate_atlas
from edgefinder.settings import Settings, get_settings

TFS = "5m,1m,15s"
ENV = (
    "EDGEFINDER_SNAP_Z",
    "EDGEFINDER_SNAP_VELOCITY",
    "EDGEFINDER_DRIVE_MOMENTUM",
    "EDGEFINDER_DRIVE_COHERENCE",
)


@pytest.fixture(autouse=True)
def _clean_settings(monkeypatch):
    """No threshold from the caller's environment; the CLI's cached settings re-read per test."""
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# ----------------------------------------------------------------------------- settings → config


def test_settings_defaults_equal_the_physics_defaults():
    s = Settings(_env_file=None)
    assert PhysicsConfig.from_settings(s) == PhysicsConfig()
    assert (s.snap_z, s.snap_velocity, s.drive_momentum, s.drive_coherence) == (2.0, 0.5, 5.0, 0.3)


def test_environment_sets_the_thresholds_and_a_flag_wins(monkeypatch):
    monkeypatch.setenv("EDGEFINDER_SNAP_Z", "2.5")
    monkeypatch.setenv("EDGEFINDER_SNAP_VELOCITY", "0.75")
    monkeypatch.setenv("EDGEFINDER_DRIVE_MOMENTUM", "8")
    monkeypatch.setenv("EDGEFINDER_DRIVE_COHERENCE", "1")
    s = Settings(_env_file=None)
    cfg = PhysicsConfig.from_settings(s)
    assert cfg == PhysicsConfig(
        snap_z=2.5, snap_velocity=0.75, drive_momentum=8.0, drive_coherence=1.0
    )
    assert cfg.thresholds() == {
        "snap_z": 2.5,
        "snap_velocity": 0.75,
        "drive_momentum": 8.0,
        "drive_coherence": 1.0,
    }
    # a CLI flag (not None) overrides the environment; None leaves the setting
    assert PhysicsConfig.from_settings(s, snap_z=3.0, drive_momentum=None) == dataclasses.replace(
        cfg, snap_z=3.0
    )
    with pytest.raises(TypeError):
        PhysicsConfig.from_settings(s, rp=10)


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("EDGEFINDER_SNAP_Z", "0"),
        ("EDGEFINDER_SNAP_VELOCITY", "-0.5"),
        ("EDGEFINDER_DRIVE_MOMENTUM", "0"),
        ("EDGEFINDER_DRIVE_COHERENCE", "0"),
        ("EDGEFINDER_DRIVE_COHERENCE", "1.01"),
        ("EDGEFINDER_SNAP_Z", "abc"),
    ],
)
def test_bad_thresholds_are_rejected(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_resolve_physics_reads_the_record_and_refuses_other_thresholds(tmp_path):
    assert resolve_physics(tmp_path, {"snap_z": 2.5}) == PhysicsConfig(
        snap_z=2.5
    )  # no record: as asked
    disc: dict = {"timeframes": ["5m", "1m", "15s"], "train_until": None}
    (tmp_path / "state.json").write_text(json.dumps({"version": 1, "phases": {"discovery": disc}}))
    assert (
        resolve_physics(tmp_path, None) == PhysicsConfig()
    )  # recorded before thresholds were settings
    disc["physics"] = dataclasses.asdict(PhysicsConfig(snap_z=3.0, drive_coherence=0.2))
    (tmp_path / "state.json").write_text(json.dumps({"version": 1, "phases": {"discovery": disc}}))
    rec = PhysicsConfig(snap_z=3.0, drive_coherence=0.2)
    assert resolve_physics(tmp_path, None) == rec
    assert resolve_physics(tmp_path, {"snap_z": 3.0}) == rec  # the same value may be passed
    assert resolve_physics(tmp_path, rec) == rec
    with pytest.raises(ForwardError, match=r"--snap-z 2\.5 differs from the 3") as exc:
        resolve_physics(tmp_path, {"snap_z": 2.5, "snap_velocity": 0.5})
    assert "\n" not in str(exc.value)
    with pytest.raises(ForwardError, match="--drive-coherence 0.3"):
        resolve_physics(
            tmp_path, PhysicsConfig(snap_z=3.0)
        )  # a full config: every field is compared


# ----------------------------------------------------------------------------- CLI end to end


@pytest.fixture(scope="module")
def atlas_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("thresholds") / "atlas"
    generate_atlas(root, SynthConfig(sessions=8, seed=3, edge="planted", base="15s"))
    return root


def _run(root, ck, *extra):
    res = CliRunner().invoke(
        markets_app,
        [
            "run",
            "--data",
            str(root),
            "--checkpoint-dir",
            str(ck),
            "--no-dashboard",
            "--iterations",
            "2",
            "--timeframes",
            TFS,
            *extra,
        ],
    )
    return res


def _disc(ck) -> dict:
    return json.loads((ck / "state.json").read_text())["phases"]["discovery"]


def _keys(ck) -> set[tuple]:
    """Pattern bars of a manifest (not their depth: a stricter threshold removes parents, so a bar's
    chain may change either way)."""
    return {
        (e.timestamp, e.timeframe, e.pattern_type) for e in load_manifest(ck / "manifest.parquet")
    }


@pytest.fixture(scope="module")
def runs(atlas_root, tmp_path_factory):
    """The default thresholds, then the same checkpoints re-run with a stricter --snap-z."""
    ck = tmp_path_factory.mktemp("ck_thresholds")
    r = _run(atlas_root, ck)
    assert r.exit_code == 0, r.output
    default = {"disc": _disc(ck), "keys": _keys(ck)}
    r = _run(atlas_root, ck, "--snap-z", "3")
    assert r.exit_code == 0, r.output
    return ck, default, {"disc": _disc(ck), "keys": _keys(ck), "output": r.output}


def test_stricter_snap_z_reruns_discovery_and_finds_a_subset(runs):
    ck, default, strict = runs
    assert default["disc"]["physics"] == dataclasses.asdict(PhysicsConfig())
    assert strict["disc"]["physics"] == dataclasses.asdict(PhysicsConfig(snap_z=3.0))
    assert strict["disc"]["key"] != default["disc"]["key"]  # the fingerprint covers the thresholds
    assert "resumed" not in strict["output"]  # Phase 2 (and so 2.5, 3) ran again
    assert default["disc"]["patterns"] > 0
    # |z| > 3 implies |z| > 2, so every pattern bar is one of the default's
    assert strict["keys"] <= default["keys"]
    assert strict["disc"]["patterns"] == len(strict["keys"]) <= default["disc"]["patterns"]
    roche = lambda ks: sum(k[2] == "ROCHE_SNAP" for k in ks)  # noqa: E731
    assert roche(strict["keys"]) < roche(default["keys"])


def test_same_thresholds_resume_and_bad_flags_are_usage_errors(runs, atlas_root):
    ck, _, strict = runs
    r = _run(atlas_root, ck, "--snap-z", "3")
    assert r.exit_code == 0 and "Phase 2 — discovery: resumed from checkpoint" in r.output
    assert _disc(ck)["key"] == strict["disc"]["key"]
    for flag, value in (
        ("--snap-z", "0"),
        ("--snap-velocity", "-1"),
        ("--drive-momentum", "0"),
        ("--drive-coherence", "0"),
        ("--drive-coherence", "1.5"),
    ):
        r = _run(atlas_root, ck, flag, value)
        assert r.exit_code == 2 and flag in r.output, (flag, value, r.output)


def test_forward_pass_uses_the_recorded_thresholds(runs, atlas_root, tmp_path, monkeypatch):
    ck0, _, _ = runs
    ck = tmp_path / "ck"
    shutil.copytree(ck0, ck)
    # no threshold given: the ones Phase 2 recorded (snap_z 3), not the defaults
    r = _run(atlas_root, ck, "--forward-pass")
    assert r.exit_code == 0, r.output
    assert "Phase 2 — discovery" not in r.output  # existing playbook
    report = json.loads((ck / "phase4_report.json").read_text())
    assert report["physics"] == dataclasses.asdict(PhysicsConfig(snap_z=3.0))

    # ... and the cascade really ran with them: its candidate count is the snap_z=3 scanner's
    def candidates(cfg: PhysicsConfig) -> int:
        sc = FractalCascadeScanner(TFS.split(","), "15s", cfg)
        return len(sc.scan(sc.compute_states(atlas_root)).levels[-1])

    assert report["gates"]["candidates"] == candidates(PhysicsConfig(snap_z=3.0))
    assert candidates(PhysicsConfig(snap_z=3.0)) < candidates(PhysicsConfig())
    before = (ck / "phase4_report.json").read_text()
    # other thresholds on this playbook, by flag or by environment: one-line refusal, nothing touched
    r = _run(atlas_root, ck, "--forward-pass", "--snap-z", "2.5")
    assert r.exit_code != 0 and isinstance(r.exception, ForwardError)
    assert "--snap-z 2.5 differs from the 3" in str(r.exception) and "\n" not in str(r.exception)
    monkeypatch.setenv("EDGEFINDER_DRIVE_MOMENTUM", "6")
    get_settings.cache_clear()
    r = _run(atlas_root, ck, "--forward-pass", "--snap-z", "3")
    assert isinstance(r.exception, ForwardError) and "--drive-momentum 6" in str(r.exception)
    assert (ck / "phase4_report.json").read_text() == before
    monkeypatch.delenv("EDGEFINDER_DRIVE_MOMENTUM")
    get_settings.cache_clear()
    # the recorded value itself is accepted (and resumes the same journal: identical report)
    r = _run(atlas_root, ck, "--forward-pass", "--snap-z", "3")
    assert r.exit_code == 0, r.output
    a, b = json.loads(before), json.loads((ck / "phase4_report.json").read_text())
    assert pd.DataFrame(a["sessions"]).equals(pd.DataFrame(b["sessions"])) and a["all"] == b["all"]
