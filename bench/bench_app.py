"""Callback latency of the playground when the user switches model, layer or metric.

Calls the functions the callbacks run (controller, search view, grid, embeddings, compare), serialises
their output to JSON as Dash does, and prints median and p95 milliseconds per step. The first pass
over every combination (cold: files read from disk) is reported apart from the repeated ones (warm:
served from the store's caches).

    .venv/bin/python -m bench bench_app [--artifacts artifacts] [--dataset openclipart-200, the default] [--repeat 20]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plotly.io.json import to_json_plotly  # noqa: E402

from playground.callbacks.controller import control_options, update_selection  # noqa: E402
from playground.state import DEFAULT_DATASET, resolve_selection  # noqa: E402
from playground.store import Store, clear_caches  # noqa: E402
from playground.views.compare import render_compare  # noqa: E402
from playground.views.embeddings import render_embeddings  # noqa: E402
from playground.views.search import render_grid, render_query_panel, render_results  # noqa: E402


def timed(timings: dict[str, list[float]], name: str, function, *args):
    start = time.perf_counter()
    result = function(*args)
    to_json_plotly(result.to_dict() if hasattr(result, "to_dict") else result)  # as Dash does
    timings[name].append((time.perf_counter() - start) * 1000)
    return result


def switch(store: Store, previous: dict, trigger: str, controls: dict, timings: dict[str, list[float]]) -> dict:
    """One user switch: the controller, then every callback of the search and embeddings views."""
    sel = timed(timings, "controller", lambda: update_selection(store, trigger, "/", "", controls, None, previous))
    timed(timings, "controller", control_options, store, sel)
    timed(timings, "search: query + scores", render_query_panel, store, sel)
    timed(timings, "search: results", render_results, store, sel)
    timed(timings, "search: grid", render_grid, store, sel, None, None)
    timed(timings, "embeddings", render_embeddings, store, sel)
    return sel.to_dict()


def report(title: str, timings: dict[str, list[float]]) -> None:
    print(f"\n{title}")
    print(f"{'step':28s} {'n':>5s} {'median ms':>10s} {'p95 ms':>8s} {'max ms':>8s}")
    for name, values in timings.items():
        values = sorted(values)
        p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
        print(f"{name:28s} {len(values):5d} {statistics.median(values):10.2f} {p95:8.2f} {values[-1]:8.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", default=os.environ.get("SISP_ARTIFACTS", "artifacts"))
    parser.add_argument("--dataset", default=DEFAULT_DATASET)
    parser.add_argument("--repeat", type=int, default=20, help="warm passes over every switch")
    args = parser.parse_args(argv)

    store = Store(args.artifacts)
    if args.dataset not in store.datasets():
        print(f"{args.dataset} is not in {args.artifacts}; run `playground` or `precompute` first.", file=sys.stderr)
        return 1
    clear_caches()
    sel = resolve_selection(store, {"dataset": args.dataset, "query": 7}).to_dict()
    models = store.models(args.dataset)
    metrics = store.all_metrics(args.dataset)
    switches = []  # every model, each of its layers, each metric: as a user clicking through them
    for model in models:
        switches.append(("model-select", {"model": model}))
        for layer, metric in itertools.product(store.layers(args.dataset, model), metrics):
            switches.append(("layer-select", {"layer": layer}))
            switches.append(("metric-select", {"metric": metric}))
    print(
        f"{args.dataset}: {store.n_images(args.dataset)} images, {len(models)} models, {len(metrics)} metrics, "
        f"{len(switches)} switches per pass"
    )

    cold: dict[str, list[float]] = defaultdict(list)
    for trigger, controls in switches:
        sel = switch(store, sel, trigger, controls, cold)
    warm: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.repeat):
        for trigger, controls in switches:
            sel = switch(store, sel, trigger, controls, warm)
    compare: dict[str, list[float]] = defaultdict(list)
    current = resolve_selection(store, {"dataset": args.dataset, "view": "compare"})
    for _ in range(max(3, args.repeat // 4)):
        for metric in metrics:
            current.metric = metric
            timed(compare, "compare (whole view)", lambda c=current: tuple(render_compare(store, c, "rwp@15").values()))

    report("first pass (cold: files read from disk)", cold)
    report(f"{args.repeat} warm passes (cached arrays)", warm)
    report("compare view, per metric switch", compare)
    return 0


if __name__ == "__main__":
    sys.exit(main())
