"""The layer stage: UMAP, rankings, scores and feature duplicates of each layer of a model, and their scheduling.

After a model's features are written, :func:`compute_layers` gives each layer a UMAP layout, a ranking and scores
per metric, and a feature-duplicate table (``precompute.feature_duplicates``), each redone when its parameters
changed, its file is missing or damaged (checked, and named in the log), or the features are new; it returns the
model's layer records.

Scheduling: the rankings use every CPU (BLAS, or the compiled scans of ``precompute.kernels``); a seeded UMAP runs
on one thread. So :class:`LayerStage` runs the UMAP layouts of a model's layers in one or two worker processes
(:class:`UmapWorker`; two where both fit the run's memory budget, ``--memory-mb``, beside the rankings) while this
process ranks, on a collection large enough to pay for the workers' start (:func:`use_worker`); otherwise each
layout is computed here, in turn, as before. The workers' layouts are collected when the run asks
(``RunContext.defer``): after its other models and its label checks, which run meanwhile. Results do not depend on
the choice: the same function, inputs and seed give the same layout in either process, and rankings are computed
here in both cases.

Neighbours of a layout: from ``UMAP_ALL_PAIRS_MAX`` (4096) images on, UMAP would search each point's neighbours
itself (an RP forest and NN-descent: about 35 s of numba compiling in a fresh process, 1-2 s a layout after). When
the run ranks euclidean, each layer's layout takes them from the layer's stored euclidean ranking instead (exact, or
FAISS' re-ranked one above ``--exact-max``; ``precompute.embed.knn_from_ranking``), so it is queued only once that
ranking is on disk (:meth:`LayerStage.neighbors_ready`): the worker lays out one layer while this process ranks the
next. Below the threshold, or without euclidean among the metrics, the layouts are queued up front as before and
UMAP finds the neighbours itself. The index records the stored-ranking ones (``UmapParams.neighbors``).

Progress: one bar per stage and model (``tqdm``, as extraction has): rankings count query rows (updated every
1,024 rows, so a bar moves every few seconds even on 20,000 images), scores and duplicates count layers x
metrics and layers, UMAP counts layouts; while the rankings wait for a layout from the worker, the UMAP bar is
redrawn every :data:`WAIT_REFRESH_SECONDS` with the layer it waits for and the time so far, so that no wait goes
silent. ``--no-progress`` hides them; elsewhere ``tqdm.auto`` decides how to
draw them, as for extraction. Seconds per stage go to the run's clock (``precompute.run_summary.StageClock``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from precompute import ann
from precompute import artifacts as art
from precompute.feature_duplicates import FEATURE_DUPLICATE_RATIO, FEATURE_DUPLICATE_SIGMAS, find_feature_duplicates
from precompute.run_summary import StageClock
from precompute.schema import ArtifactIndex, BootstrapParams, LayerDuplicates, LayerEntry, MetricEntry, UmapParams
from precompute.scores import cutoffs_within
from precompute.similarity import ALL_PAIRS_MIN_ROWS, rank_neighbors_exact_many, reused_scans
from precompute.stages.context import RunContext
from precompute.stages.dataset import summary_row
from precompute.staleness import (
    TIE_SCORING,
    feature_duplicates_are_current,
    metric_is_current,
    umap_is_current,
)
from precompute.stats import bootstrap_ci, bootstrap_params

# Bytes a UMAP layout needs per image beyond its features: the 15-neighbour graph (indices, distances, and the
# fuzzy simplicial set's COO arrays), NN-descent's heaps and the layout; measured at about 1.5 KB per image on
# Fashion-MNIST (10,000 images) and rounded up. Plus the worker's own interpreter, numba and UMAP modules.
_UMAP_BYTES_PER_IMAGE = 4096
_WORKER_BYTES = 600 * 2**20
# Below this many images a layout takes a second or two: less than starting the worker (importing UMAP and
# compiling its numba functions there, about 10 s on the 2-core development machine).
WORKER_MIN_IMAGES = 2000
# While waiting for the worker's layout, the UMAP bar is redrawn this often (issue #27: no stage silent for 10 s).
WAIT_REFRESH_SECONDS = 5.0


def use_worker(n_images: int, dims: list[int], budget_mb: int, chunk_rows: int = 1024) -> int:
    """How many worker processes lay out the model's layers: none (each layout here, in turn) unless there are two
    or more layouts, at least ``WORKER_MIN_IMAGES`` images, and a worker's layout fits ``budget_mb`` beside this
    process's rankings; two where two layouts fit beside them and this process may use two CPUs (a layout runs on
    one thread: with two workers the layouts use both cores whenever the rankings leave one free, and at the end of
    the run, when only layouts are left); else one.

    A worker holds one layer's features (float32) and UMAP's per-image arrays; a ranking holds one block of
    ``chunk_rows x n_images`` distances (float64 at most: minkowski) and its candidates' twin block, plus the
    ``n x n`` float32 all-pairs scan where :func:`all_pairs_bytes` allows one.
    """
    from precompute.kernels import default_threads

    umap_bytes = _WORKER_BYTES + n_images * (4 * max(dims, default=0) + _UMAP_BYTES_PER_IMAGE)
    rank_bytes = 2 * 8 * min(chunk_rows, n_images) * n_images
    if n_images >= ALL_PAIRS_MIN_ROWS and 4 * n_images**2 <= all_pairs_bytes(budget_mb):
        rank_bytes += 4 * n_images**2  # the all-pairs scan (rank_neighbors_exact_many)
    if len(dims) < 2 or n_images < WORKER_MIN_IMAGES:
        return 0
    for processes in (2, 1):
        if processes <= default_threads() and processes * umap_bytes + rank_bytes <= budget_mb * 2**20:
            return processes
    return 0


def all_pairs_bytes(budget_mb: int) -> int:
    """The largest all-pairs scan the rankings may hold (``n x n`` float32): half the run's memory budget."""
    return budget_mb * 2**20 // 2


