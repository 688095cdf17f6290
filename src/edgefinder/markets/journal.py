"""An append-only, CRC-checked journal of session records: how the forward pass checkpoints.

Each record is ``<u64 length><u32 crc32>`` + a pickle. The first record is a header holding the
inputs' fingerprint; a journal written with other inputs describes another run and is discarded.
After a kill mid-write the torn last record fails its length or CRC check and is cut off, so a
resumed run continues from the last complete record. Appending keeps checkpointing O(new records)
instead of rewriting a growing state every session.
"""

from __future__ import annotations

import pickle
import struct
import zlib
from pathlib import Path
from typing import IO, Any

__all__ = ["Journal", "read_records"]

_REC = struct.Struct("<QI")  # payload length, crc32


def _blob(record: dict) -> bytes:
    payload = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
    return _REC.pack(len(payload), zlib.crc32(payload)) + payload


def read_records(path: Path) -> list[dict]:
    """The complete records of the journal at ``path``; a torn or corrupt tail is truncated away."""
    if not path.exists():
        return []
    data = path.read_bytes()
    out: list[dict] = []
    pos = 0
    while pos + _REC.size <= len(data):
        n, crc = _REC.unpack_from(data, pos)
        body = data[pos + _REC.size : pos + _REC.size + n]
        if len(body) < n or zlib.crc32(body) != crc:
            break
        try:
            out.append(pickle.loads(body))
        except Exception:
            break
        pos += _REC.size + n
    if pos < len(data):
        with path.open("r+b") as fh:
            fh.truncate(pos)
    return out


class Journal:
    """The session journal of one run: ``records`` holds what an earlier, interrupted run left.

    ``fingerprint``: the inputs of this run; a journal whose header differs is discarded (as is
    every journal when ``fresh``). Use as a context manager around the session loop.
    """

    def __init__(
        self, path: str | Path, fingerprint: str, *, fresh: bool = False, **header: Any
    ) -> None:
        self.path = Path(path)
        if fresh:
            self.path.unlink(missing_ok=True)
        records = read_records(self.path)
        if records and (
            records[0].get("kind") != "header" or records[0].get("fingerprint") != fingerprint
        ):
            self.path.unlink()
            records = []
        if not records:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as fh:
                fh.write(_blob({"kind": "header", "fingerprint": fingerprint, **header}))
        #: the session records already written (header excluded), in order
        self.records: list[dict] = [r for r in records[1:] if r.get("kind") == "session"]
        for k, r in enumerate(self.records):
            if r.get("index") != k:
                raise ValueError(
                    f"journal {self.path} is out of order at session {k}; rerun with --fresh"
                )
        self._fh: IO[bytes] | None = None

    def __enter__(self) -> Journal:
        self._fh = self.path.open("ab")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def append(self, record: dict) -> None:
        """Append one session record: one write and a flush, so a SIGKILL loses no flushed record."""
        if self._fh is None:
            raise RuntimeError("Journal.append outside its `with` block")
        self._fh.write(_blob({"kind": "session", **record}))
        self._fh.flush()
