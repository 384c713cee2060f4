"""Precompute at scale: Fashion-MNIST samples of 2k-70k images, per stage and in total, and the ranking stage alone.

Two modes:

``python -m bench scale run --sizes 2000,10000 --work /tmp/scale``
    For each size, builds the sample (``python -m tools.fashion_mnist WORK/fm<size> --per-class <size/10> --split
    all``; 70000 exports everything), timing the build, then runs ``precompute WORK/fm<size> --out
    WORK/art<size> --backbones efficientnet-lite0,pixels --tfjs none`` (extra arguments after ``--``) and prints
    the wall time of each and the run's stage times as the run summary records them (``stage_seconds`` in
    ``report.json``: scan, extraction, rankings per metric, scores, UMAP, duplicates). Above ``--exact-max``
    (default 20000) the rankings come from FAISS indexes.

``python -m bench scale rank FEATURES.npy --metrics manhattan,chebyshev [--engine before,after] [--queries N]``
    Times :func:`precompute.similarity.rank_neighbors_exact` on stored features (a layer's ``features.npy``):
    ``after`` is the engine as it is, ``before`` the float64 ``cdist`` path every distance took before the
    compiled scans (``similarity._KERNEL_FAMILIES`` emptied). ``--queries N`` ranks only the first N rows'
    neighbours (among all rows) and scales the time to all rows, for the slow ``before`` engine; both engines'
    rankings of those rows are compared (ids, distances, ties) when both run.

Load: the machine is shared; the output starts and ends with ``uptime``. Record both with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def rank_stage(
    features_path: Path, metrics: list[str], engines: list[str], queries: int | None, top_n: int = 50
) -> list[dict]:
    """Seconds (wall and process CPU) of each (engine, metric) ranking of the features at ``features_path``."""
    import precompute.similarity as sim

    features = np.load(features_path, mmap_mode="r")
    n = len(features)
    rows = n if not queries else min(queries, n)
    results, rankings = [], {}
    for metric in metrics:
        for engine in engines:
            saved = sim._KERNEL_FAMILIES
            if engine == "before":
                sim._KERNEL_FAMILIES = ()
            try:
                wall, cpu = time.perf_counter(), time.process_time()
                parts = []
                for lo in range(0, rows, 1024):
                    hi = min(lo + 1024, rows)
                    parts.append(
                        sim.rank(np.asarray(features[lo:hi]), features, metric, top_n, exclude=np.arange(lo, hi))
                    )
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            finally:
                sim._KERNEL_FAMILIES = saved
            rankings[engine, metric] = sim.concat_rankings(parts)
            scale = n / rows
            results.append(
                {
                    "metric": metric,
                    "engine": engine,
                    "n": n,
                    "dim": int(features.shape[1]),
                    "rows_ranked": rows,
                    "seconds": round(wall, 2),
                    "cpu_seconds": round(cpu, 2),
                    "seconds_all_rows": round(wall * scale, 1),
                }
            )
            print(json.dumps(results[-1]), flush=True)
        if len(engines) == 2:
            a, b = rankings[engines[0], metric], rankings[engines[1], metric]
            same = (
                np.array_equal(a.indices, b.indices)
                and np.array_equal(a.distances.view(np.int32), b.distances.view(np.int32))
                and np.array_equal(a.tied_beyond, b.tied_beyond)
            )
            print(json.dumps({"metric": metric, "identical": bool(same)}), flush=True)
            results.append({"metric": metric, "identical": bool(same)})
    return results


def run_sizes(sizes: list[int], work: Path, extra: list[str]) -> list[dict]:
    """Build each sample and run precompute on it; wall seconds of both and the run's stage seconds."""
    results = []
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for size in sizes:
        data, out = work / f"fm{size}", work / f"art{size}"
        build = None
        if not data.exists():
            per_class = "0" if size >= 70000 else str(size // 10)
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "tools.fashion_mnist", str(data), "--per-class", per_class, "--split", "all"],
                check=True,
                env=env,
            )
            build = round(time.perf_counter() - start, 1)
        command = [
            sys.executable,
            "-m",
            "precompute.cli",
            str(data),
            "--out",
            str(out),
            "--backbones",
            "efficientnet-lite0,pixels",
            "--tfjs",
            "none",
            *extra,
        ]
        start = time.perf_counter()
        subprocess.run(command, check=True, env=env)
        seconds = round(time.perf_counter() - start, 1)
        report = json.loads(next(out.glob("*/report.json")).read_text())
        results.append(
            {
                "size": size,
                "build_seconds": build,
                "precompute_seconds": seconds,
                "stage_seconds": report.get("stage_seconds"),
            }
        )
        print(json.dumps(results[-1]), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench scale", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    run = sub.add_parser("run", help="build samples and precompute them, per stage and in total")
    run.add_argument("--sizes", default="2000,10000,20000", help="comma-separated image counts (default 2k,10k,20k)")
    run.add_argument("--work", type=Path, default=Path("/tmp/bench-scale"), help="folder for samples and artifacts")
    run.add_argument("extra", nargs="*", help="arguments passed on to precompute (after --)")
    rank = sub.add_parser("rank", help="time the ranking stage alone on stored features")
    rank.add_argument("features", type=Path, help="a layer's features.npy")
    rank.add_argument("--metrics", default="manhattan,chebyshev")
    rank.add_argument("--engine", default="after", help="before, after or before,after")
    rank.add_argument("--queries", type=int, default=0, help="rank only the first N rows (0: all)")
    args = parser.parse_args(argv)
    print(_uptime(), flush=True)
    if args.mode == "rank":
        rank_stage(args.features, args.metrics.split(","), args.engine.split(","), args.queries or None)
    else:
        args.work.mkdir(parents=True, exist_ok=True)
        run_sizes([int(s) for s in args.sizes.split(",")], args.work, args.extra)
    print(_uptime(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
