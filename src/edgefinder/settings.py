"""Runtime settings: every knob has an ``EDGEFINDER_*`` environment variable and a CLI flag.

Precedence (highest first): CLI flag, environment variable, ``.env`` file, default.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    """All settings of edgefinder; see the configuration table in the README."""

    model_config = SettingsConfigDict(
        env_prefix="EDGEFINDER_", env_file=".env", extra="ignore", frozen=True
    )

    data_dir: Path = Field(
        default=Path("./edgefinder-data"),
        description="Directory of the embedded default: SQLite file, JSONL events, the demo's data "
        "(synthetic ATLAS, checkpoints), Celery beat's schedule file.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL: `sqlite:///…` or `postgresql://user@host:5432/db`. "
        "Unset: the SQLite file edgefinder.sqlite3 in the data directory.",
    )
    redis_url: str | None = Field(
        default=None,
        description="`redis://host:6379/0` for the stream consumers, Celery and /health. "
        "Unset: the embedded file sources (JSONL).",
    )
    redis_prefix: str = Field(
        default="",
        description="Prefix of every Redis key this process touches (streams, groups, locks, Celery's).",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token required by POST /run-analysis and POST /alerts/{id}/ack "
        "(unset: both answer 401).",
    )
    pseudonym_key: SecretStr = Field(
        default=SecretStr("edgefinder-default-pseudonym-key"),
        description="Key of the keyed hash (HMAC-SHA256) that pseudonymizes player ids at ingest; "
        "set your own.",
    )
    max_event_bytes: int = Field(
        default=64 * 1024,
        ge=256,
        description="Events larger than this (bytes of JSON) go to dead letters as oversize.",
    )
    match_distance: float = Field(
        default=3.0,
        gt=0,
        description="Forward pass Gate 1: max scaled 11D distance to a template centroid.",
    )
    min_prob: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Forward pass Gate 2: brain probability needed (exploration-friendly: an unseen "
        "template has 0.09).",
    )
    min_conf: float = Field(
        default=0.0, ge=0, le=1, description="Forward pass Gate 2: brain confidence needed."
    )
    # Futures pipeline. The phase modules take their defaults from here (``setting_default``), so
    # each default is written once.
    cascade: Literal["context", "strict"] = Field(
        default="context",
        description="Phase 2: `context` (every timeframe scanned, ancestry measured: depth 0 to the "
        "full cascade) or `strict` (the top-down funnel: only patterns inside the level above's "
        "windows).",
    )
    max_templates: int = Field(
        default=48,
        ge=1,
        description="Phase 2.5: cap on the coarse KMeans cluster count (before |z| splits).",
    )
    sampler: Literal["qmc", "tpe"] = Field(
        default="qmc",
        description="Phase 3: `qmc` (a Sobol design, a template's trials in one simulator call) or "
        "`tpe` (Optuna's TPE sampler, one trial at a time).",
    )
    min_depth: int = Field(
        default=0,
        ge=0,
        description="Forward pass Gate 1: chain length an entry needs (0 = none; the number of coarser "
        "timeframes, e.g. 6 for 1D..15s = only when the full cascade aligns).",
    )
    q_max: float = Field(
        default=0.10,
        ge=0,
        le=1,
        description="Phase 5: BH q-value (over the families tested) a family needs for production.",
    )
    dsr_min: float = Field(
        default=0.90,
        ge=0,
        le=1,
        description="Phase 5: deflated Sharpe (trials = families tested) a family needs for production.",
    )
    min_family_trades: int = Field(
        default=30,
        ge=2,
        description="Phase 5: out-of-sample trades below which a family is not tested.",
    )
    # The original four tiers (reported exactly as defined; production follows the families:
    # docs/decisions.md §D25).
    tier1_prob: float = Field(
        default=0.55, ge=0, le=1, description="Tier 1: brain probability above this."
    )
    tier1_conf: float = Field(
        default=0.30, ge=0, le=1, description="Tier 1: brain confidence above this."
    )
    tier1_sharpe: float = Field(default=0.5, description="Tier 1: per-trade Sharpe above this.")
    tier1_trades: int = Field(default=30, ge=0, description="Tier 1: more trades than this.")
    tier2_prob: float = Field(
        default=0.50, ge=0, le=1, description="Tier 2: brain probability above this."
    )
    tier2_conf: float = Field(
        default=0.20, ge=0, le=1, description="Tier 2: brain confidence above this."
    )
    tier2_trades: int = Field(default=15, ge=0, description="Tier 2: more trades than this.")
    tier3_trades: int = Field(
        default=15, ge=0, description="Tier 3 (unproven): fewer trades than this."
    )
    tier4_prob: float = Field(
        default=0.45, ge=0, le=1, description="Tier 4 (toxic): brain probability below this."
    )
    tier4_trades: int = Field(
        default=20, ge=0, description="Tier 4 (toxic): more trades than this."
    )
    # Physics thresholds are settings. Phase 2 records them in
    # state.json and the forward pass reuses the recorded ones, so a playbook is always replayed
    # with the thresholds that found its patterns.
    snap_z: float = Field(
        default=2.0,
        gt=0,
        description="ROCHE_SNAP: |z| must exceed this (sigmas); also structure_ok's |z| bound.",
    )
    snap_velocity: float = Field(
        default=0.5,
        gt=0,
        description="ROCHE_SNAP: |close - previous close| must exceed this (points per bar).",
    )
    drive_momentum: float = Field(
        default=5.0,
        gt=0,
        description="STRUCTURAL_DRIVE: |momentum| (velocity x volume / sigma) must exceed this.",
    )
    drive_coherence: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="STRUCTURAL_DRIVE: coherence (entropy / ln 3, in [0, 1]) must be below this.",
    )
    analysis_schedule: str = Field(
        default="0 2 * * *",
        description="When beat runs the correlation job: crontab (minute hour day month weekday, UTC) "
        "or `@every 30s`.",
    )
    alert_webhook_url: str | None = Field(
        default=None,
        description="POST every alert as JSON to this URL (retried with backoff). Unset: no webhook.",
    )
    alert_webhook_attempts: int = Field(
        default=8,
        ge=1,
        le=100,
        description="Delivery attempts per alert before the webhook gives up.",
    )
    alert_webhook_backoff_s: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="First retry delay of the webhook (seconds); doubles up to 60 s.",
    )
    results_stale_after_s: float = Field(
        default=26 * 3600,
        gt=0,
        description="Results older than this (seconds since the last succeeded run) make /health "
        "'degraded' (`results_stale`).",
    )
    queued_stale_after_s: float = Field(
        default=120.0,
        gt=0,
        description="A run still `queued` after this (seconds) makes /health 'degraded' "
        "(`queued_not_picked_up` lists it): no worker has taken it.",
    )
    ingest_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="TCP port of the stream consumers' /metrics (`esports ingest` from Redis; "
        "Prometheus text format, all interfaces). 0: no endpoint.",
    )
    worker_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="TCP port of the Celery worker's /metrics (`esports worker`; Prometheus text "
        "format, all interfaces). 0: no endpoint.",
    )
    checkpoint_dir: Path = Field(
        default=Path("checkpoints"),
        description="Futures checkpoint directory that `edgefinder report` and GET /report read "
        "(the default of `markets run --checkpoint-dir`).",
    )
    log_level: LogLevel = Field(
        default="INFO", description="Logging level: DEBUG, INFO, WARNING, ERROR or CRITICAL."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v

    @field_validator("analysis_schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        from edgefinder.schedule import parse_schedule

        parse_schedule(v)  # raises ValueError with the reason
        return v.strip()

    @property
    def effective_database_url(self) -> str:
        """The database URL in force: the explicit one or the embedded SQLite file (whose data
        directory is created here: it is edgefinder's own, unlike an explicit URL's directory)."""
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.data_dir / 'edgefinder.sqlite3').as_posix()}"


def setting_default(name: str) -> Any:
    """The default of setting ``name`` (the one place it is written)."""
    return Settings.model_fields[name].default


_overrides: dict[str, object] = {}


def configure(**overrides: object) -> Settings:
    """Apply CLI overrides (None values are ignored) and return the new settings."""
    _overrides.update({k: v for k, v in overrides.items() if v is not None})
    get_settings.cache_clear()
    return get_settings()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (environment + CLI overrides)."""
    return Settings(**_overrides)  # type: ignore[arg-type]
