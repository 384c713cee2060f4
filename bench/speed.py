"""Extraction, runtime, search and UMAP speed of the precompute stages on this machine, side by side in one run.

- Extraction: images/s of the project's one-pass multi-layer extraction (``build_feature_model``: one forward
  pass of a batch yields every layer) against the naive way of the reference ConvNet Playground (one
  ``model.predict`` per layer and per image, batch size 1), the ratio, and the achieved GFLOP/s for the
  model's FLOPs per image (``count_flops``). Weights are seeded random (``ResolvedWeights("random", ...)``):
  offline, ImageNet weights may be unavailable, and speed does not depend on weight values. Images are
  synthetic arrays already at the input size: decoding and resizing are left out of both sides.
- Runtimes: the same one-pass feature model on LiteRT (``precompute.runtimes``: converted once, XNNPACK, every
  core), timed in alternating rounds with Keras in the same process so that load from other processes hits both
  alike; the faster one per backbone is what ``--runtime auto`` picks (``--write-runtime-table`` stores it for this
  machine). Also one image at a time after warm-up (an upload's forward pass), the conversion's seconds, the
  device, and GFLOP/s as a share of this CPU's float32 peak (``cpu_peak_gflops``).
- Search: build time and single-query top-10 latency against N synthetic clustered float32 vectors, exact
  (chunked BLAS, :func:`precompute.ann.search` without an index) vs FAISS HNSW and IVF-Flat, with recall@10
  of each approximate index against the exact results.
- UMAP: :func:`precompute.embed.compute_umap` time against N (seeded, hence single-threaded, as precompute runs it).

Every figure depends on what else the machine is doing: the load average before and after is recorded.

    python -m bench speed --out bench-results.json
    python -m bench speed --quick --out /tmp/bench.json      # seconds: a smoke run for CI
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# The default run: about 8 minutes on 2 CPU cores; `--quick` is the CI-sized one.
DEFAULT_BACKBONES = ("efficientnet-lite0", "mobilenetv2", "efficientnetb0", "nasnetmobile", "vgg16")
SECTIONS = ("extraction", "search", "umap")
APP_BENCH = Path("bench/bench_app.py")  # `python -m bench bench_app`: referenced, never run from here


@dataclass(frozen=True)
class BenchConfig:
    backbones: tuple[str, ...] = DEFAULT_BACKBONES
    input_size: int = 224
    n_images: int = 32
    batch_size: int = 16
    n_layers: int = 4  # the registry's default layers, evenly picked from shallow to deep
    search_sizes: tuple[int, ...] = (1_000, 10_000, 100_000, 1_000_000)
    dim: int = 1280  # EfficientNet-B0/Lite0 top_conv, MobileNetV2 Conv_1
    big_dim: int = 256  # used from big_n vectors on, so 1M vectors fit in memory and time
    big_n: int = 1_000_000
    n_queries: int = 200
    metric: str = "cosine"
    ann_kinds: tuple[str, ...] = ("hnsw", "ivf-flat")
    hnsw_max_n: int = 200_000  # HNSW's build at 1M vectors takes > 4 min on 2 cores: run it with --hnsw-max
    umap_sizes: tuple[int, ...] = (1_000, 5_000, 20_000)
    umap_dim: int = 1280
    sections: tuple[str, ...] = SECTIONS
    seed: int = 0
    runtimes: bool = True  # also time LiteRT (and batch-1 uploads) beside Keras
    rounds: int = 3  # alternating Keras / LiteRT rounds; each rate is the best round (least disturbed by load)


QUICK = BenchConfig(backbones=("efficientnet-lite0",), input_size=64, n_images=4, batch_size=2, n_layers=2,
                    search_sizes=(500, 2_000), dim=64, big_dim=32, big_n=2_000, n_queries=20,
                    umap_sizes=(300,), umap_dim=32, rounds=1)


# ---------------------------------------------------------------------------------------------- extraction


def pick_layers(layers: Sequence[str], count: int) -> list[str]:
    """``count`` layers spread evenly over ``layers`` (shallow to deep), always including the deepest."""
    if count >= len(layers):
        return list(layers)
    picks = np.linspace(len(layers) - 1, 0, count).round().astype(int)[::-1]
    return [layers[i] for i in dict.fromkeys(picks.tolist())]


def bench_extraction(backbone_name: str, cfg: BenchConfig) -> dict[str, Any]:
    """One-pass vs naive per-layer extraction of the same synthetic images, with the same pooled outputs."""
    import keras

    from precompute.backbones import ResolvedWeights, build_base, count_flops, get_backbone
    from precompute.extract import build_feature_model, run_feature_model

    backbone = get_backbone(backbone_name)
    keras.backend.clear_session()
    weights = ResolvedWeights("random", None, "random (seed 0): speed does not depend on weight values", seed=0)
    base = build_base(backbone, weights, cfg.input_size)
    layers = pick_layers(backbone.default_layers, cfg.n_layers)
    rng = np.random.default_rng(cfg.seed)
    images = rng.uniform(0, 255, size=(cfg.n_images, cfg.input_size, cfg.input_size, 3)).astype(np.float32)
    batch = backbone.preprocess(images)
    flops = count_flops(base)

    # The project's way: one model with an output per layer, called on batches.
    one_pass = build_feature_model(base, layers, "avg", flatten=backbone.flatten)
    run_feature_model(one_pass, batch[: cfg.batch_size])  # warm-up: graph tracing, memory pools
    t0 = time.perf_counter()
    parts = [run_feature_model(one_pass, batch[i : i + cfg.batch_size]) for i in range(0, len(batch), cfg.batch_size)]
    one_pass_seconds = time.perf_counter() - t0
    fast = [np.concatenate(layer_parts) for layer_parts in zip(*parts, strict=True)]

    # The reference's way: a model per layer, `predict` on one image at a time.
    per_layer = [build_feature_model(base, [name], "avg", flatten=backbone.flatten) for name in layers]
    naive_flops = sum(count_flops(keras.Model(base.inputs, base.get_layer(name).output)) for name in layers)
    for model in per_layer:
        model.predict(batch[:1], verbose=0)  # warm-up, untimed, as for the one-pass model
    t0 = time.perf_counter()
    slow = [np.concatenate([model.predict(batch[i : i + 1], verbose=0) for i in range(len(batch))])
            for model in per_layer]
    naive_seconds = time.perf_counter() - t0
    max_diff = max(float(np.max(np.abs(a - b) / (np.abs(a).max() + 1e-12))) for a, b in zip(fast, slow, strict=True))
    one_pass_ips = cfg.n_images / one_pass_seconds
    naive_ips = cfg.n_images / naive_seconds
    runtime_rows = bench_runtimes(one_pass, batch, fast, flops, cfg) if cfg.runtimes else {}
    if runtime_rows:  # the best of the alternating rounds replaces the single timing above: one measure for both
        one_pass_ips = runtime_rows.pop("keras_images_per_second")
    del one_pass, per_layer, base
    keras.backend.clear_session()
    peak = cpu_peak_gflops()
    return {
        "backbone": backbone_name, "weights": "random (seed 0)", "input_size": cfg.input_size,
        "layers": layers, "n_images": cfg.n_images, "batch_size": cfg.batch_size,
        "gflops_per_image": round(flops / 1e9, 4),
        "one_pass_images_per_second": round(one_pass_ips, 2),
        "naive_images_per_second": round(naive_ips, 2),
        "speedup": round(one_pass_ips / naive_ips, 2),
        "one_pass_gflops_per_second": round(flops * one_pass_ips / 1e9, 2),
        # The naive way runs the shared trunk once per layer: this many GFLOPs per image, not gflops_per_image.
        "naive_gflops_per_image": round(naive_flops / 1e9, 4),
        "naive_gflops_per_second": round(naive_flops * naive_ips / 1e9, 2),
        "max_relative_difference": max_diff,
        "one_pass_peak_share": round(flops * one_pass_ips / 1e9 / peak, 4) if peak else None,
        **runtime_rows,
    }


def cpu_peak_gflops() -> float | None:
    """This CPU's float32 peak: cores x base clock x FLOPs per cycle (AVX-512: 2 FMA units x 16 lanes x 2 = 64;
    AVX2: 32; else 8). An upper bound: turbo is left out, and a VM may expose fewer FMA units."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    mhz = [float(line.split(":")[1]) for line in text.splitlines() if line.startswith("cpu MHz")]
    flags = next((line.split(":")[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    per_cycle = 64 if "avx512f" in flags else 32 if "avx2" in flags and "fma" in flags else 8
    return round((os.cpu_count() or 1) * max(mhz, default=0) / 1e3 * per_cycle, 1) or None


def bench_runtimes(keras_model: Any, batch: np.ndarray, expected: list[np.ndarray], flops: int, cfg: BenchConfig
                   ) -> dict[str, Any]:
    """Keras vs LiteRT on the same feature model and batch: best of ``cfg.rounds`` alternating rounds each, and
    one image at a time (median ms after warm-up); LiteRT's conversion seconds and its largest relative difference.
    """
    import tempfile

    from precompute.extract import run_feature_model
    from precompute.runtimes import convert_to_tflite, device_name, load_litert_model

    with tempfile.TemporaryDirectory() as folder:  # the bench times the conversion: never a cached file
        path = Path(folder) / "bench.tflite"
        conversion = convert_to_tflite(keras_model, path)
        lite, _ = load_litert_model(lambda: keras_model, path)
        size_mb = lite.size_mb

        def timed(model: Any) -> float:
            t0 = time.perf_counter()
            for i in range(0, len(batch), cfg.batch_size):
                run_feature_model(model, batch[i : i + cfg.batch_size])
            return cfg.n_images / (time.perf_counter() - t0)

        lite_out = [np.concatenate(parts) for parts in zip(
            *[lite(batch[i : i + cfg.batch_size]) for i in range(0, len(batch), cfg.batch_size)], strict=True)]
        rates: dict[str, list[float]] = {"keras": [], "litert": []}
        for _ in range(cfg.rounds):
            rates["keras"].append(timed(keras_model))
            rates["litert"].append(timed(lite))

        def single_ms(model: Any) -> float:
            run_feature_model(model, batch[:1])  # warm-up: the batch-1 shape
            return _median_ms(lambda one: run_feature_model(model, one), batch[: min(len(batch), 16)])

        keras_single, lite_single = single_ms(keras_model), single_ms(lite)
        del lite
    keras_ips, lite_ips = max(rates["keras"]), max(rates["litert"])
    peak = cpu_peak_gflops()
    diff = max(float(np.max(np.abs(a - b)) / (np.abs(a).max() + 1e-12))
               for a, b in zip(expected, lite_out, strict=True))
    return {
        "keras_images_per_second": round(keras_ips, 2),
        "keras_rounds": [round(r, 2) for r in rates["keras"]],
        "litert_images_per_second": round(lite_ips, 2),
        "litert_rounds": [round(r, 2) for r in rates["litert"]],
        "litert_speedup": round(lite_ips / keras_ips, 2),
        "litert_gflops_per_second": round(flops * lite_ips / 1e9, 2),
        "litert_peak_share": round(flops * lite_ips / 1e9 / peak, 4) if peak else None,
        "litert_conversion_seconds": round(conversion, 2),
        "litert_model_mb": round(size_mb, 2),
        "litert_max_relative_difference": diff,
        "keras_single_image_ms": keras_single,
        "litert_single_image_ms": lite_single,
        "faster_runtime": "litert" if lite_ips > keras_ips else "keras",
        "device": device_name(),
    }


# -------------------------------------------------------------------------------------------------- search


def clustered_vectors(n: int, dim: int, seed: int, n_clusters: int = 100, spread: float = 2.0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` float32 vectors from a mixture of ``n_clusters`` gaussians (features cluster; uniform noise has no
    neighbours worth finding), and the cluster centres so queries can be drawn from the same mixture.

    ``spread`` scales the centres against the unit noise: 2 gives well separated clusters (easy for IVF), 0.3
    overlapping ones (a connected neighbour graph, which UMAP's spectral initialisation needs)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim), dtype=np.float32) * spread
    vectors = np.empty((n, dim), dtype=np.float32)
    for lo in range(0, n, 65536):
        hi = min(lo + 65536, n)
        vectors[lo:hi] = centres[rng.integers(0, n_clusters, hi - lo)] + rng.standard_normal((hi - lo, dim),
                                                                                              dtype=np.float32)
    return vectors, centres


def _median_ms(call: Callable[[np.ndarray], Any], queries: np.ndarray) -> float:
    times = []
    for query in queries:
        t0 = time.perf_counter()
        call(query[None, :])
        times.append(time.perf_counter() - t0)
    return round(1000 * statistics.median(times), 3)


def bench_search(n: int, cfg: BenchConfig) -> list[dict[str, Any]]:
    """Exact vs each FAISS index kind at one size: build seconds, median single-query ms, recall@10."""
    from precompute import ann

    dim = cfg.big_dim if n >= cfg.big_n else cfg.dim
    features, centres = clustered_vectors(n, dim, cfg.seed)
    rng = np.random.default_rng(cfg.seed + 1)
    queries = (centres[rng.integers(0, len(centres), cfg.n_queries)]
               + rng.standard_normal((cfg.n_queries, dim), dtype=np.float32))
    k = 10
    latency_queries = queries[: min(len(queries), 50)]
    exact_ids, _ = ann.search(queries, features, cfg.metric, k)
    common = {"n": n, "dim": dim, "metric": cfg.metric, "k": k, "n_queries": len(queries)}
    rows = [{**common, "method": "exact (numpy BLAS, chunked)", "params": {}, "build_seconds": 0.0,
             "query_ms": _median_ms(lambda q: ann.search(q, features, cfg.metric, k), latency_queries),
             "faiss_ms": None, "recall@10": 1.0, "index_mb": round(features.nbytes / 1e6, 1)}]
    for kind in cfg.ann_kinds:
        if kind == "hnsw" and n > cfg.hnsw_max_n:
            continue
        index = ann.build_index(features, cfg.metric, kind, seed=cfg.seed)
        ids, _ = ann.search(queries, features, cfg.metric, k, index=index)
        prepared = ann._prepare(latency_queries, "cosine" if cfg.metric == "cosine" else "")
        rows.append({**common, "method": f"faiss-{kind}", "params": index.params,
                     "build_seconds": round(index.build_seconds, 3),
                     "query_ms": _median_ms(lambda q, index=index: ann.search(q, features, cfg.metric, k, index=index),
                                            latency_queries),
                     "faiss_ms": _median_ms(lambda q, index=index: index.index.search(q, 2 * (k + 1)), prepared),
                     "recall@10": round(ann.recall_at_k(ids, exact_ids, k), 4), "index_mb": _index_mb(index)})
        del index
    return rows


def _index_mb(index: Any) -> float:
    import faiss

    return round(len(faiss.serialize_index(index.index)) / 1e6, 1)


# ---------------------------------------------------------------------------------------------------- UMAP


def bench_umap(n: int, cfg: BenchConfig, dim: int | None = None) -> dict[str, Any]:
    from precompute.embed import compute_umap

    dim = dim or cfg.umap_dim
    features, _ = clustered_vectors(n, dim, cfg.seed, n_clusters=10, spread=0.3)
    t0 = time.perf_counter()
    compute_umap(features, n_neighbors=15, min_dist=0.1, seed=cfg.seed)
    return {"n": n, "dim": dim, "seconds": round(time.perf_counter() - t0, 2), "n_neighbors": 15}


# ------------------------------------------------------------------------------------------------- the run


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu_model": cpu, "n_cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_bench(cfg: BenchConfig, log: Callable[[str], None] = print, argv: Sequence[str] | None = None
              ) -> dict[str, Any]:
    """Run the chosen sections; returns the JSON-able results (``meta``, ``extraction``, ``search``, ``umap``)."""
    from precompute.run_summary import package_versions

    argv = sys.argv[1:] if argv is None else argv
    results: dict[str, Any] = {
        "meta": {"started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                 "command": " ".join(["python -m bench speed", *map(shlex.quote, argv)]),
                 **machine_info(), "cpu_peak_gflops": cpu_peak_gflops(), "load_before": _load(),
                 "versions": package_versions(),
                 "config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.__dict__.items()},
                 "notes": ["Extraction uses seeded random weights: speed does not depend on weight values.",
                           "Extraction timings leave out decoding/resizing (synthetic images at the input size) "
                           "and one untimed warm-up call per model.",
                           "Search vectors are synthetic clustered float32 data; recall on real features may "
                           "differ. query_ms is one query per call (the app's upload case), median.",
                           "The CPU may be shared with other processes: see load_before / load_after."]},
        "extraction": [], "search": [], "umap": [],
        "app": {"script": str(APP_BENCH), "exists": APP_BENCH.is_file(),
                "note": "app callback latency is measured by `python -m bench bench_app`, not here"},
    }
    t_start = time.perf_counter()
    if "extraction" in cfg.sections:
        for name in cfg.backbones:
            log(f"extraction: {name} at {cfg.input_size}px, {cfg.n_images} images ...")
            results["extraction"].append({**bench_extraction(name, cfg), "load": _load()})
    if "search" in cfg.sections:
        for n in cfg.search_sizes:
            log(f"search: N = {n:,} ...")
            results["search"].extend(bench_search(n, cfg))
    if "umap" in cfg.sections:
        t0 = time.perf_counter()
        # numba compiles UMAP's kernels on first use, a one-off cost timed apart: the exact-neighbour path
        # (below 4096 points) and the NN-descent one (from 4096 on) each have their own.
        bench_umap(50, cfg, dim=8)
        if max(cfg.umap_sizes, default=0) >= 4096:
            bench_umap(4200, cfg, dim=8)
        results["umap_first_call_seconds"] = round(time.perf_counter() - t0, 2)
        for n in cfg.umap_sizes:
            log(f"umap: N = {n:,} ...")
            results["umap"].append(bench_umap(n, cfg))
    results["meta"].update(load_after=_load(), seconds=round(time.perf_counter() - t_start, 1))
    return results


def format_tables(results: dict[str, Any]) -> str:
    import pandas as pd

    meta = results["meta"]
    lines = [f"{meta['cpu_model']} ({meta['n_cpus']} CPUs), load {meta['load_before']} -> "
             f"{meta.get('load_after')}, {meta.get('seconds')} s"]
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.max_colwidth", 60):
        if results["extraction"]:
            table = pd.DataFrame(results["extraction"])[
                ["backbone", "input_size", "n_images", "gflops_per_image", "one_pass_images_per_second",
                 "naive_images_per_second", "speedup", "one_pass_gflops_per_second", "naive_gflops_per_image"]]
            lines += ["", "Extraction (one pass, all layers, batches) vs naive (predict per layer, batch 1):",
                      table.to_string(index=False)]
            if "litert_images_per_second" in table_columns(results["extraction"]):
                runtimes = pd.DataFrame(results["extraction"])[
                    ["backbone", "naive_images_per_second", "one_pass_images_per_second", "litert_images_per_second",
                     "litert_speedup", "one_pass_peak_share", "litert_peak_share", "keras_single_image_ms",
                     "litert_single_image_ms", "litert_conversion_seconds", "faster_runtime", "load"]]
                lines += ["", f"Runtimes on {results['extraction'][0].get('device')} (peak "
                          f"{meta.get('cpu_peak_gflops')} GFLOP/s; img/s = best of alternating rounds):",
                          runtimes.to_string(index=False)]
        if results["search"]:
            table = pd.DataFrame(results["search"])[
                ["n", "dim", "method", "build_seconds", "query_ms", "faiss_ms", "recall@10", "index_mb"]]
            lines += ["", "Top-10 search, single-query latency:", table.to_string(index=False)]
        if results["umap"]:
            lines += ["", f"UMAP (after a {results.get('umap_first_call_seconds')} s first call that compiles "
                      "its kernels):", pd.DataFrame(results["umap"]).to_string(index=False)]
    app = results["app"]
    lines += ["", f"App callback latency: {'see ' + app['script'] if app['exists'] else 'not measured here'}"]
    return "\n".join(lines)


def table_columns(rows: list[dict[str, Any]]) -> set[str]:
    return set().union(*(row.keys() for row in rows)) if rows else set()


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(prog="python -m bench speed", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench-results.json"), help="JSON results file")
    parser.add_argument("--quick", action="store_true", help="a CI-sized smoke run (seconds, tiny sizes)")
    parser.add_argument("--sections", type=_names, help=f"subset of {','.join(SECTIONS)}")
    parser.add_argument("--backbones", type=_names, help=f"default {','.join(DEFAULT_BACKBONES)}")
    parser.add_argument("--images", type=int, help="images per extraction measurement (default 32)")
    parser.add_argument("--input-size", type=int, help="input side in pixels (default 224)")
    parser.add_argument("--layers", type=int, help="layers per backbone, picked shallow to deep (default 4)")
    parser.add_argument("--search-sizes", type=_ints, help="default 1000,10000,100000,1000000")
    parser.add_argument("--dim", type=int, help="vector dim for search (default 1280)")
    parser.add_argument("--big-dim", type=int, help="vector dim from 1,000,000 vectors on (default 256)")
    parser.add_argument("--metric", help="search metric (default cosine)")
    parser.add_argument("--hnsw-max", type=int, help="largest N to build HNSW for (default 200000)")
    parser.add_argument("--umap-sizes", type=_ints, help="default 1000,5000,20000")
    parser.add_argument("--no-runtimes", action="store_true", help="time Keras only (no LiteRT comparison)")
    parser.add_argument("--rounds", type=int, help="alternating Keras/LiteRT rounds (default 3)")
    parser.add_argument("--write-runtime-table", action="store_true",
                        help="store the faster runtime per benchmarked backbone for `--runtime auto` on this "
                        "machine ($SISP_CACHE_DIR/runtime-table.json)")
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    from precompute.backbones import get_backbone
    from precompute.similarity import parse_metric

    cfg = QUICK if args.quick else BenchConfig()
    overrides = {"sections": args.sections, "backbones": args.backbones, "n_images": args.images,
                 "input_size": args.input_size, "n_layers": args.layers, "search_sizes": args.search_sizes,
                 "dim": args.dim, "big_dim": args.big_dim, "hnsw_max_n": args.hnsw_max, "metric": args.metric,
                 "umap_sizes": args.umap_sizes, "rounds": args.rounds,
                 "runtimes": False if args.no_runtimes else None}
    cfg = BenchConfig(**{**cfg.__dict__, **{k: v for k, v in overrides.items() if v is not None}})
    try:
        for name in cfg.backbones:
            get_backbone(name)
        parse_metric(cfg.metric)
        unknown = set(cfg.sections) - set(SECTIONS)
        if unknown:
            raise ValueError(f"Unknown section(s) {sorted(unknown)}; valid: {', '.join(SECTIONS)}.")
    except ValueError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    results = run_bench(cfg, log=lambda text: print(text, file=sys.stderr, flush=True), argv=argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(format_tables(results))
    choice = {row["backbone"]: row["faster_runtime"] for row in results["extraction"] if "faster_runtime" in row}
    if args.write_runtime_table and choice:
        from precompute.runtimes import write_runtime_table

        measured = {row["backbone"]: {k: row[k] for k in ("one_pass_images_per_second", "litert_images_per_second",
                                                          "load")} for row in results["extraction"]}
        print(f"wrote the runtime table for --runtime auto: {write_runtime_table(choice, measured)}")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
