"""A motion-stream consumer process that dies (SIGKILL, like a native crash) on one marked entry.

Run by tests/integration/test_esports_crashes.py as ``python crash_consumer.py DB_URL REDIS_URL PREFIX
MARKER``: the real consumer loop, Redis and Postgres, with one fault injected into the write path,
which no validation can foresee: the process kills itself whenever a batch it is about to write
holds an entry whose text contains MARKER (unless that entry is only to be dead-lettered). Exit
code 0 once the stream is drained.
"""

from __future__ import annotations

import os
import signal
import sys

from edgefinder.esports.ingest import IngestConfig, Pipeline, Prepared, connect_redis, consume_micro
from edgefinder.store.engine import make_engine


class CrashingPipeline(Pipeline):
    marker = b""

    def process(self, entries, source):  # type: ignore[no-untyped-def]
        batch = entries.entries if isinstance(entries, Prepared) else entries
        # an entry already marked for the dead letters (e.error) is not written: no crash
        if any(self.marker in e.raw and e.error is None for e in batch):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().process(entries, source)


def main() -> None:
    db_url, redis_url, prefix, marker = sys.argv[1:5]
    CrashingPipeline.marker = marker.encode()
    pipeline = CrashingPipeline(make_engine(db_url), "test-pseudonym-key")
    cfg = IngestConfig(
        batch_size=int(os.environ.get("CRASH_BATCH", "200")),
        block_ms=50,
        max_deliveries=3,
        min_idle_ms=0,
        claim_interval_s=0.0,
    )
    consume_micro(
        pipeline, connect_redis(redis_url), prefix, consumer="crashy", config=cfg, once=True
    )


if __name__ == "__main__":
    main()
