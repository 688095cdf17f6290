"""Small file helpers shared by the markets checkpoints: atomic writes and checked unpickling.

One implementation instead of a copy per phase module. Atomic = temp file in the same directory,
fsync, ``os.replace``: a killed run leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def _umask_mode() -> int:
    # mkstemp creates 0600 files; checkpoints are ordinary artifacts, so use what open() would (0666 & ~umask).
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(data: bytes, path: str | Path) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + os.replace); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_pickle(obj: object, path: str | Path) -> Path:
    """Pickle ``obj`` to ``path`` atomically (highest protocol)."""
    return atomic_write_bytes(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), path)


def atomic_write_text(text: str, path: str | Path) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write_bytes(text.encode("utf-8"), path)


def read_pickle(path: Path, error: type[Exception], missing: str) -> Any:
    """Unpickle a checkpoint, turning any failure into one ``error`` line that names the file.

    ``missing``: the message when the file does not exist (say which command makes it)."""
    try:
        with path.open("rb") as fh:
            return pickle.load(fh)
    except FileNotFoundError:
        raise error(missing) from None
    except Exception as exc:
        raise error(f"cannot read {path}: {type(exc).__name__}: {exc}") from None


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    """``df`` as a Parquet file (no index), dictionary-encoding only its categorical columns: a
    trade's prices, times and states are nearly all distinct, and trying a dictionary on each of
    them cost half of a trades file's write time for nothing. Read back with ``pd.read_parquet``
    it is the same frame, categoricals included. One thread: pyarrow would start a thread pool per
    call to convert the columns, which cost more than the conversion of a few thousand rows (and
    took the CPU of the other workers of a study)."""
    path = Path(path)
    cats = [str(c) for c, t in df.dtypes.items() if isinstance(t, pd.CategoricalDtype)]
    table = pa.Table.from_pandas(df, preserve_index=False, nthreads=1)
    pq.write_table(table, path, use_dictionary=cats)
    return path
