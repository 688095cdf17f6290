"""Benchmark: the futures pipeline's Phases 1–3 on a synthetic year.

Builds a 250-session synthetic ATLAS (15s to 1D) with ``markets.synth`` and prints, per phase,
wall seconds and peak memory, plus the physics engine's throughput in bars per second:

    .venv/bin/python bench/markets_pipeline.py [--sessions 250] [--iterations 50] [--edge none]

Each phase runs in its own fresh process (spawned), so "peak RSS" is that phase's own peak
resident memory, interpreter and imports included (the baseline of an idle child is printed
too). Phases hand their artifacts over through the checkpoint files, as ``markets run`` does.
Times exclude imports and numba compilation (compiled kernels are cached on disk and each
child warms up on a tiny input first). Goals (2-core machine): physics ≥ 10 M bars/s;
Phase 2 ≤ 10 s; Phase 2.5 ≤ 10 s; Phase 3 at 50 iterations ≤ 60 s.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import pickle
import resource
import shutil
import tempfile
import time
from pathlib import Path


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _baseline(_: dict) -> dict:
    import edgefinder.markets.orchestrator  # noqa: F401 - imports only

    return {"seconds": 0.0}


def _synth(a: dict) -> dict:
    from edgefinder.markets.synth import SynthConfig, generate_atlas

    t0 = time.perf_counter()
    res = generate_atlas(
        a["atlas"], SynthConfig(sessions=a["sessions"], seed=a["seed"], edge=a["edge"])
    )
    return {"seconds": time.perf_counter() - t0, "bars": res.bars}


def _physics(a: dict) -> dict:
    import numpy as np

    from edgefinder.markets import atlas
    from edgefinder.markets.physics import QuantumFieldEngine

    eng = QuantumFieldEngine()
    frames = {tf: atlas.read_bars(a["atlas"], tf) for tf in atlas.available_timeframes(a["atlas"])}
    eng.compute_states(frames["1D"].iloc[:50], "1D")  # warm-up (compiled kernel)
    best = {}
    for tf, bars in frames.items():
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            eng.compute_states(bars, tf)
            runs.append(time.perf_counter() - t0)
        best[tf] = (len(bars), min(runs))
    # the engine's numeric core alone (no DataFrame assembly), on the 15s series
    from edgefinder.markets.physics import compute_state_arrays

    b15 = frames["15s"]
    c, v = b15["close"].to_numpy(), b15["volume"].to_numpy(dtype=float)
    core = min(_timed(lambda: compute_state_arrays(c, v, eng.config)) for _ in range(3))
    n = sum(v[0] for v in best.values())
    s = sum(v[1] for v in best.values())
    n15, s15 = best.get("15s", (0, np.nan))
    return {
        "seconds": s,
        "bars": n,
        "bars_per_s": n / s,
        "bars_15s": n15,
        "bars_per_s_15s": n15 / s15,
        "core_bars_per_s_15s": len(b15) / core,
    }


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _discovery(a: dict) -> dict:
    from edgefinder.markets.discovery import FractalDiscoveryAgent, save_manifest

    agent = FractalDiscoveryAgent()
    t0 = time.perf_counter()
    manifest = agent.scan_atlas_topdown(a["atlas"])
    save_manifest(manifest, Path(a["ckpt"]) / "manifest.parquet")
    secs = time.perf_counter() - t0
    levels = ", ".join(f"{s['tf']}:{s['patterns']}" for s in agent.level_stats)
    return {
        "seconds": secs,
        "patterns": len(manifest),
        "levels": levels,
        "max_depth": max((p.depth for p in manifest), default=0),
    }


def _clustering(a: dict) -> dict:
    from edgefinder.markets.clustering import FractalClusteringEngine, save_scaler
    from edgefinder.markets.discovery import load_manifest

    ck = Path(a["ckpt"])
    t0 = time.perf_counter()
    manifest = load_manifest(ck / "manifest.parquet")
    t_load = time.perf_counter() - t0
    engine = FractalClusteringEngine(seed=a["seed"])
    templates = engine.create_templates(manifest)
    with open(ck / "templates.pkl", "wb") as fh:
        pickle.dump(templates, fh)
    save_scaler(engine.scaler, ck / "clustering_scaler.pkl")
    return {"seconds": time.perf_counter() - t0, "load_s": t_load, "templates": len(templates)}


def _playbook(a: dict) -> dict:
    import optuna  # noqa: F401 - imported before the clock starts, like every other phase's modules
    import sklearn.cluster
    import sklearn.metrics  # noqa: F401

    from edgefinder.markets.playbook import optimize_templates, save_library

    ck = Path(a["ckpt"])
    with open(ck / "templates.pkl", "rb") as fh:
        templates = pickle.load(fh)
    trials = [0]
    t0 = time.perf_counter()
    res = optimize_templates(
        templates,
        a["atlas"],
        a["iterations"],
        a["seed"],
        progress=lambda e, _i: trials.__setitem__(0, trials[0] + (e == "trial")),
    )
    save_library(res.library, ck, res.fissions)
    secs = time.perf_counter() - t0
    return {
        "seconds": secs,
        "library": len(res.library),
        "fissions": len(res.fissions),
        "trials": trials[0],
        "members": sum(v["member_count"] for v in res.library.values()),
    }


def _child(fn_name: str, args: dict, q: mp.Queue) -> None:
    out = globals()[fn_name](args)
    out["peak_mb"] = _peak_mb()
    q.put(out)


def _run(fn_name: str, args: dict) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(fn_name, args, q))
    p.start()
    out = q.get()
    p.join()
    if p.exitcode:
        raise SystemExit(f"{fn_name} failed with exit code {p.exitcode}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=250)
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--edge", choices=["none", "planted"], default="none")
    ap.add_argument(
        "--workdir", type=Path, default=None, help="keep the ATLAS and checkpoints here"
    )
    a = ap.parse_args()
    work = a.workdir or Path(tempfile.mkdtemp(prefix="ef_bench_markets_"))
    work.mkdir(parents=True, exist_ok=True)
    args = {
        "atlas": str(work / "atlas"),
        "ckpt": str(work / "checkpoints"),
        "sessions": a.sessions,
        "iterations": a.iterations,
        "seed": a.seed,
        "edge": a.edge,
    }
    shutil.rmtree(args["atlas"], ignore_errors=True)
    shutil.rmtree(args["ckpt"], ignore_errors=True)
    Path(args["ckpt"]).mkdir(parents=True)
    print(
        f"markets pipeline benchmark: {a.sessions} sessions, edge={a.edge}, iterations={a.iterations}, "
        f"seed={a.seed}, workdir={work}"
    )
    base = _run("_baseline", args)
    print(f"  idle child (interpreter + imports): peak RSS {base['peak_mb']:.0f} MB")
    rows = []
    syn = _run("_synth", args)
    rows.append(("synth/build ATLAS", syn, ", ".join(f"{k}:{v:,}" for k, v in syn["bars"].items())))
    phy = _run("_physics", args)
    rows.append(
        (
            "physics (all tfs)",
            phy,
            f"{phy['bars_per_s'] / 1e6:.1f} M bars/s over {phy['bars']:,} bars; "
            f"15s alone {phy['bars_per_s_15s'] / 1e6:.1f} M bars/s; numeric core (compute_state_arrays, 15s) "
            f"{phy['core_bars_per_s_15s'] / 1e6:.1f} M bars/s",
        )
    )
    dis = _run("_discovery", args)
    rows.append(
        (
            "Phase 2 discovery",
            dis,
            f"{dis['patterns']:,} patterns, max depth {dis['max_depth']} ({dis['levels']})",
        )
    )
    clu = _run("_clustering", args)
    rows.append(
        (
            "Phase 2.5 clustering",
            clu,
            f"{clu['templates']} templates (manifest load {clu['load_s']:.2f} s)",
        )
    )
    pb = _run("_playbook", args)
    rows.append(
        (
            "Phase 3 playbook",
            pb,
            f"{pb['library']} library templates, {pb['fissions']} fissions, "
            f"{pb['trials']:,} trials, {pb['members']:,} member trades",
        )
    )
    print(f"  {'phase':<22}{'seconds':>9}{'peak RSS MB':>13}  notes")
    for name, r, note in rows:
        print(f"  {name:<22}{r['seconds']:>9.2f}{r['peak_mb']:>13.0f}  {note}")
    goals = [
        ("physics >= 10 M bars/s", phy["bars_per_s"] >= 10e6),
        ("Phase 2 <= 10 s", dis["seconds"] <= 10),
        ("Phase 2.5 <= 10 s", clu["seconds"] <= 10),
        ("Phase 3 <= 60 s", pb["seconds"] <= 60),
    ]
    print("  goals: " + "; ".join(f"{g} {'met' if ok else 'MISSED'}" for g, ok in goals))
    if a.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
