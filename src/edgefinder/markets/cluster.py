"""Running a study's task graph: in this process, or on a Dask cluster with a progress bar.

A :class:`TaskSpec` names a task, its function and arguments, the key of its inputs, the tasks it
waits for and the file its result is stored in. Both runners skip a task whose stored result has
the same key (a rerun after an interruption redoes only what did not finish), and pass each task
its dependencies' results after its own arguments and key.

:class:`DaskRunner` submits every task to a ``distributed.Client``: a ``LocalCluster`` (one
single-threaded worker process per core by default) or an existing scheduler
(``tcp://HOST:8786``). Dask reschedules the tasks of a worker that dies on the remaining ones;
an exception inside a task is not retried (the tasks are deterministic, it would fail again).
:class:`WorkerPool` lets a running task hand work of its own to the same cluster (Phase 3's
template steps).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from edgefinder.errors import EdgefinderError, first_line

__all__ = [
    "DaskRunner",
    "SerialRunner",
    "TaskSpec",
    "WorkerPool",
    "open_client",
    "warm_workers",
]


@dataclass(frozen=True)
class TaskSpec:
    """``fn(*args, key, *deps)``; each ``deps`` item is a task name (its result) or a tuple of
    names (the list of their results); ``path`` stores the result (a dict with ``"key"``);
    ``priority``: among tasks ready at once, a cluster starts the higher first (the order only,
    never a result)."""

    name: str
    fn: Callable[..., dict]
    args: tuple[Any, ...]
    key: str
    deps: tuple[str | tuple[str, ...], ...]
    path: Path
    priority: int = 0


def stored(path: Path, key: str) -> dict | None:
    """The result stored at ``path`` when it was made with ``key``, else None."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("key") == key else None


class _Runner:
    """Counts and the reuse rule both runners share."""

    def __init__(self) -> None:
        self.ran = 0
        self.reused = 0
        self.results: dict[str, dict] = {}

    def reuse(self, sp: TaskSpec) -> bool:
        """Take ``sp``'s stored result when its key matches (then the task does not run)."""
        done = stored(sp.path, sp.key)
        if done is not None:
            self.reused += 1
            self.results[sp.name] = done
        return done is not None


class SerialRunner(_Runner):
    """Every task in this process, in the order given (a topological order)."""

    def run(self, specs: list[TaskSpec]) -> dict[str, dict]:
        res = self.results
        for sp in specs:
            if not self.reuse(sp):
                deps = [res[d] if isinstance(d, str) else [res[x] for x in d] for d in sp.deps]
                res[sp.name] = sp.fn(*sp.args, sp.key, *deps)
                self.ran += 1
        return res


#: glibc's mmap threshold of the local cluster's worker processes, in bytes. Dask starts its
#: workers with ``MALLOC_TRIM_THRESHOLD_`` set (freed memory goes back to the system); setting any
#: malloc threshold turns off glibc's adaptive mmap threshold, which leaves it at 128 KiB, so each
#: of a fold's 1 MB column arrays is mapped and page-faulted anew. Up to 32 MiB (the adaptive
#: threshold's own ceiling) they come from the heap again: Phase 4 ran 8 % faster per worker in 3
#: alternating pairs of the walk-forward benchmark, and freed memory is still trimmed.
WORKER_MMAP_THRESHOLD = 32 << 20
WORKER_MALLOC_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_"


