"""Pipeline orchestrator: Phase 2 (discovery) → 2.5 (clustering) → 3 (playbook), checkpointed.

Artifacts in ``checkpoint_dir`` (the original names, docs/decisions.md §D31):

* ``manifest.parquet`` — Phase 2 pattern manifest (with parent chains)
* ``templates.pkl`` and ``clustering_scaler.pkl`` — Phase 2.5 (the scaler, which Phase 4 needs)
* ``pattern_library.pkl`` + ``pattern_library.json`` — Phase 3
* ``state.json`` — which phases are complete and the *inputs fingerprint* of each
  (:mod:`edgefinder.markets.checkpoints` owns the file names and ``state.json``)

A rerun skips every phase whose fingerprint still matches and whose files exist. The fingerprint
of Phase 2 covers the ATLAS files of the chosen timeframes (name, size, mtime), the timeframes,
``train_until``, the cascade mode and the physics thresholds; Phase 2.5 adds the seed and the
template cap; Phase 3 adds the iterations and the instrument. A changed input re-runs its phase and every later one. ``run(fresh=True)``
deletes the artifacts first.

``train_until``: only bars opening before it are used. A plain date ``YYYY-MM-DD`` means the start
of the CME session that ends on that date (17:00 America/Chicago the evening before), so whole
sessions are either in-sample (before) or out-of-sample (that session and later); a date with a
time is taken literally (naive = UTC). See :func:`resolve_train_until`.

Phases 4–5 (forward pass, strategy selection) are ``run_forward_pass()`` and
``run_strategy_selection()``, delegating to ``forward.py`` / ``selection.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from edgefinder.dates import DateFlagError
from edgefinder.errors import EdgefinderError
from edgefinder.markets import atlas
from edgefinder.markets._io import atomic_write_bytes
from edgefinder.markets.checkpoints import (
    CHECKPOINT_FILES,
    LIBRARY,
    MANIFEST,
    PHASE_FILES,
    SCALER,
    TEMPLATES,
    data_fingerprint,
    files_fingerprint,
    read_state,
    write_state,
)
from edgefinder.markets.views import PHASE_TITLES, RunDashboard
from edgefinder.settings import setting_default

__all__ = [
    "CHECKPOINT_FILES",
    "Orchestrator",
    "PipelineError",
    "RunSummary",
    "resolve_train_until",
]

PHASES = tuple(PHASE_TITLES)


class PipelineError(EdgefinderError):
    """The pipeline cannot run on the given inputs (missing data, no timeframes, too few bars)."""


def resolve_train_until(value: Any) -> int | None:
    """``--train-until`` as epoch seconds (exclusive bound on bar open times), or None.

    A date (``YYYY-MM-DD`` text or ``datetime.date``) is the start of the CME session that ends
    on that date; anything else (epoch seconds, ISO date-time) is taken literally, naive = UTC.
    """
    try:
        return atlas.session_start(value, "--train-until")
    except (atlas.AtlasError, DateFlagError) as exc:
        raise PipelineError(str(exc)) from None


@dataclass
class RunSummary:
    """What a ``run()`` did: per phase seconds (0 when resumed), counts, and which phases ran."""

    ran: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    timeframes: list[str] = field(default_factory=list)
    train_until: int | None = None
    patterns: int = 0
    patterns_per_level: list[dict] = field(default_factory=list)
    templates: int = 0
    fissions: int = 0
    library_templates: int = 0
    skipped_members: int = 0
    checkpoint_dir: str = ""
    instrument: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------
# orchestrator
# --------------------------------------------------------------------------------------------


class Orchestrator:
    """Runs Phases 2, 2.5 and 3 with checkpoints (and Phases 4–5 via the two hook methods).

    Args:
        data_dir: the ATLAS root (``{tf}/YYYY_MM.parquet``).
        checkpoint_dir: where the artifacts and ``state.json`` go.
        iterations: Optuna trials per template in Phase 3.
        train_until: exclusive end of the in-sample data (see :func:`resolve_train_until`).
        timeframes: restrict the hierarchy (e.g. ``["5m", "1m", "15s"]``); default all present.
        seed: seeds clustering (KMeans), the Optuna samplers and fission.
        dashboard: Rich Live dashboard when stdout is a terminal; progress bars otherwise.
        console: Rich console for all output (default: a new stdout console).
        instrument: futures symbol for PnL and costs (default MNQ).
        physics: the physics thresholds of Phase 2 (``PhysicsConfig``; default the built-in
            ones). They are part of Phase 2's fingerprint and recorded in ``state.json``
            (``phases.discovery.physics``); a forward pass reuses the recorded ones and refuses
            a ``physics`` given here that differs from them.
        cascade: ``context`` (every timeframe scanned, ancestry measured) or ``strict`` (the
            top-down funnel); see :mod:`edgefinder.markets.cascade`. Recorded for the forward pass.
        max_templates: cap on Phase 2.5's coarse cluster count (default
            ``clustering.MAX_COARSE_K``; see :func:`clustering.coarse_k`).
        sampler: Phase 3's Optuna sampler, ``qmc`` or ``tpe`` (see ``playbook._search``).
        learn_from: inclusive start of the in-sample data (same forms as ``train_until``; a
            rolling walk-forward window); default the first bar of the ATLAS.
        on_playbook_event: receives Phase 3's progress events as ``(event, info)`` (a study's
            trial ledger records the ``"trials"`` ones).
        task_pool: a context manager entered around Phase 3 that gives its pool of template
            steps (``playbook.optimize_templates``'s ``pool``; a study's
            :class:`~edgefinder.markets.cluster.WorkerPool`), or None: the steps run inline.
    """

    def __init__(
        self,
        data_dir: str | Path,
        checkpoint_dir: str | Path,
        iterations: int = 50,
        train_until: Any = None,
        timeframes: Sequence[str] | str | None = None,
        seed: int = 0,
        dashboard: bool = True,
        console: Console | None = None,
        instrument: str = "MNQ",
        physics: Any = None,
        cascade: str = setting_default("cascade"),
        max_templates: int | None = None,
        sampler: str = setting_default("sampler"),
        learn_from: Any = None,
        on_playbook_event: Any = None,
        task_pool: Any = None,
    ) -> None:
        from edgefinder.markets.instruments import get_instrument
        from edgefinder.markets.physics import PhysicsConfig

        self.data_dir = Path(data_dir)
        self.checkpoint_dir = Path(checkpoint_dir)
        if int(iterations) < 1:
            raise PipelineError(f"--iterations must be at least 1 (got {iterations})")
        self.iterations = int(iterations)
        self.train_until_raw = train_until
        self.train_until = resolve_train_until(train_until)
        self.learn_from = resolve_train_until(learn_from)
        self.on_playbook_event = on_playbook_event
        self.task_pool = task_pool
        if isinstance(timeframes, str):
            timeframes = [t.strip() for t in timeframes.split(",") if t.strip()]
        self.timeframes_requested = list(timeframes) if timeframes else None
        self.seed = int(seed)
        self.dashboard = bool(dashboard)
        self.console = console or Console()
        self.instrument = get_instrument(instrument)
        #: as given (None = nothing asked): what a forward pass on an existing playbook must match
        self.physics_requested: PhysicsConfig | None = physics
        self.physics: PhysicsConfig = physics if physics is not None else PhysicsConfig()
        from edgefinder.markets.cascade import CASCADE_MODES
        from edgefinder.markets.clustering import MAX_COARSE_K

        if cascade not in CASCADE_MODES:
            raise PipelineError(
                f"--cascade must be one of {', '.join(CASCADE_MODES)}, got {cascade!r}"
            )
        self.cascade = cascade
        self.max_templates = int(max_templates) if max_templates is not None else MAX_COARSE_K
        if self.max_templates < 1:
            raise PipelineError(f"--max-templates must be at least 1 (got {max_templates})")
        if sampler not in ("qmc", "tpe"):
            raise PipelineError(f"--sampler must be qmc or tpe, got {sampler!r}")
        self.sampler = sampler
        # Filled by the phases (or loaded from checkpoints).
        self.timeframes: list[str] = []
        self.manifest: list[Any] | None = None
        self.templates: list[Any] | None = None
        self.scaler: Any = None
        self.engine: Any = None
        self.library: dict[int, dict] | None = None
        self.fissions: list[dict] = []
        self.summary = RunSummary(
            checkpoint_dir=str(self.checkpoint_dir), instrument=self.instrument.describe()
        )

    # ------------------------------------------------------------------ paths and state
    def path(self, name: str) -> Path:
        return self.checkpoint_dir / name

    @property
    def state_path(self) -> Path:
        return self.path("state.json")

    def _read_state(self) -> dict:
        return read_state(self.checkpoint_dir)

    def _write_state(self, state: dict) -> None:
        write_state(self.checkpoint_dir, state)

    def clear_checkpoints(self) -> list[Path]:
        """Delete every known artifact (``--fresh``); returns the paths removed."""
        removed = []
        for name in CHECKPOINT_FILES:
            p = self.path(name)
            if p.exists():
                p.unlink()
                removed.append(p)
        return removed

    # ------------------------------------------------------------------ validation + fingerprint
    def _validate_inputs(self) -> None:
        from edgefinder.markets.discovery import DiscoveryError, FractalDiscoveryAgent

        if not self.data_dir.is_dir():
            raise PipelineError(f"data directory not found: {self.data_dir}")
        try:
            self.timeframes = FractalDiscoveryAgent().resolve_timeframes(
                self.data_dir, self.timeframes_requested
            )
        except DiscoveryError as exc:
            raise PipelineError(
                f"{exc} (expected {self.data_dir}/{{tf}}/YYYY_MM.parquet)"
            ) from None
        rp = self.physics.rp
        top = self.timeframes[0]
        n_top = len(atlas.read_bars(self.data_dir, top, self.learn_from, self.train_until))
        if n_top < rp:
            before = "" if self.train_until is None else f" before {self.train_until_raw}"
            raise PipelineError(
                f"too few bars: {top} has {n_top} bar(s){before} in {self.data_dir}, the physics window "
                f"needs at least {rp}; drop coarse timeframes with --timeframes (e.g. 5m,1m,15s)"
            )
        self.summary.timeframes = list(self.timeframes)
        self.summary.train_until = self.train_until

    def _fingerprints(self) -> dict[str, str]:
        from edgefinder import __version__

        base = {
            "version": __version__,
            "files": files_fingerprint(self.data_dir, self.timeframes),
            "timeframes": self.timeframes,
            "train_until": self.train_until,
            "cascade": self.cascade,
            "physics": dataclasses.asdict(self.physics),
        }
        if self.learn_from is not None:  # absent otherwise: existing checkpoints keep their keys
            base["learn_from"] = self.learn_from
        parts: dict[str, Any] = {"discovery": base}
        parts["clustering"] = {"prev": None, "seed": self.seed, "max_templates": self.max_templates}
        parts["playbook"] = {
            "prev": None,
            "iterations": self.iterations,
            "seed": self.seed,
            "instrument": dataclasses.asdict(self.instrument),
            "sampler": self.sampler,
        }
        keys = {}
        prev = ""
        for ph in PHASES:
            doc = dict(parts[ph])
            if "prev" in doc:
                doc["prev"] = prev
            prev = hashlib.sha256(
                json.dumps(doc, sort_keys=True, default=str).encode()
            ).hexdigest()[:16]
            keys[ph] = prev
        return keys

    def _phase_done(self, state: dict, phase: str, key: str) -> bool:
        rec = state["phases"].get(phase)
        return bool(
            rec and rec.get("key") == key and all(self.path(f).exists() for f in PHASE_FILES[phase])
        )

    # ------------------------------------------------------------------ run
    def run(self, fresh: bool = False) -> RunSummary:
        """Run Phases 2, 2.5 and 3, resuming from matching checkpoints (``fresh`` clears them)."""
        self._validate_inputs()
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        if fresh:
            self.clear_checkpoints()
        state = self._read_state()
        keys = self._fingerprints()
        live = self.dashboard and self.console.is_terminal  # False when stdout is not a terminal
        invalid = False
        with RunDashboard(self.console, live) as disp:
            for phase in PHASES:
                if not invalid and self._phase_done(state, phase, keys[phase]):
                    self._load_phase(phase, state["phases"][phase])
                    self.summary.resumed.append(phase)
                    self.summary.seconds[phase] = 0.0
                    disp.skip_phase(phase)
                    continue
                invalid = True  # every later phase depends on this one's output
                for later in PHASES[PHASES.index(phase) :]:
                    state["phases"].pop(later, None)
                self._write_state(state)
                t0 = time.perf_counter()
                info = getattr(self, f"_run_{phase}")(disp)
                secs = time.perf_counter() - t0
                self.summary.ran.append(phase)
                self.summary.seconds[phase] = round(secs, 3)
                state["phases"][phase] = {
                    "key": keys[phase],
                    "seconds": round(secs, 3),
                    "completed_at": _dt.datetime.now(_dt.UTC).isoformat(),
                    **info,
                }
                self._write_state(state)  # checkpoint after each phase
        return self.summary

    # ------------------------------------------------------------------ phases
    def _run_discovery(self, disp: RunDashboard) -> dict:
        from edgefinder.markets.discovery import (
            FractalDiscoveryAgent,
            manifest_summary,
            save_manifest,
        )

        disp.start_phase("discovery", total=len(self.timeframes))
        agent = FractalDiscoveryAgent(self.physics)
        manifest = agent.scan_atlas_topdown(
            self.data_dir,
            self.timeframes,
            self.learn_from,
            self.train_until,
            cascade=self.cascade,
            on_level=disp.on_level,
        )
        save_manifest(manifest, self.path(MANIFEST))
        self.manifest = manifest
        # physics and cascade: the forward pass replays the playbook with exactly these
        info = {
            "patterns": len(manifest),
            "timeframes": list(self.timeframes),
            "train_until": self.train_until,
            "physics": dataclasses.asdict(self.physics),
            "cascade": self.cascade,
            "levels": agent.level_stats,
            "summary": manifest_summary(manifest),
            "data": data_fingerprint(self.data_dir, self.timeframes[0], self.train_until),
        }
        self._apply_discovery_info(info)
        return info

    def _run_clustering(self, disp: RunDashboard) -> dict:
        from edgefinder.markets.clustering import FractalClusteringEngine, save_scaler

        disp.start_phase("clustering", total=1)
        manifest = self._need_manifest()
        engine = FractalClusteringEngine(seed=self.seed, max_coarse_k=self.max_templates)
        templates = engine.create_templates(manifest)
        atomic_write_bytes(
            pickle.dumps(templates, protocol=pickle.HIGHEST_PROTOCOL), self.path(TEMPLATES)
        )
        if engine.scaler is not None:
            save_scaler(engine.scaler, self.path(SCALER))
        else:  # no patterns: keep an explicit marker so the phase counts as complete
            atomic_write_bytes(pickle.dumps(None), self.path(SCALER))
        self.engine, self.templates, self.scaler = engine, templates, engine.scaler
        disp.templates = len(templates)
        disp.advance(1)
        info = {"templates": len(templates), "coarse_k": engine.n_coarse, "splits": engine.n_splits}
        self.summary.templates = len(templates)
        return info

    def _run_playbook(self, disp: RunDashboard) -> dict:
        from edgefinder.markets.playbook import optimize_templates, save_library

        templates = self._need_templates()
        disp.start_phase("playbook", total=max(1, len(templates)) * self.iterations)

        def progress(event: str, info: dict) -> None:
            if event == "trial":
                disp.advance(1)
            elif event == "fission":
                disp.fissions += 1
                # the parent's trials are not run; each child runs its own
                disp.grow(self.iterations * (len(info["children"]) - 1))
            elif event == "template":
                disp.library = info["done"]
            if self.on_playbook_event is not None:
                self.on_playbook_event(event, info)

        with self.task_pool or contextlib.nullcontext() as pool:
            res = optimize_templates(
                templates,
                self.data_dir,
                self.iterations,
                self.seed,
                self.instrument,
                engine=self.engine,
                end=self.train_until,
                progress=progress,
                sampler=self.sampler,
                pool=pool,
            )
        save_library(res.library, self.checkpoint_dir, res.fissions)
        self.library, self.fissions = res.library, res.fissions
        info = {
            "library_templates": len(res.library),
            "fissions": res.fissions,
            "skipped_members": res.skipped_members,
            "instrument": self.instrument.symbol,
        }
        self._apply_playbook_info(info)
        return info

    # ------------------------------------------------------------------ resume
    def _load_phase(self, phase: str, info: dict) -> None:
        if phase == "discovery":
            self._apply_discovery_info(info)  # the manifest itself is loaded lazily
        elif phase == "clustering":
            self.summary.templates = int(info.get("templates", 0))
        else:
            self._apply_playbook_info(info)

    def _apply_discovery_info(self, info: dict) -> None:
        self.summary.patterns = int(info.get("patterns", 0))
        self.summary.patterns_per_level = [
            {"level": s["level"], "tf": s["tf"], "patterns": s["patterns"]}
            for s in info.get("levels", [])
        ]

    def _apply_playbook_info(self, info: dict) -> None:
        self.summary.library_templates = int(info.get("library_templates", 0))
        self.summary.fissions = len(info.get("fissions", []))
        self.summary.skipped_members = int(info.get("skipped_members", 0))

    def _need_manifest(self) -> list[Any]:
        if self.manifest is None:
            from edgefinder.markets.discovery import load_manifest

            self.manifest = load_manifest(self.path(MANIFEST))
        return self.manifest

    def _need_templates(self) -> list[Any]:
        if self.templates is None:
            with open(self.path(TEMPLATES), "rb") as fh:
                self.templates = pickle.load(fh)
        return self.templates

    def load_library(self) -> dict[int, dict]:
        """The Phase 3 library (from memory or ``pattern_library.pkl``)."""
        if self.library is None:
            from edgefinder.markets.playbook import load_library

            path = self.path(LIBRARY)
            if not path.exists():
                raise PipelineError(f"no playbook at {path}: run `edgefinder markets run` first")
            self.library = load_library(self.checkpoint_dir)
        return self.library

    # ------------------------------------------------------------------ Phases 4–5
    def run_forward_pass(
        self,
        config: Any = None,
        *,
        fresh: bool = False,
        max_sessions: int | None = None,
        day_lines: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Phase 4: :func:`edgefinder.markets.forward.run_forward_pass` on this run's ATLAS,
        checkpoints, ``train_until`` and hierarchy (the one discovery used; see ``state.json``).

        ``config`` is a :class:`~edgefinder.markets.forward.ForwardConfig` (gates, entry timeframe);
        its instrument defaults to the orchestrator's. The physics thresholds are the ones Phase 2
        recorded; a ``physics`` given to the constructor (or as ``physics=`` here: a
        ``PhysicsConfig`` or a mapping of the thresholds the user asked for) must equal them.
        ``forward_until`` (keyword) holds sessions from that date on back for paper trading.
        Returns a ``ForwardResult``.
        """
        from edgefinder.markets.forward import ForwardConfig, run_forward_pass

        cfg = config or ForwardConfig(instrument=self.instrument.symbol)
        # The hierarchy discovery used: this run's (after run()), else an explicit --timeframes,
        # else forward.resolve_hierarchy reads it from state.json.
        tfs = self.timeframes or self.timeframes_requested
        kwargs.setdefault("physics", self.physics_requested)
        return run_forward_pass(
            self.data_dir,
            self.checkpoint_dir,
            cfg,
            self.train_until,
            timeframes=tfs,
            console=self.console,
            fresh=fresh,
            max_sessions=max_sessions,
            day_lines=day_lines,
            **kwargs,
        )

    def run_strategy_selection(self, config: Any = None, **kwargs: Any) -> Any:
        """Phase 5: :func:`edgefinder.markets.selection.run_strategy_selection` on this
        run's checkpoints (brain and trades of Phase 4). Returns a ``SelectionResult``."""
        from edgefinder.markets.selection import run_strategy_selection

        return run_strategy_selection(self.checkpoint_dir, config, console=self.console, **kwargs)
