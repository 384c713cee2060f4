"""Relevance feedback (issue #23): simulated users on the stored features, and the time of a refine.

``python -m bench feedback [--artifacts DIR]``: for every labeled dataset and every model's best layer (by rwp@15
under the metric), every image is a query; a simulated user marks the top 5, 10 or 15 results relevant when they
share the query's label and not relevant otherwise, for one and two rounds (round two marks the top of the refined
list, adding to round one's marks). Scores: mean precision@15 before and after (bootstrap interval over queries,
``precompute.stats``) and *residual* precision@15 (the ranking with every marked image left out: what the marks
did for the results the user has not seen yet). For each dataset and model one line a script can read, for one
round on the top 15 with Rocchio (what the page computes, ``precompute.feedback`` = ``assets/feedback.js``)::

    <dataset> <model>/<layer>/<metric>: precision@15 0.373 -> 0.521 [0.49, 0.55], residual 0.301 -> 0.388

and, where the model has a stored head (``<model>+head``, precompute --train-head) or ``--hybrid MODEL`` asks, the
hybrid line: each query ranked by the head (``precompute.head``, default settings) trained *without* its half of
the labels (the halves of the head's held-out scores), then one round of in-browser fine-tuning of that head on
the top 15's marks (``trainHybrid``)::

    <dataset> <model>+head/<layer>/<metric>: precision@15 0.617 -> 0.763 [0.73, 0.79], residual ...

then, indented, every depth and round, and the in-browser head (``assets/feedback.js`` ``trainHead``: TF.js
``fit`` in node, CPU backend, the page's code) on one round of the top 15, beside Rocchio with a paired interval.

Times: a refine on the server (``precompute.feedback.refine``) per query, and in headless Chromium (the app's own
page and scripts): Rocchio + ranking on 200 images (the dataset's stored features) and on 5,000 (random features of
the same dimension), and the head's fine-tune on 15 marks, on the wasm and cpu backends. ``--no-browser`` and
``--no-head`` skip those parts; ``--out FILE`` writes everything as JSON; the machine's load is printed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
NODE_DRIVER = Path(__file__).with_name("feedback_node.js")
DEPTHS = (5, 10, 15)
ROUNDS = (1, 2)
K = 15


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# ----------------------------------------------------------------------------------------------- simulation
def _ranked(vectors: np.ndarray, features: np.ndarray, metric: str, exclude: list[set[int]], k: int) -> np.ndarray:
    """Top ``k`` ids per refined query, the excluded ids left out: the exact engine's order (float32 distance,
    ties by the lower id), as ``similarity.search_exact``."""
    from precompute.similarity import pairwise_distances

    distances = pairwise_distances(vectors, features, metric).astype(np.float32)
    out = np.empty((len(vectors), k), dtype=np.int64)
    for i, row in enumerate(distances):
        if exclude[i]:
            row[list(exclude[i])] = np.inf
        out[i] = np.argsort(row, kind="stable")[:k]
    return out


def _precision(ids: np.ndarray, labels: np.ndarray, query_labels: np.ndarray) -> np.ndarray:
    return (labels[ids] == query_labels[:, None]).mean(axis=1)


def simulate(
    features: np.ndarray, labels: np.ndarray, metric: str, depth: int, rounds: int, start: np.ndarray | None = None
) -> dict:
    """Rocchio rounds for every query; ``start`` (n, K+) gives each query's first ranking (default: the features')."""
    from precompute.feedback import rocchio_query

    n = len(features)
    queries = np.arange(n)
    self_only = [{int(q)} for q in queries]
    ranking = _ranked(features, features, metric, self_only, K + depth * rounds) if start is None else start
    marks: list[tuple[list[int], list[int]]] = [([], []) for _ in queries]
    before = _precision(ranking[:, :K], labels, labels)
    out = {"before": before, "rounds": []}
    for _round in range(rounds):
        for q in queries:
            rel, nrel = marks[q]
            for i in ranking[q, :depth]:
                i = int(i)
                if i not in rel and i not in nrel:
                    (rel if labels[i] == labels[q] else nrel).append(i)
        marked = [{int(q), *marks[q][0], *marks[q][1]} for q in queries]
        residual_before = _ranked(features, features, metric, marked, K) if start is None else None
        vectors = np.stack([rocchio_query(features[q], features, *marks[q], metric) for q in queries])
        ranking = _ranked(vectors, features, metric, self_only, K + depth)
        residual = _ranked(vectors, features, metric, marked, K)
        out["rounds"].append(
            {
                "after": _precision(ranking[:, :K], labels, labels),
                "residual_before": None if residual_before is None else _precision(residual_before, labels, labels),
                "residual_after": _precision(residual, labels, labels),
                "marks": [(list(r), list(s)) for r, s in marks],
            }
        )
    return out


def head_round(
    features: np.ndarray,
    labels: np.ndarray,
    metric: str,
    marks: list[tuple[list[int], list[int]]],
    options: dict | None = None,
) -> dict:
    """One round of the in-browser head (TF.js in node) on the given marks: precision@15, residual, fit times."""
    from precompute.feedback import rank_by_scores

    tasks = [
        {"query": q, "relevant": rel, "notRelevant": nrel, "options": options or {}}
        for q, (rel, nrel) in enumerate(marks)
    ]
    rows = run_node_heads(features, metric, tasks)
    after, residual, ms = [], [], []
    for q, ((rel, nrel), row) in enumerate(zip(marks, rows, strict=True)):
        scores = row["scores"]
        top = rank_by_scores(scores, K, exclude=q)
        after.append(np.mean(labels[top] == labels[q]))
        rest = scores.copy()
        rest[[*rel, *nrel]] = -np.inf
        residual.append(np.mean(labels[rank_by_scores(rest, K, exclude=q)] == labels[q]))
        ms.append(row["ms"])
    return {"after": np.array(after), "residual_after": np.array(residual), "fit_ms": np.array(ms)}


def run_node_heads(
    features: np.ndarray, metric: str, tasks: list[dict], timeout: float = 3600, project=None
) -> list[dict]:
    """``trainHead`` of assets/feedback.js for each task, in node with TF.js' tf.min.js (CPU backend); with
    ``project`` (a ``precompute.head.LinearHead``), ``trainHybrid`` from that server head."""
    from precompute.npm_files import TFJS

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "features.f32"
        np.ascontiguousarray(features, dtype="<f4").tofile(path)
        done = subprocess.run(
            [
                "node",
                str(NODE_DRIVER),
                str(TFJS.find(fetch=False)),
                str(ASSETS),
                str(path),
                str(len(features)),
                str(features.shape[1]),
            ],
            input=json.dumps(
                {
                    "metric": metric,
                    "tasks": tasks,
                    "project": None
                    if project is None
                    else {
                        "kernel": base64.b64encode(
                            np.ascontiguousarray(project.kernel, dtype="<f4").tobytes()
                        ).decode(),
                        "bias": [float(v) for v in project.bias],
                    },
                }
            ),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"the head failed in node: {done.stderr.strip()[-2000:]}")
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    for row in rows:
        row["scores"] = np.frombuffer(base64.b64decode(row["scores"]), np.float32)
        if row.get("kernel"):  # a task that asked for its fitted weights ("kernel": true)
            row["kernel"] = np.frombuffer(base64.b64decode(row["kernel"]), np.float32)
    return rows


def hybrid(features: np.ndarray, labels: np.ndarray, depth: int = K, options: dict | None = None) -> dict:
    """The hybrid flow, held out: each query ranked by the server head (``precompute.head``, default settings)
    trained on the other half of the labels (``split_halves``, as the head's held-out scores), gallery the whole
    collection less the query (the headline protocol); the user marks the top ``depth``; then one round of the
    in-browser fine-tuning of that head (``trainHybrid``, TF.js in node), and Rocchio in the head's space beside it."""
    from precompute.feedback import rank_by_scores, rocchio_query
    from precompute.head import HeadSettings, fit_head, split_halves

    settings = HeadSettings()
    n = len(features)
    rows = np.arange(n)
    folds = split_halves(labels, settings.seed)
    before, after, rocchio_after = np.zeros(n), np.zeros(n), np.zeros(n)
    residual_before, residual_after = np.zeros(n), np.zeros(n)
    ms = []
    for fold in (0, 1):
        queries = rows[folds == fold]
        head = fit_head(features[folds != fold], labels[folds != fold], settings)
        z = head.transform(features)
        top = _ranked(z[queries], z, "cosine", [{int(q)} for q in queries], K + depth)
        marks = []
        for q, ranked in zip(queries, top, strict=True):
            rel = [int(i) for i in ranked[:depth] if labels[i] == labels[q]]
            nrel = [int(i) for i in ranked[:depth] if labels[i] != labels[q]]
            marks.append((rel, nrel))
            before[q] = np.mean(labels[ranked[:K]] == labels[q])
        marked = [{int(q), *r, *s} for q, (r, s) in zip(queries, marks, strict=True)]
        residual = _ranked(z[queries], z, "cosine", marked, K)
        residual_before[queries] = _precision(residual, labels, labels[queries])
        vectors = np.stack([rocchio_query(z[q], z, r, s, "cosine") for q, (r, s) in zip(queries, marks, strict=True)])
        moved = _ranked(vectors, z, "cosine", [{int(q)} for q in queries], K)
        rocchio_after[queries] = _precision(moved, labels, labels[queries])
        tasks = [
            {"query": int(q), "relevant": r, "notRelevant": s, "options": options or {}}
            for q, (r, s) in zip(queries, marks, strict=True)
        ]
        for q, (r, s), row in zip(queries, marks, run_node_heads(features, "cosine", tasks, project=head), strict=True):
            scores = row["scores"]
            after[q] = np.mean(labels[rank_by_scores(scores, K, exclude=int(q))] == labels[q])
            rest = scores.copy()
            rest[[*r, *s]] = -np.inf
            residual_after[q] = np.mean(labels[rank_by_scores(rest, K, exclude=int(q))] == labels[q])
            ms.append(row["ms"])
    return {
        "before": before,
        "after": after,
        "rocchio_after": rocchio_after,
        "residual_before": residual_before,
        "residual_after": residual_after,
        "fit_ms": np.array(ms),
    }


def _ci(values: np.ndarray) -> tuple[float, float]:
    from precompute.stats import bootstrap_ci

    low, high = bootstrap_ci(np.asarray(values, dtype=np.float64))
    return float(low), float(high)


def _paired(a: np.ndarray, b: np.ndarray) -> dict:
    from precompute.stats import paired_comparison

    return paired_comparison(np.asarray(a, np.float64), np.asarray(b, np.float64))


def _fit_against_rocchio(result: dict, rocchio_after: np.ndarray) -> dict:
    """A head's (or a fine-tune's) round as the JSON stores it: its precision@15 after the round with its interval,
    the residual, its paired difference to Rocchio's ranking of the same marks, and the median fit time."""
    low, high = _ci(result["after"])
    diff = _paired(result["after"], rocchio_after)
    return {
        "after": float(result["after"].mean()),
        "after_ci": [low, high],
        "residual_after": float(result["residual_after"].mean()),
        "minus_rocchio": float(diff["mean_difference"]),
        "minus_rocchio_ci": list(map(float, diff["ci"])),
        "fit_ms_median_node_cpu": float(np.median(result["fit_ms"])),
    }


def server_refine_ms(features: np.ndarray, labels: np.ndarray, metric: str, repeats: int = 50) -> float:
    """Median time of ``precompute.feedback.refine`` (Rocchio + exact ranking) for a top-15 round of marks."""
    from precompute.feedback import refine
    from precompute.similarity import search_exact

    times = []
    for q in range(min(repeats, len(features))):
        top = search_exact(features[q], features, metric, K, exclude=np.array([q])).indices[0]
        rel = [int(i) for i in top if labels[i] == labels[q]]
        nrel = [int(i) for i in top if labels[i] != labels[q]]
        start = time.perf_counter()
        refine(features[q], features, rel, nrel, metric, K, exclude=q)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


# ----------------------------------------------------------------------------------------------- the browser
BROWSER_TIMING = r"""
const [featuresUrl, n200, dim, tfUrl, wasm, metric] = arguments;
const done = arguments[arguments.length - 1];
(async () => {
  const F = window.sispFeedback;
  const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const features200 = new Float32Array(await (await fetch(featuresUrl)).arrayBuffer());
  let seed = 1;
  const random = () => { seed = (seed * 16807) % 2147483647; return seed / 2147483647 - 0.5; };
  const features5000 = new Float32Array(5000 * dim);
  for (let i = 0; i < features5000.length; i++) features5000[i] = random();
  const out = {};
  for (const [name, features, n] of [["200", features200, n200], ["5000", features5000, 5000]]) {
    const times = [];
    for (let r = 0; r < 21; r++) {
      const q = (r * 37) % n;
      const rel = [], not = [];
      for (let i = 1; i <= 15; i++) ((i % 3) ? rel : not).push((q + i * 7) % n);
      const t0 = performance.now();
      const vector = F.rocchio(features.subarray(q * dim, (q + 1) * dim), features, dim, rel, not, metric);
      F.rankRefined(vector, features, dim, metric, 15, q);
      times.push(performance.now() - t0);
    }
    out["rocchio_" + name + "_ms"] = median(times);
    out["rocchio_" + name + "_first_ms"] = times[0];
  }
  const upload = window.sispPrivateUpload;
  for (const backend of ["wasm", "cpu"]) {
    const used = await upload.setBackend(backend, tfUrl, wasm);
    const times = [];
    for (let r = 0; r < 6; r++) {
      const q = (r * 37) % n200;
      const rel = [], not = [];
      for (let i = 1; i <= 15; i++) ((i % 3) ? rel : not).push((q + i * 7) % n200);
      const result = await F.trainHead(window.tf, features200, dim, features200.slice(q * dim, (q + 1) * dim), rel,
        not, metric);
      times.push(result.ms);
    }
    out["head_" + backend] = {backend: used, first_ms: times[0], median_ms: median(times.slice(1))};
  }
  return out;
})().then(done, (e) => done({error: String(e && e.stack || e)}));
"""


def browser_times(root: Path, dataset: str, model: str, layer: str, metric: str) -> dict:
    """Refine and fine-tune times in headless Chromium, on the app's own page (its scripts, its TF.js)."""
    from bench.private_upload import BrowserSession
    from playground.app import create_app
    from playground.feedback import context_data
    from playground.store import Store

    store = Store(root)
    ctx = context_data(store, dataset, model, layer, metric, 0, K, "search")
    with BrowserSession(create_app(root)) as browser:
        browser.open(f"/search?dataset={dataset}&model={model}&layer={layer}&metric={metric}")
        browser.driver.execute_script("return 1")
        for _ in range(300):
            if browser.driver.execute_script("return Boolean(window.sispFeedback && window.sispPrivateUpload)"):
                break
            time.sleep(0.1)
        result = browser.driver.execute_async_script(
            BROWSER_TIMING,
            ctx["urls"]["features"],
            ctx["n_images"],
            ctx["dim"],
            ctx["urls"]["tf"],
            ctx["urls"]["wasm"],
            metric,
        )
    if "error" in result:
        raise RuntimeError(result["error"])
    return result


# ----------------------------------------------------------------------------------------------- main
def configurations(store, metric: str) -> list[tuple[str, str, str]]:
    from playground.state import best_layer

    out = []
    for dataset in store.datasets():
        if not store.is_labeled(dataset):
            continue
        for model in store.models(dataset):
            if "+" in model:  # a trained head is the hybrid line's business
                continue
            if metric not in store.all_metrics(dataset):
                continue
            out.append((dataset, model, best_layer(store, dataset, model, metric)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench feedback", description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", default=os.environ.get("SISP_ARTIFACTS", "artifacts"))
    parser.add_argument("--metric", default="cosine")
    parser.add_argument("--dataset", action="append", help="only these datasets (default: every labeled one)")
    parser.add_argument("--model", action="append", help="only these models (default: every one)")
    parser.add_argument("--no-head", action="store_true", help="skip the in-browser head (TF.js in node)")
    parser.add_argument(
        "--hybrid",
        action="append",
        default=[],
        metavar="MODEL",
        help="the hybrid line for MODEL too (default: the models with a stored <model>+head)",
    )
    parser.add_argument("--no-browser", action="store_true", help="skip the timings in headless Chromium")
    parser.add_argument("--out", type=Path, help="write every figure as JSON")
    args = parser.parse_args(argv)

    from playground.store import Store

    root = Path(args.artifacts)
    store = Store(root)
    configs = [
        c
        for c in configurations(store, args.metric)
        if (not args.dataset or c[0] in args.dataset) and (not args.model or c[1] in args.model)
    ]
    if not configs:
        print(f"no labeled dataset with {args.metric} in {root}", file=sys.stderr)
        return 2
    print(f"# load before: {_load()}", flush=True)
    report: dict = {"load_before": _load(), "metric": args.metric, "configs": []}
    for dataset, model, layer in configs:
        features = np.asarray(store.features(dataset, model, layer), dtype=np.float32)
        labels = np.asarray(store.labels(dataset)).astype(str)
        entry: dict = {"dataset": dataset, "model": model, "layer": layer, "runs": {}}
        main_line = None
        for depth in DEPTHS:
            sim = simulate(features, labels, args.metric, depth, max(ROUNDS))
            for r in ROUNDS:
                rnd = sim["rounds"][r - 1]
                low, high = _ci(rnd["after"])
                row = {
                    "before": float(sim["before"].mean()),
                    "after": float(rnd["after"].mean()),
                    "after_ci": [low, high],
                    "residual_before": float(rnd["residual_before"].mean()),
                    "residual_after": float(rnd["residual_after"].mean()),
                }
                entry["runs"][f"top{depth}_round{r}"] = row
                if depth == K and r == 1:
                    main_line = (
                        f"{dataset} {model}/{layer}/{args.metric}: precision@15 {row['before']:.3f} -> "
                        f"{row['after']:.3f} [{low:.2f}, {high:.2f}], residual {row['residual_before']:.3f}"
                        f" -> {row['residual_after']:.3f}"
                    )
                    rocchio_after, rocchio_residual, marks = rnd["after"], rnd["residual_after"], rnd["marks"]
        print(main_line, flush=True)
        for key, row in entry["runs"].items():
            print(
                f"    rocchio {key:<13} precision@15 {row['before']:.3f} -> {row['after']:.3f} "
                f"[{row['after_ci'][0]:.2f}, {row['after_ci'][1]:.2f}], residual {row['residual_before']:.3f} -> "
                f"{row['residual_after']:.3f}"
            )
        if not args.no_head:
            head = head_round(features, labels, args.metric, marks)
            h = entry["head_top15_round1"] = _fit_against_rocchio(head, rocchio_after)
            low, high = h["after_ci"]
            print(
                f"    head    top15_round1  precision@15 {entry['runs']['top15_round1']['before']:.3f} -> "
                f"{h['after']:.3f} [{low:.2f}, {high:.2f}], residual -> {h['residual_after']:.3f}; head - rocchio "
                f"{h['minus_rocchio']:+.3f} [{h['minus_rocchio_ci'][0]:+.3f}, {h['minus_rocchio_ci'][1]:+.3f}] "
                f"(residual {h['residual_after'] - float(rocchio_residual.mean()):+.3f}); fit "
                f"{h['fit_ms_median_node_cpu']:.0f} ms (node, cpu)",
                flush=True,
            )
        if f"{model}+head" in store.models(dataset) or model in args.hybrid:
            hy = hybrid(features, labels)
            h = entry["hybrid"] = {
                "before": float(hy["before"].mean()),
                "residual_before": float(hy["residual_before"].mean()),
                "rocchio_in_head_space": float(hy["rocchio_after"].mean()),
                **_fit_against_rocchio(hy, hy["rocchio_after"]),
            }
            low, high = h["after_ci"]
            print(
                f"{dataset} {model}+head/{layer}/cosine: precision@15 {h['before']:.3f} -> {h['after']:.3f} "
                f"[{low:.2f}, {high:.2f}], residual {h['residual_before']:.3f} -> {h['residual_after']:.3f}",
                flush=True,
            )
            print(
                f"    hybrid: Rocchio in the head's space {h['rocchio_in_head_space']:.3f}; fine-tune - Rocchio "
                f"{h['minus_rocchio']:+.3f} [{h['minus_rocchio_ci'][0]:+.3f}, {h['minus_rocchio_ci'][1]:+.3f}]; "
                f"fine-tune {h['fit_ms_median_node_cpu']:.0f} ms (node, cpu)",
                flush=True,
            )
        entry["server_refine_ms"] = server_refine_ms(features, labels, args.metric)
        print(
            f"    server refine {entry['server_refine_ms']:.2f} ms (median, {len(features)} images, "
            f"dim {features.shape[1]})",
            flush=True,
        )
        report["configs"].append(entry)
    if not args.no_browser and shutil.which("chromium"):
        dataset, model, layer = configs[0]
        times = browser_times(root, dataset, model, layer, args.metric)
        report["browser"] = {"dataset": dataset, "model": model, "layer": layer, **times}
        print(
            f"browser refine (Rocchio + ranking, headless Chromium): 200 images {times['rocchio_200_ms']:.1f} ms, "
            f"5,000 images {times['rocchio_5000_ms']:.1f} ms (median of 21; first {times['rocchio_200_first_ms']:.1f}"
            f" / {times['rocchio_5000_first_ms']:.1f} ms); head fine-tune on 15 marks: "
            + ", ".join(
                f"{v['backend']} {v['median_ms']:.0f} ms (first {v['first_ms']:.0f} ms)"
                for k, v in times.items()
                if k.startswith("head_")
            ),
            flush=True,
        )
    report["load_after"] = _load()
    print(f"# load after: {_load()}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