def open_client(scheduler: str | None, workers: int | None) -> tuple[Any, str, Callable[[], None]]:
    """A Dask client: on ``scheduler`` (``tcp://HOST:8786``) or a new ``LocalCluster`` of ``workers``
    single-threaded processes (default: one per core; :data:`WORKER_MMAP_THRESHOLD`). Returns
    (client, engine name, close)."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except OSError as exc:
            raise EdgefinderError(
                f"cannot reach the Dask scheduler at {scheduler}: {first_line(exc)}"
            ) from None
        return client, scheduler, client.close
    import dask

    n = int(workers or os.cpu_count() or 1)
    with dask.config.set({WORKER_MALLOC_KEY: WORKER_MMAP_THRESHOLD}):
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
        )
    client = Client(cluster)

    def close() -> None:
        client.close()
        cluster.close()

    return client, f"local ({n} workers)", close


#: Phase 3's template steps start before anything else queued: a learn task waits on them.
STEP_PRIORITY = 2_000_000


class WorkerPool:
    """Phase 3's template steps (the pool of
    :func:`~edgefinder.markets.playbook.optimize_templates`) as tasks of the Dask cluster that the
    calling task runs on. ``with WorkerPool() as pool`` gives None outside a Dask worker (the
    steps then run inline); on a worker it secedes the calling task from the worker's thread
    (``distributed.worker_client``), so that the worker runs other tasks, these steps among them,
    while the caller waits for their results. ``steps`` counts the steps submitted."""

    def __init__(self) -> None:
        self.steps = 0
        self._context: Any = None
        self._client: Any = None

    def __enter__(self) -> WorkerPool | None:
        try:
            from distributed import get_worker, worker_client

            get_worker()
        except (ImportError, ValueError):  # not inside a task on a worker
            return None
        self._context = worker_client()
        self._client = self._context.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._context is not None:
            self._context.__exit__(*exc)
            self._context = self._client = None

    def share(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` computed by a task, passed to the steps as its future: a worker that dies
        holding it recomputes it (scattered data has no lineage to recompute from)."""
        return self._client.submit(fn, *args, pure=False, priority=STEP_PRIORITY)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` as a task; its future's ``result()`` waits for it."""
        self.steps += 1
        return self._client.submit(fn, *args, pure=False, priority=STEP_PRIORITY)


#: The modules a study task imports: loading them once per worker before the first task
#: (:func:`warm_workers`) keeps a second or more of imports out of the first task of each worker.
TASK_MODULES = (
    "edgefinder.markets.walkforward",
    "edgefinder.markets.orchestrator",
    "edgefinder.markets.forward",
    "edgefinder.markets.selection",
    "edgefinder.markets.paper_trade",
    "edgefinder.markets.ledger",
)


def _import_task_modules() -> int:
    import importlib

    for name in TASK_MODULES:
        importlib.import_module(name)
    return len(TASK_MODULES)


def warm_workers(client: Any) -> None:
    """Import the study's modules on every worker of ``client`` now, in parallel (what a
    long-lived cluster's workers have done after their first study)."""
    client.run(_import_task_modules)


class DaskRunner(_Runner):
    """Every task on a Dask cluster, with a progress bar of tasks done, running and failed."""

    def __init__(self, client: Any, console: Console | None = None) -> None:
        super().__init__()
        self.client = client
        self.console = console

    def run(self, specs: list[TaskSpec]) -> dict[str, dict]:
        from distributed import wait

        results = self.results
        futures: dict[str, Any] = {}

        def dep(name: str) -> Any:
            return results[name] if name in results else futures[name]

        for sp in _submission_order(specs):
            if self.reuse(sp):
                continue
            deps = [dep(d) if isinstance(d, str) else [dep(x) for x in d] for d in sp.deps]
            futures[sp.name] = self.client.submit(
                sp.fn,
                *sp.args,
                sp.key,
                *deps,
                key=f"{sp.name}-{sp.key}",
                pure=False,
                priority=sp.priority,
            )
        keys = {f.key: name for name, f in futures.items()}
        with _Bar(self.console, len(futures), self.reused) as bar:
            pending = set(futures.values())
            while pending:
                try:  # wakes at least twice a second to redraw the running count
                    pending = wait(list(pending), timeout=0.5, return_when="FIRST_COMPLETED")[1]
                except TimeoutError:
                    pass
                running = sum(
                    1 for ks in self.client.processing().values() for k in ks if k in keys
                )
                states = [f.status for f in futures.values()]
                bar.update(states.count("finished"), running, states.count("error"))
        failed = [n for n, f in futures.items() if f.status != "finished"]
        if failed:
            name = failed[0]
            exc = futures[name].exception()
            raise EdgefinderError(
                f"{len(failed)} study task(s) failed, first {name}: {first_line(exc)}"
            )
        names = list(futures)
        for name, res in zip(names, self.client.gather([futures[n] for n in names])):
            results[name] = res  # one round trip for every result
            self.ran += 1
        return results


def _submission_order(specs: list[TaskSpec]) -> list[TaskSpec]:
    """``specs`` by their depth in the graph (a task after every task it waits for), the higher
    priority first within a depth: the scheduler starts the first tasks it receives on idle
    workers at once, before the later submissions (and their priorities) reach it."""
    depth: dict[str, int] = {}
    for sp in specs:  # a topological order: every dependency came earlier
        names = [x for d in sp.deps for x in ((d,) if isinstance(d, str) else d)]
        depth[sp.name] = 1 + max((depth[n] for n in names), default=-1)
    return sorted(specs, key=lambda sp: (depth[sp.name], -sp.priority))


class _Bar:
    """A Rich progress bar: tasks done of those to run, running and failed (and reused)."""

    def __init__(self, console: Console | None, total: int, reused: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]study tasks"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            transient=False,
            disable=console is None,
        )
        self.reused = reused
        self.task = self.progress.add_task("study", total=total, counts=self._counts(0, 0))

    def _counts(self, running: int, failed: int) -> str:
        return f"running {running} · failed {failed} · reused {self.reused}"

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def update(self, done: int, running: int, failed: int) -> None:
        self.progress.update(self.task, completed=done, counts=self._counts(running, failed))
