"""Test helpers for sources: a batch source for tests that hand entries to ``Pipeline.process``
directly (no stream), and publishing JSONL lines to the streams."""

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


def publish_lines(client, prefix: str, lines: list[str]) -> None:
    """XADD each JSONL line as field ``data`` to the stream ``publish`` would route it to."""
    from edgefinder.esports.sources import stream_keys

    keys = stream_keys(prefix)
    pipe = client.pipeline(transaction=False)
    for line in lines:
        pipe.xadd(
            keys["motion" if '"signal_id"' in line else "canonical"], {b"data": line.encode()}
        )
    pipe.execute()