# UmapParams.neighbors of a layout whose neighbours came from the layer's stored euclidean ranking
NEIGHBORS_FROM_RANKING = "euclidean ranking"


def compute_umap_file(
    features_path: str, n_neighbors: int, min_dist: float, seed: int, neighbors_path: str | None = None
) -> tuple[np.ndarray, float, str | None]:
    """The UMAP layout of the features stored at ``features_path``, its wall seconds and where its neighbours came
    from (what the worker runs; see :func:`_layout`)."""
    from precompute import artifacts as art

    start = time.perf_counter()
    features = art.read_array(Path(features_path), mmap=True)
    coords, source = _layout(np.asarray(features), n_neighbors, min_dist, seed, neighbors_path)
    return coords, time.perf_counter() - start, source


def _layout(
    features: np.ndarray, n_neighbors: int, min_dist: float, seed: int, neighbors_path: str | Path | None
) -> tuple[np.ndarray, str | None]:
    """The layout of ``features``, its neighbours taken from the euclidean ranking at ``neighbors_path`` where UMAP
    would otherwise search them itself (``UMAP_ALL_PAIRS_MAX`` images or more) and the ranking holds enough of them;
    with ``NEIGHBORS_FROM_RANKING`` then, else None (UMAP's own search)."""
    from precompute import artifacts as art
    from precompute.embed import UMAP_ALL_PAIRS_MAX, compute_umap, knn_from_ranking

    knn = None
    if neighbors_path is not None and len(features) >= UMAP_ALL_PAIRS_MAX:
        knn = knn_from_ranking(*art.read_neighbors(Path(neighbors_path)), n_neighbors)
    coords = compute_umap(features, n_neighbors=n_neighbors, min_dist=min_dist, seed=seed, knn=knn)
    return coords, None if knn is None else NEIGHBORS_FROM_RANKING


