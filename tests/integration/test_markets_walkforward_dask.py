"""The walk-forward study on real Dask clusters gives exactly the serial run's figures.

Clusters are real processes: a ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1
(started and stopped here, workers without a nanny so that a SIGKILL really removes one), and the
default ``LocalCluster``. The study is 2 instruments (a mean-reverting and a martingale synthetic
market, 36 sessions each) x 4 folds with a short hierarchy and 5 search trials a template: small,
because equality does not need evidence, only every task's figures.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from edgefinder.markets.cluster import WORKER_MMAP_THRESHOLD, DaskRunner, open_client
from edgefinder.markets.folds import make_folds
from edgefinder.markets.walkforward import (
    RUN_KEYS,
    Instrument,
    StudyConfig,
    common_sessions,
    run_study,
)

pytestmark = pytest.mark.slow

SESSIONS = 36


@pytest.fixture(scope="module")
def atlases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Instrument, ...]:
    from edgefinder.markets.synth import SynthConfig, generate_atlas

    root = tmp_path_factory.mktemp("wf_data")
    out = []
    for sym, edge, seed in (("MNQ", "reverting", 1), ("ES", "none", 2)):
        generate_atlas(root / sym, SynthConfig(sessions=SESSIONS, seed=seed, edge=edge))
        out.append(Instrument(sym, str(root / sym)))
    return tuple(out)


def _cfg(instruments: tuple[Instrument, ...], out: Path, **kw: object) -> StudyConfig:
    folds = make_folds(common_sessions(instruments), 4, "anchored", 1, 1)
    search: dict = {"iterations": 5, **kw}
    return StudyConfig(
        out=str(out),
        instruments=instruments,
        folds=tuple(folds),
        scheme="anchored",
        seed=3,
        timeframes=("1h", "5m", "1m", "15s"),
        **search,
    )


def _figures(out: Path) -> tuple[str, pd.DataFrame]:
    """study.json without what depends on the engine and the clock, and the trial ledger."""
    doc = json.loads((out / "study.json").read_text())
    for k in RUN_KEYS:
        doc.pop(k)
    return json.dumps(doc, sort_keys=True), pd.read_parquet(out / "trial_ledger.parquet")


def _assert_same(out: Path, reference: tuple[str, pd.DataFrame]) -> None:
    doc, ledger = _figures(out)
    assert doc == reference[0]
    pd.testing.assert_frame_equal(ledger, reference[1], check_exact=True)


@pytest.fixture(scope="module")
def serial(
    atlases: tuple[Instrument, ...], tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, pd.DataFrame]:
    out = tmp_path_factory.mktemp("wf_serial")
    res = run_study(_cfg(atlases, out))
    assert res.ran == 20 and res.reused == 0  # 8 learn, 4 select, 8 paper tasks
    assert res.doc["n_trials"] == len(res.ledger) > 0
    return _figures(out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[str]:
    """A ``dask scheduler`` and two single-threaded ``dask worker`` processes; yields the address."""
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "dask"]
    log = open(tmp_path / "cluster.log", "w")  # closed in the finally below
    procs = [
        subprocess.Popen(
            [*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    ]
    for k in range(2):
        procs.append(
            subprocess.Popen(
                [
                    *dask,
                    "worker",
                    addr,
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--name",
                    f"w{k}",
                    "--no-dashboard",
                    "--local-directory",
                    str(tmp_path / f"w{k}"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        from distributed import Client

        with Client(addr, timeout="60s") as c:
            c.wait_for_workers(2, timeout=120)
        yield addr
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()


def test_local_cluster_equals_serial(
    atlases: tuple[Instrument, ...], serial: tuple[str, pd.DataFrame], tmp_path: Path
) -> None:
    client, name, close = open_client(None, 2)
    try:
        # the workers' malloc setting reaches the processes (glibc reads it only at their start)
        env = client.run(os.environ.get, "MALLOC_MMAP_THRESHOLD_")
        res = run_study(_cfg(atlases, tmp_path), DaskRunner(client), name)
    finally:
        close()
    assert list(env.values()) == [str(WORKER_MMAP_THRESHOLD)] * 2, env
    assert res.doc["engine"] == "local (2 workers)" and res.ran == 20
    _assert_same(tmp_path, serial)


def test_killed_worker_does_not_change_the_results(
    atlases: tuple[Instrument, ...],
    serial: tuple[str, pd.DataFrame],
    scheduler: str,
    tmp_path: Path,
) -> None:
    from distributed import Client

    client = Client(scheduler)
    box: dict[str, object] = {}

    def study() -> None:
        try:
            box["res"] = run_study(_cfg(atlases, tmp_path), DaskRunner(client), scheduler)
        except BaseException as exc:  # reported by the assertion below
            box["error"] = exc

    th = threading.Thread(target=study)
    th.start()
    try:
        # wait until a worker runs a learn task, then kill that worker with SIGKILL
        victim = None
        while victim is None and th.is_alive():
            busy = {
                w: ks
                for w, ks in client.processing().items()
                if any(str(k).startswith("learn-") for k in ks)
            }
            victim = next(iter(busy), None)
            time.sleep(0.05)  # poll interval of the condition above, not a deadline
        assert victim is not None, box
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(int(pid), signal.SIGKILL)
    finally:
        th.join()
        client.close()
    assert "error" not in box, box.get("error")
    res = box["res"]
    assert res.ran == 20  # type: ignore[attr-defined]
    _assert_same(tmp_path, serial)


def test_rerun_after_interruption_reuses_finished_tasks(
    atlases: tuple[Instrument, ...],
    serial: tuple[str, pd.DataFrame],
    scheduler: str,
    tmp_path: Path,
) -> None:
    from distributed import Client

    cfg = _cfg(atlases, tmp_path / "study")
    (tmp_path / "cfg.pkl").write_bytes(pickle.dumps(cfg))
    script = (
        "import pickle, sys\n"
        "from edgefinder.markets.cluster import DaskRunner, open_client\n"
        "from edgefinder.markets.walkforward import run_study\n"
        "cfg = pickle.load(open(sys.argv[1], 'rb'))\n"
        "client, name, close = open_client(sys.argv[2], None)\n"
        "run_study(cfg, DaskRunner(client), name)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "cfg.pkl"), scheduler])
    # the study process is killed once two learn tasks have stored their results
    done = []
    while len(done) < 2 and proc.poll() is None:
        done = list((tmp_path / "study" / "tasks").glob("*/fold*/learn.json"))
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(done) >= 2
    with Client(scheduler) as client:
        # tasks the dead client left running finish on their worker first (nothing cancels a
        # running Python function); then the rerun
        while any(client.run(lambda dask_worker: dask_worker.state.executing_count).values()):
            time.sleep(0.1)
        res = run_study(cfg, DaskRunner(client), scheduler)
    assert res.reused >= 2 and res.ran == 20 - res.reused
    _assert_same(tmp_path / "study", serial)


def test_phase3_steps_as_cluster_tasks_equal_the_serial_study(
    atlases: tuple[Instrument, ...], tmp_path: Path
) -> None:
    # With TPE the learn tasks hand each template's Phase 3 step to the cluster (real worker
    # processes); the one-instrument, two-fold study is the serial one's, trial for trial.
    cfg = _cfg(atlases[:1], tmp_path / "serial", sampler="tpe", iterations=4)
    cfg = dataclasses.replace(cfg, folds=cfg.folds[2:])
    serial = run_study(cfg)
    assert serial.doc["timing"]["phase3_tasks"] == 0
    client, name, close = open_client(None, 2)
    try:
        res = run_study(
            dataclasses.replace(cfg, out=str(tmp_path / "dask")), DaskRunner(client), name
        )
    finally:
        close()
    # every template of both learn tasks was a task (two folds of dozens of templates)
    assert res.doc["timing"]["phase3_tasks"] >= 40, res.doc["timing"]
    _assert_same(tmp_path / "dask", _figures(tmp_path / "serial"))
