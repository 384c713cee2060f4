"""The layer stage's scheduling, progress and clock: what runs beside what, what is shown, how long each took.

After a model's features are written, each layer gets a UMAP layout, a ranking and scores per metric, and a
feature-duplicate table. The rankings use every CPU (BLAS, or the compiled scans of ``precompute.kernels``);
a seeded UMAP runs on one thread. So :class:`LayerStage` runs the UMAP layouts of a model's layers, one after the
other, in a worker process (:class:`UmapWorker`) while this process ranks: the two together keep both cores busy.
It does so only when both fit the run's memory budget (``--memory-mb``) on a collection large enough to pay for
the worker's start (:func:`use_worker`); otherwise each
layout is computed here, in turn, as before. Results do not depend on the choice: the same function, inputs and
seed give the same layout in either process, and rankings are computed here in both cases.

Progress: one bar per stage and model (``tqdm``, as extraction has): rankings count query rows (updated every
1,024 rows, so a bar moves every few seconds even on 20,000 images), scores and duplicates count layers x
metrics and layers, UMAP counts layouts. ``--no-progress`` hides them; elsewhere ``tqdm.auto`` decides how to
draw them, as for extraction.

:class:`StageClock` adds up the wall seconds of each stage (scan, extraction, rankings per metric, scores, UMAP,
duplicates) for ``report.json`` (``stage_seconds``) and the summary printed at the end of a run. UMAP seconds are
those of the layouts themselves (in the worker, beside the rankings, where one runs).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

STAGES = ("scan", "extraction", "rankings", "scores", "umap", "duplicates")
# Bytes a UMAP layout needs per image beyond its features: the 15-neighbour graph (indices, distances, and the
# fuzzy simplicial set's COO arrays), NN-descent's heaps and the layout; measured at about 1.5 KB per image on
# Fashion-MNIST (10,000 images) and rounded up. Plus the worker's own interpreter, numba and UMAP modules.
_UMAP_BYTES_PER_IMAGE = 4096
_WORKER_BYTES = 600 * 2**20
# Below this many images a layout takes a second or two: less than starting the worker (importing UMAP and
# compiling its numba functions there, about 10 s on the 2-core development machine).
WORKER_MIN_IMAGES = 2000


class StageClock:
    """Wall seconds per stage; rankings per metric. ``with clock.time("umap"): ...`` or ``clock.add(...)``."""

    def __init__(self) -> None:
        self.seconds: dict[str, Any] = {stage: 0.0 for stage in STAGES}
        self.seconds["rankings"] = {}

    def add(self, stage: str, seconds: float, metric: str | None = None) -> None:
        if stage not in STAGES:
            raise ValueError(f"Unknown stage {stage!r}; stages: {', '.join(STAGES)}.")
        if stage == "rankings":
            self.seconds[stage][metric] = self.seconds[stage].get(metric, 0.0) + seconds
        else:
            self.seconds[stage] += seconds

    @contextlib.contextmanager
    def time(self, stage: str, metric: str | None = None) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start, metric)

    def to_dict(self) -> dict[str, Any]:
        """Rounded to 0.1 s: ``{"scan": .., "extraction": .., "rankings": {metric: ..}, ...}``."""
        return {
            stage: ({m: round(s, 1) for m, s in value.items()} if isinstance(value, dict) else round(value, 1))
            for stage, value in self.seconds.items()
        }


def format_stage_seconds(seconds: dict[str, Any]) -> str:
    """One line for the run summary: ``scan 2 s, extraction 63 s, rankings 41 s (cosine 6, ...), ...``."""
    parts = []
    for stage in STAGES:
        value = seconds.get(stage)
        if isinstance(value, dict):
            total = sum(value.values())
            inner = ", ".join(f"{metric} {s:.0f}" for metric, s in value.items())
            parts.append(f"{stage} {total:.0f} s" + (f" ({inner})" if inner else ""))
        elif value is not None:
            parts.append(f"{stage} {value:.0f} s")
    return ", ".join(parts)


def use_worker(n_images: int, dims: list[int], budget_mb: int, chunk_rows: int = 1024) -> bool:
    """Whether to compute the layouts in a worker: two or more of them, at least ``WORKER_MIN_IMAGES`` images,
    and the worker's layout and this process's rankings fit ``budget_mb`` together.

    The worker holds one layer's features (float32) and UMAP's per-image arrays; a ranking holds one block of
    ``chunk_rows x n_images`` distances (float64 at most: minkowski) and its candidates' twin block.
    """
    umap_bytes = _WORKER_BYTES + n_images * (4 * max(dims, default=0) + _UMAP_BYTES_PER_IMAGE)
    rank_bytes = 2 * 8 * min(chunk_rows, n_images) * n_images
    return len(dims) > 1 and n_images >= WORKER_MIN_IMAGES and umap_bytes + rank_bytes <= budget_mb * 2**20


def compute_umap_file(features_path: str, n_neighbors: int, min_dist: float, seed: int) -> tuple[np.ndarray, float]:
    """The UMAP layout of the features stored at ``features_path`` and its wall seconds (what the worker runs)."""
    from precompute import artifacts as art
    from precompute.embed import compute_umap

    start = time.perf_counter()
    features = art.read_array(Path(features_path), mmap=True)
    coords = compute_umap(np.asarray(features), n_neighbors=n_neighbors, min_dist=min_dist, seed=seed)
    return coords, time.perf_counter() - start


class UmapWorker:
    """One worker process computing UMAP layouts in the order they are submitted (``multiprocessing.Pool(1)``).

    Started from the pipeline's fork server (``context``) so it does not import TensorFlow again; it dies with its
    parent. :meth:`close` terminates a layout in flight (an interrupted run) rather than wait for it.
    """

    def __init__(self, context: Any, initializer: Callable[[], None] | None = None) -> None:
        self._pool = context.Pool(1, initializer=initializer)
        self._pending: list[Any] = []

    def submit(self, features_path: Path, n_neighbors: int, min_dist: float, seed: int) -> Any:
        result = self._pool.apply_async(compute_umap_file, (str(features_path), n_neighbors, min_dist, seed))
        self._pending.append(result)
        return result

    def close(self) -> None:
        if all(result.ready() for result in self._pending):
            self._pool.close()
        else:
            self._pool.terminate()
        self._pool.join()


class LayerStage:
    """Progress bars, clock and UMAP scheduling of one model's layer stage.

    ``umap_for(layer)`` returns the layer's layout, from the worker when :meth:`submit_umaps` sent it there
    (the pipeline collects those after all the model's rankings, so the rankings never wait for a layout), else
    computed here; ``rank_progress`` is the callback the rankings call with each block of rows done.
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
        self.umap_layers: set[str] = set()  # the layers whose layout is to be (re)computed
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

    def submit_umaps(self, layers: list[tuple[str, Path]], n_neighbors: int, min_dist: float, seed: int) -> None:
        """Queue the layouts of ``(layer, features path)`` in the worker (in order); without one, remember them."""
        for layer, path in layers:
            self.umap_layers.add(layer)
            self._params[layer] = (path, n_neighbors, min_dist, seed)
            if self.worker is not None:
                self._jobs[layer] = self.worker.submit(path, n_neighbors, min_dist, seed)

    def umap_for(
        self, layer: str, features: np.ndarray | None, n_neighbors: int, min_dist: float, seed: int
    ) -> np.ndarray:
        """The layer's layout: the worker's result (waited for), else computed here now (from ``features``, or
        from the features file :meth:`submit_umaps` was given)."""
        job = self._jobs.pop(layer, None)
        if job is not None and self._params[layer][1:] == (n_neighbors, min_dist, seed):
            coords, seconds = job.get()
        elif features is None:
            coords, seconds = compute_umap_file(str(self._params[layer][0]), n_neighbors, min_dist, seed)
        else:
            coords, seconds = _umap_here(features, n_neighbors, min_dist, seed)
        self.clock.add("umap", seconds)
        self.bars["umap"].update()
        return coords

    def rank_progress(self, rows: int) -> None:
        self.bars["rankings"].update(rows)

    def skip(self, stage: str, count: int = 1) -> None:
        """Count work found current (nothing to redo) as done, so that the bars end full."""
        self.bars[stage].update(count)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def _umap_here(features: np.ndarray, n_neighbors: int, min_dist: float, seed: int) -> tuple[np.ndarray, float]:
    from precompute.embed import compute_umap

    start = time.perf_counter()
    coords = compute_umap(np.asarray(features), n_neighbors=n_neighbors, min_dist=min_dist, seed=seed)
    return coords, time.perf_counter() - start


__all__ = [
    "STAGES",
    "LayerStage",
    "StageClock",
    "UmapWorker",
    "compute_umap_file",
    "use_worker",
    "format_stage_seconds",
]