class UmapWorker:
    """Worker processes computing UMAP layouts, started in the order they are submitted (``multiprocessing.Pool``;
    one or two processes: :func:`use_worker`).

    Started from the pipeline's fork server (``context``) so it does not import TensorFlow again; it dies with its
    parent. :meth:`close` terminates a layout in flight (an interrupted run) rather than wait for it.
    """

    def __init__(self, context: Any, initializer: Callable[[], None] | None = None, processes: int = 1) -> None:
        self._pool = context.Pool(processes, initializer=initializer)
        self._pending: list[Any] = []

    def submit(
        self, features_path: Path, n_neighbors: int, min_dist: float, seed: int, neighbors_path: Path | None = None
    ) -> Any:
        knn = None if neighbors_path is None else str(neighbors_path)
        result = self._pool.apply_async(compute_umap_file, (str(features_path), n_neighbors, min_dist, seed, knn))
        self._pending.append(result)
        return result

    def submit_call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Queue any other picklable job behind the layouts submitted so far (the run's early label checks)."""
        result = self._pool.apply_async(function, args)
        self._pending.append(result)
        return result

    def busy(self) -> bool:
        """Whether a job submitted is still waiting or running."""
        return not all(result.ready() for result in self._pending)

    def close(self) -> None:
        if not self.busy():
            self._pool.close()
        else:
            self._pool.terminate()
        self._pool.join()


class LayerStage:
    """Progress bars, clock and UMAP scheduling of one model's layer stage.

    ``umap_for(layer)`` returns the layer's layout, from the worker when :meth:`submit_umaps` (or, for layouts
    waiting for their neighbours, :meth:`neighbors_ready`) sent it there (collected at the end of the run, so the
    rankings never wait for a layout: :func:`layer_stage`), else computed here; ``rank_progress`` is the
    callback the rankings call with each block of rows done. ``neighbors[layer]`` says where the neighbours of a
    layout umap_for returned came from (``NEIGHBORS_FROM_RANKING``, or None: UMAP's own search).
    """

    def __init__(
        self,
        key: str,
        n_images: int,
        n_layers: int,
        metrics: list[str],
        clock: StageClock,
        progress: bool,
        worker: UmapWorker | None = None,
    ) -> None:
        from tqdm.auto import tqdm

        self.key, self.clock, self.worker = key, clock, worker
        self._jobs: dict[str, Any] = {}
        self._params: dict[str, tuple] = {}
        self._knn: dict[str, Path] = {}  # the euclidean ranking of a layout waiting for it, once on disk
        self._waiting: set[str] = set()  # layouts queued only once their layer's euclidean ranking is on disk
        self.umap_layers: set[str] = set()  # the layers whose layout is to be (re)computed
        self.neighbors: dict[str, str | None] = {}
        self.bars = {
            "rankings": tqdm(
                total=n_images * n_layers * len(metrics),
                desc=f"{key} rankings",
                unit="row",
                disable=not progress,
                unit_scale=True,
            ),
            "scores": tqdm(total=n_layers * len(metrics), desc=f"{key} scores", unit="ranking", disable=not progress),
            "umap": tqdm(total=n_layers, desc=f"{key} UMAP", unit="layer", disable=not progress),
            "duplicates": tqdm(total=n_layers, desc=f"{key} duplicates", unit="layer", disable=not progress),
        }

    def submit_umaps(
        self,
        layers: list[tuple[str, Path]],
        n_neighbors: int,
        min_dist: float,
        seed: int,
        wait_for_neighbors: bool = False,
    ) -> None:
        """Queue the layouts of ``(layer, features path)`` in the worker (in order); without one, remember them.
        ``wait_for_neighbors``: queue each only when :meth:`neighbors_ready` gives its layer's euclidean ranking."""
        for layer, path in layers:
            self.umap_layers.add(layer)
            self._params[layer] = (path, n_neighbors, min_dist, seed)
            if wait_for_neighbors:
                self._waiting.add(layer)
            elif self.worker is not None:
                self._jobs[layer] = self.worker.submit(path, n_neighbors, min_dist, seed)

    def neighbors_ready(self, layer: str, neighbors_path: Path) -> None:
        """The layer's euclidean ranking is on disk at ``neighbors_path``: its layout, if waiting, takes its
        neighbours from there (queued in the worker now, or computed here by :meth:`umap_for`)."""
        if layer not in self._waiting:
            return
        self._waiting.discard(layer)
        self._knn[layer] = neighbors_path
        if self.worker is not None:
            self._jobs[layer] = self.worker.submit(*self._params[layer], neighbors_path)

    def umap_for(
        self, layer: str, features: np.ndarray | None, n_neighbors: int, min_dist: float, seed: int
    ) -> np.ndarray:
        """The layer's layout: the worker's result (waited for), else computed here now (from ``features``, or
        from the features file :meth:`submit_umaps` was given)."""
        job = self._jobs.pop(layer, None)
        knn = self._knn.get(layer)
        if job is not None and self._params[layer][1:] == (n_neighbors, min_dist, seed):
            coords, seconds, source = self._wait(layer, job)
        elif features is None:
            path = str(self._params[layer][0])
            coords, seconds, source = compute_umap_file(
                path, n_neighbors, min_dist, seed, None if knn is None else str(knn)
            )
        else:
            coords, seconds, source = _umap_here(features, n_neighbors, min_dist, seed, knn)
        self.neighbors[layer] = source
        self.clock.add("umap", seconds)
        self.bars["umap"].set_postfix_str("", refresh=False)
        self.bars["umap"].update()
        return coords

    def _wait(self, layer: str, job: Any) -> tuple[np.ndarray, float, str | None]:
        """The worker's result for ``layer``, redrawing the UMAP bar while it is not ready (elapsed time moves)."""
        import multiprocessing

        bar, start = self.bars["umap"], time.perf_counter()
        while True:
            try:
                return job.get(timeout=WAIT_REFRESH_SECONDS)
            except multiprocessing.TimeoutError:
                bar.set_postfix_str(f"waiting for {layer}: {time.perf_counter() - start:.0f} s", refresh=True)

    def rank_progress(self, rows: int) -> None:
        self.bars["rankings"].update(rows)

    def skip(self, stage: str, count: int = 1) -> None:
        """Count work found current (nothing to redo) as done, so that the bars end full."""
        self.bars[stage].update(count)

    def blas_beside_workers(self) -> Any:
        """A context for a layer's rankings: BLAS on one thread while the workers have layouts (or label checks) to
        run, since they then hold the other core and BLAS threads waiting for a core spin (10,000 images: 32
        core-seconds, 16 s of the run; the same results: section 19, round 4); else BLAS as configured."""
        if self.worker is not None and self.worker.busy():
            return threadpool_limits(limits=1, user_api="blas")
        return contextlib.nullcontext()

    def close(self, keep: str | None = None) -> None:
        """Close the progress bars (all but ``keep``'s, whose work goes on)."""
        for name, bar in self.bars.items():
            if name != keep:
                bar.close()


def _umap_here(
    features: np.ndarray, n_neighbors: int, min_dist: float, seed: int, neighbors_path: Path | None = None
) -> tuple[np.ndarray, float, str | None]:
    start = time.perf_counter()
    coords, source = _layout(np.asarray(features), n_neighbors, min_dist, seed, neighbors_path)
    return coords, time.perf_counter() - start, source


# -------------------------------------------------------------------------------------------- the products


def compute_layers(
    run: RunContext, key: str, layers: list[str], todo: list[str], manifest: pd.DataFrame, labeled: bool
) -> dict[str, LayerEntry]:
    """The products of each of ``key``'s ``layers``, in order; ``todo`` are the layers whose features are new
    (everything derived from them is redone, whatever the disk holds)."""
    with layer_stage(run, key, layers, todo, len(manifest)) as stage:
        for order, name in enumerate(layers):
            layer_products(run, key, name, order, manifest, labeled, refresh=name in todo, stage=stage)
    return art.read_index(run.root).datasets[run.dataset].models[key].layers


@contextlib.contextmanager
def layer_stage(run: RunContext, key: str, layers: list[str], todo: list[str], n_images: int) -> Iterator[LayerStage]:
    """The model's layer stage: progress bars, and its UMAP layouts queued in the run's worker process when they fit
    --memory-mb beside the rankings."""
    cfg, root, ds = run.config, run.root, run.dataset
    entry = art.read_index(root).datasets[ds].models[key]
    umaps = [
        (name, art.features_path(root, ds, key, name))
        for name in layers
        if _umap_needed(run, entry.layers[name], art.umap_path(root, ds, key, name), n_images, refresh=name in todo)
    ]
    dims = [entry.layers[name].dim for name, _ in umaps]
    processes = use_worker(n_images, dims, cfg.activation_budget_mb)
    worker = run.umap_worker(processes) if processes else None
    if worker is not None:
        run.workers_ready()  # the run may queue its label checks first
    stage = LayerStage(key, n_images, len(layers), list(cfg.metrics), run.clock, cfg.progress, worker)
    stage.submit_umaps(umaps, cfg.umap_neighbors, cfg.umap_min_dist, cfg.seed, _neighbors_from_ranking(cfg, n_images))
    deferred = False
    try:
        with reused_scans():  # the layers' all-pairs scans share their n x n matrices
            yield stage
        if worker is not None:
            # The rankings are done. The worker's layouts are collected (in order) when the run asks, after its
            # other models and the label checks (RunContext.defer): those run while the worker lays out these.
            def collect() -> None:
                try:
                    for name, _ in umaps:
                        _write_umap(run, key, name, stage)
                finally:
                    stage.close()

            stage.close(keep="umap")
            run.defer(collect)
            deferred = True
    finally:
        if not deferred:
            stage.close()


def _neighbors_from_ranking(cfg: Any, n_images: int) -> bool:
    """Whether the layouts wait for their layer's euclidean ranking and take their neighbours from it: UMAP would
    search them itself (``UMAP_ALL_PAIRS_MAX`` images or more), the run ranks euclidean, deep enough."""
    from precompute.embed import UMAP_ALL_PAIRS_MAX

    k = min(cfg.umap_neighbors, n_images - 1)
    return n_images >= UMAP_ALL_PAIRS_MAX and "euclidean" in cfg.metrics and min(cfg.top_n, n_images - 1) >= k - 1


def _write_umap(run: RunContext, key: str, layer: str, stage: LayerStage) -> None:
    """Write a layout the worker computed and record it in the index."""
    cfg, root, ds = run.config, run.root, run.dataset
    upath = art.umap_path(root, ds, key, layer)
    art.write_array(upath, stage.umap_for(layer, None, cfg.umap_neighbors, cfg.umap_min_dist, cfg.seed))
    params = umap_params(cfg, stage.neighbors.get(layer))

    def change(index: ArtifactIndex) -> None:
        target = index.datasets[ds].models[key].layers[layer]
        target.umap, target.umap_params = art.relative(root, upath), params

    art.update_index(root, change)


def _umap_needed(run: RunContext, entry: LayerEntry, upath: Path, n_images: int, refresh: bool) -> bool:
    return (
        run.config.force
        or refresh
        or not umap_is_current(entry, umap_params(run.config))
        or run.broken(upath, art.check_matrix(upath, n_images, 2))
    )


def umap_params(cfg: Any, neighbors: str | None = None) -> UmapParams:
    """The UMAP parameters of a run's configuration (``precompute.pipeline.RunConfig``); ``neighbors``: where a
    layout's neighbours came from, None for UMAP's own search (not a parameter: ``umap_is_current`` ignores it)."""
    return UmapParams(
        n_neighbors=cfg.umap_neighbors,
        min_dist=cfg.umap_min_dist,
        metric="euclidean",
        seed=cfg.seed,
        neighbors=neighbors,
    )


def layer_products(
    run: RunContext,
    key: str,
    layer: str,
    order: int,
    manifest: pd.DataFrame,
    labeled: bool,
    refresh: bool = False,
    stage: LayerStage | None = None,
) -> LayerEntry:
    """UMAP, rankings, scores and feature duplicates of one layer: each redone when its parameters changed,
    its file is missing or damaged (checked, and named in the log), or ``refresh`` (new features).
    ``stage`` (see :func:`layer_stage`) knows which layouts to compute, and shows and times the work."""
    from precompute.scores import compute_query_scores, summarize_scores

    cfg, root, ds = run.config, run.root, run.dataset
    redo = cfg.force or refresh
    features = art.read_array(art.features_path(root, ds, key, layer), mmap=True)
    n_images = len(features)
    if stage is None:  # called on its own: the stage of this one layer
        with layer_stage(run, key, [layer], [layer] if redo else [], n_images) as own:
            return layer_products(run, key, layer, order, manifest, labeled, refresh, own)
    entry = art.read_index(root).datasets[ds].models[key].layers[layer]
    upath = art.umap_path(root, ds, key, layer)
    new_umap = None
    metrics = dict(entry.metrics)
    labels = manifest["label"].to_numpy() if labeled else None
    groups = pd.factorize(labels, sort=True)[0] if labeled else None
    reranked: set[str] = set()
    # Above --exact-max a metric's ranking comes from a FAISS index, but for chebyshev where exact is faster.
    indexed = {m for m in cfg.metrics if ann.uses_index(m, n_images, features.shape[1], cfg.exact_search_max)}
    searches = {m: f"faiss-{cfg.ann_kind}" if m in indexed else "exact" for m in cfg.metrics}
    ann_params = ann.check_params(cfg.ann_kind, cfg.ann_params) if indexed else None
    bootstrap = BootstrapParams.from_dict(bootstrap_params(seed=cfg.seed))
    depth = min(cfg.top_n, n_images - 1)
    todo = []
    for metric in cfg.metrics:
        npath = art.neighbors_path(root, ds, key, layer, metric)
        spath = art.scores_path(root, ds, key, layer, metric)
        if (
            not redo
            and metric_is_current(
                metrics.get(metric),
                depth=depth,
                search=searches[metric],
                labeled=labeled,
                bootstrap=bootstrap,
                ann_params=ann_params if metric in indexed else None,
            )
            and (metric not in indexed or art.faiss_index_path(root, ds, key, layer, metric).exists())
            and not run.broken(npath, art.check_neighbors(npath, n_images, depth))
            and not (labeled and run.broken(spath, art.check_table(spath, n_images)))
        ):
            stage.skip("rankings", n_images)
            stage.skip("scores")
            if metric == "euclidean":
                stage.neighbors_ready(layer, npath)
        else:
            todo.append(metric)
    # The exact rankings of every metric to redo at once: cosine and euclidean share their scan, and each pair of
    # rows is scanned once (similarity.rank_neighbors_exact_many); each metric's seconds, a shared scan split evenly.
    exact, exact_seconds = {}, {}
    if any(metric not in indexed for metric in todo):
        with stage.blas_beside_workers():
            exact = rank_neighbors_exact_many(
                features,
                [metric for metric in todo if metric not in indexed],
                cfg.top_n,
                groups=groups,
                progress=stage.rank_progress,
                max_matrix_bytes=all_pairs_bytes(cfg.activation_budget_mb),
                seconds=exact_seconds,
            )
    for metric in todo:
        npath = art.neighbors_path(root, ds, key, layer, metric)
        spath = art.scores_path(root, ds, key, layer, metric)
        ipath = art.faiss_index_path(root, ds, key, layer, metric)
        t0 = time.perf_counter()
        index = None
        if metric in indexed:
            index = ann.build_index(features, metric, cfg.ann_kind, cfg.ann_params, seed=cfg.seed)
            ann.write_index(ipath, index)
            ranking = ann.rank_neighbors(
                features, metric, cfg.top_n, index, groups=groups, progress=stage.rank_progress
            )
            rank_seconds = time.perf_counter() - t0
        else:
            ranking, rank_seconds = exact[metric], exact_seconds[metric]
            ipath.unlink(missing_ok=True)  # a stale index from a bigger run must not be mistaken for this one
        run.clock.add("rankings", rank_seconds, metric)
        t0 = time.perf_counter()
        art.write_neighbors(npath, ranking.indices, ranking.distances, ranking.tied_beyond, ranking.tied_beyond_same)
        if metric == "euclidean":
            stage.neighbors_ready(layer, npath)
        result = MetricEntry(
            neighbors=art.relative(root, npath),
            top_n=int(ranking.indices.shape[1]),
            search=searches[metric],
            rank_seconds=round(rank_seconds, 3),
            ties=TIE_SCORING,
            n_tied_at_cut=int((ranking.tied_beyond > 0).sum()),
        )
        if index is not None:
            result.index, result.ann_params = art.relative(root, ipath), ann_params
            result.index_params, result.build_seconds = dict(index.params), round(index.build_seconds, 3)
        if labeled:
            scores = compute_query_scores(
                ranking.indices,
                labels,
                ks=cutoffs_within(ranking.indices.shape[1]),
                distances=ranking.distances,
                tied_beyond=ranking.tied_beyond,
                tied_beyond_same=ranking.tied_beyond_same,
            )
            art.write_table(spath, scores)
            columns = [c for c in scores.columns if c != "label"]
            intervals = bootstrap_ci(scores[columns].to_numpy(dtype=np.float64), seed=cfg.seed)
            result.scores, result.summary = art.relative(root, spath), summary_row(summarize_scores(scores))
            result.summary_ci = {c: _rounded_pair(intervals[:, i]) for i, c in enumerate(columns)}
            result.bootstrap = bootstrap
        metrics[metric] = result
        reranked.add(metric)
        run.clock.add("scores", time.perf_counter() - t0)  # and the rankings' file
        stage.skip("scores")
    if layer not in stage.umap_layers:
        stage.skip("umap")
    elif stage.worker is None:  # else the worker lays it out meanwhile, written by _write_umap after the rankings
        art.write_array(upath, stage.umap_for(layer, features, cfg.umap_neighbors, cfg.umap_min_dist, cfg.seed))
        new_umap = art.relative(root, upath)
    with run.clock.time("duplicates"):
        duplicates = _feature_duplicates(run, key, layer, manifest, labeled, metrics, reranked, entry.duplicates)
    stage.skip("duplicates")
    updated: list[LayerEntry] = []

    def change(index: ArtifactIndex) -> None:
        target = index.datasets[ds].models[key].layers[layer]
        target.order = order
        if new_umap is not None:
            target.umap, target.umap_params = new_umap, umap_params(cfg, stage.neighbors.get(layer))
        target.metrics = metrics
        if duplicates is not None:
            target.duplicates = duplicates
        updated.append(target)

    art.update_index(root, change)
    return updated[-1]


def _feature_duplicates(
    run: RunContext,
    key: str,
    layer: str,
    manifest: pd.DataFrame,
    labeled: bool,
    metrics: dict[str, MetricEntry],
    reranked: set[str],
    done: LayerDuplicates | None,
) -> LayerDuplicates | None:
    """The layer's feature near-duplicates (``precompute.feature_duplicates``) under its cosine rankings (else its
    first metric's); None when the stored ones are current."""
    root, ds = run.root, run.dataset
    metric = "cosine" if "cosine" in metrics else next(iter(metrics), None)
    if metric is None:
        return None
    path = art.layer_duplicates_path(root, ds, key, layer)
    fresh = feature_duplicates_are_current(
        done, metric, FEATURE_DUPLICATE_RATIO, FEATURE_DUPLICATE_SIGMAS
    ) and not run.broken(path, art.check_table(path))
    if fresh and metric not in reranked and not run.config.force:
        return None
    indices, distances = art.read_neighbors(art.neighbors_path(root, ds, key, layer, metric))
    labels = manifest["label"].astype(str).to_numpy() if labeled else None
    found = find_feature_duplicates(indices, distances, labels)
    pairs = found.pairs
    art.write_table(path, pairs)
    return LayerDuplicates(
        metric=metric,
        ratio=FEATURE_DUPLICATE_RATIO,
        sigmas=FEATURE_DUPLICATE_SIGMAS,
        path=art.relative(root, path),
        threshold=found.threshold,
        typical_distance=found.typical_distance,
        outlier_bound=found.outlier_bound,
        n_pairs=len(pairs),
        n_cross_class=int(pairs["cross_class"].sum()),
    )


def _rounded_pair(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), 5) for v in values]


__all__ = [
    "LayerStage",
    "UmapWorker",
    "compute_layers",
    "compute_umap_file",
    "layer_products",
    "layer_stage",
    "umap_params",
    "use_worker",
]
