"""A batch source for tests that hand entries to ``Pipeline.process`` directly (no stream)."""

from __future__ import annotations

import uuid


class NamedSource:
    """What the pipeline reads of a source: its name (dead_letters.source) and metrics label."""

    label = "file"
    server = "file"
    max_deliveries = 5
    unavailable: tuple[type[BaseException], ...] = ()

    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"test-source-{uuid.uuid4().hex[:12]}"
