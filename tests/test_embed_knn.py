"""UMAP layouts from the stored euclidean rankings (issue #27): UMAP's neighbour arrays built from a ranking, when a
layout takes them, and the same layout from the worker as in this process."""

from __future__ import annotations

import multiprocessing
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest

from precompute import artifacts as art
from precompute import embed
from precompute.embed import compute_umap, knn_from_ranking
from precompute.similarity import rank_neighbors_exact
from precompute.stages import layer as layer_stage

SMALL_THRESHOLD = 100  # stands for UMAP's 4096 so that a 300-point set takes the precomputed path


def _blobs(n: int = 300, dim: int = 8) -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=6.0, size=(3, dim))
    return (centres[np.arange(n) % 3] + rng.normal(size=(n, dim))).astype(np.float32)


def test_the_knn_arrays_put_each_point_first_then_its_ranking() -> None:
    indices = np.array([[1, 2, 3], [0, 2, 3], [3, 1, 0], [2, 1, 0]], dtype=np.int32)
    distances = np.array([[1, 2, 3], [1, 1.5, 2], [0.5, 1.5, 2], [0.5, 2, 3]], dtype=np.float32)
    knn_indices, knn_dists = knn_from_ranking(indices, distances, 3)
    assert knn_indices.dtype == np.int32 and knn_dists.dtype == np.float32
    assert knn_indices.tolist() == [[0, 1, 2], [1, 0, 2], [2, 3, 1], [3, 2, 1]]
    assert knn_dists.tolist() == [[0, 1, 2], [0, 1, 1.5], [0, 0.5, 1.5], [0, 0.5, 2]]
    # n_neighbors is clipped to n - 1, as compute_umap clips it: the whole ranking then
    assert np.array_equal(knn_from_ranking(indices, distances, 15)[0], knn_indices)


def test_a_ranking_too_short_or_with_empty_slots_leaves_the_search_to_umap() -> None:
    indices = np.tile(np.arange(1, 6, dtype=np.int32), (40, 1))
    distances = np.tile(np.arange(1, 6, dtype=np.float32), (40, 1))
    assert knn_from_ranking(indices, distances, 6) is not None  # itself and 5 results
    assert knn_from_ranking(indices, distances, 7) is None  # 6 results needed, 5 stored
    holed_ids, holed_dist = indices.copy(), distances.copy()
    holed_ids[7, 4], holed_dist[7, 4] = -1, np.inf  # an approximate search's empty slot
    assert knn_from_ranking(holed_ids, holed_dist, 6) is None
    assert knn_from_ranking(holed_ids, holed_dist, 5) is not None  # the hole lies beyond the 4 results used


class _FakeUMAP:
    """Stands for umap.UMAP (importing umap takes 10 s): records its keyword arguments, warns as UMAP does when given
    neighbours without an NNDescent index, and returns a layout of zeros."""

    calls: list[dict] = []

    def __init__(self, **kwargs) -> None:
        self.calls.append(kwargs)

    def fit_transform(self, features: np.ndarray) -> np.ndarray:
        if "precomputed_knn" in self.calls[-1]:
            warnings.warn(
                "precomputed_knn[2] (knn_search_index) is not an NNDescent object: transforming new data", stacklevel=2
            )
        return np.zeros((len(features), 2))


def test_the_stored_neighbours_go_to_umap_only_where_it_would_search_them(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=_FakeUMAP))
    monkeypatch.setattr(_FakeUMAP, "calls", [])
    features = _blobs()
    knn = knn_from_ranking(*rank_neighbors_exact(features, "euclidean", 20), 15)

    compute_umap(features, seed=0, knn=knn)  # below UMAP's 4096 images: UMAP compares all pairs itself
    assert "precomputed_knn" not in _FakeUMAP.calls[-1]

    monkeypatch.setattr(embed, "UMAP_ALL_PAIRS_MAX", SMALL_THRESHOLD)
    compute_umap(features, seed=0)  # no ranking: UMAP's own search
    assert "precomputed_knn" not in _FakeUMAP.calls[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # UMAP's warning about the missing NNDescent index is expected, not shown
        layout = compute_umap(features, seed=0, knn=knn)
    assert layout.dtype == np.float32 and layout.shape == (300, 2)
    call = _FakeUMAP.calls[-1]
    given = call["precomputed_knn"]
    assert np.array_equal(given[0], knn[0]) and np.array_equal(given[1], knn[1]) and given[2] is None
    assert given[0] is not knn[0]  # a copy: UMAP marks disconnected neighbours in place
    assert call["n_neighbors"] == 15 and call["random_state"] == 0 and call["metric"] == "euclidean"
    with pytest.raises(ValueError, match=r"knn must be two arrays of shape \(300, 15\)"):
        compute_umap(features, seed=0, knn=(knn[0][:, :10], knn[1][:, :10]))


def test_a_layout_runs_blas_on_one_thread(monkeypatch) -> None:
    """The spectral initialisation's eigensolver calls BLAS: on one thread its result does not depend on the cores,
    and a layout beside other work does not spin BLAS threads (section 19, round 4)."""
    from threadpoolctl import threadpool_info

    seen: list[list[int]] = []

    class _Recording(_FakeUMAP):
        def fit_transform(self, features: np.ndarray) -> np.ndarray:
            seen.append([pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"])
            return super().fit_transform(features)

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=_Recording))
    compute_umap(_blobs(), seed=0)
    assert seen and seen[0] and set(seen[0]) == {1}


def test_the_stage_queues_a_layout_once_its_euclidean_ranking_is_on_disk() -> None:
    """With neighbours from the rankings, a layout goes to the worker only when neighbors_ready gives its ranking;
    without, all go up front as before. Which runs wait: 4096 images or more, euclidean ranked, deep enough."""
    from types import SimpleNamespace

    from precompute.run_summary import StageClock

    class Worker:
        def __init__(self) -> None:
            self.submitted: list[tuple] = []

        def submit(self, *args):
            self.submitted.append(args)
            return args

    worker = Worker()
    stage = layer_stage.LayerStage("m", 5000, 2, ["cosine", "euclidean"], StageClock(), progress=False, worker=worker)
    stage.submit_umaps([("a", Path("a.npy")), ("b", Path("b.npy"))], 15, 0.1, 0, wait_for_neighbors=True)
    assert worker.submitted == []
    stage.neighbors_ready("a", Path("a.npz"))
    stage.neighbors_ready("a", Path("a.npz"))  # once only
    stage.neighbors_ready("c", Path("c.npz"))  # a layer whose layout is current: nothing to queue
    assert worker.submitted == [(Path("a.npy"), 15, 0.1, 0, Path("a.npz"))]
    upfront = Worker()
    stage = layer_stage.LayerStage("m", 5000, 2, ["cosine"], StageClock(), progress=False, worker=upfront)
    stage.submit_umaps([("a", Path("a.npy")), ("b", Path("b.npy"))], 15, 0.1, 0)
    assert upfront.submitted == [(Path("a.npy"), 15, 0.1, 0), (Path("b.npy"), 15, 0.1, 0)]

    def cfg(metrics=("cosine", "euclidean"), top_n=50, umap_neighbors=15):
        return SimpleNamespace(metrics=metrics, top_n=top_n, umap_neighbors=umap_neighbors)

    assert layer_stage._neighbors_from_ranking(cfg(), 4096)
    assert not layer_stage._neighbors_from_ranking(cfg(), 4095)  # UMAP compares all pairs: as before
    assert not layer_stage._neighbors_from_ranking(cfg(metrics=("cosine",)), 10_000)
    assert layer_stage._neighbors_from_ranking(cfg(top_n=14), 10_000)  # itself and 14 results
    assert not layer_stage._neighbors_from_ranking(cfg(top_n=13), 10_000)


@pytest.mark.slow
def test_a_layout_from_the_ranking_is_deterministic_and_the_same_from_the_worker(tmp_path: Path, monkeypatch) -> None:
    """Real UMAP on the precomputed path (the threshold lowered to 100 images in this process and the worker): a
    finite layout that keeps the clusters apart, the same twice, and the same from the worker as from this process;
    both say their neighbours came from the ranking. (Slow: UMAP's import and compiling, ~20 s a process.)"""
    from precompute.run_summary import StageClock

    monkeypatch.setattr(embed, "UMAP_ALL_PAIRS_MAX", SMALL_THRESHOLD)
    features = _blobs()
    fpath, npath = tmp_path / "features.npy", tmp_path / "neighbors-euclidean.npz"
    art.write_array(fpath, features)
    ranking = rank_neighbors_exact(features, "euclidean", 20)
    art.write_neighbors(npath, ranking.indices, ranking.distances, ranking.tied_beyond, ranking.tied_beyond_same)

    here = layer_stage.LayerStage("m", 300, 1, ["euclidean"], StageClock(), progress=False)
    here.submit_umaps([("top", fpath)], 15, 0.1, 0, wait_for_neighbors=True)
    here.neighbors_ready("top", npath)
    coords_here = here.umap_for("top", features, 15, 0.1, 0)
    assert here.neighbors["top"] == layer_stage.NEIGHBORS_FROM_RANKING
    assert coords_here.shape == (300, 2) and np.isfinite(coords_here).all()
    knn = knn_from_ranking(ranking.indices, ranking.distances, 15)
    assert np.array_equal(compute_umap(features, seed=0, knn=knn), coords_here)  # deterministic
    assert not np.array_equal(compute_umap(features, seed=0), coords_here)  # not UMAP's own search
    near = np.argsort(((coords_here[:, None] - coords_here[None]) ** 2).sum(-1), axis=1)[:, 1:6]
    assert (near % 3 == (np.arange(300) % 3)[:, None]).mean() > 0.95  # the three clusters stay apart

    worker = layer_stage.UmapWorker(multiprocessing.get_context("forkserver"), _small_threshold)
    try:
        there = layer_stage.LayerStage("m", 300, 1, ["euclidean"], StageClock(), progress=False, worker=worker)
        there.submit_umaps([("top", fpath)], 15, 0.1, 0, wait_for_neighbors=True)
        there.neighbors_ready("top", npath)
        coords_there = there.umap_for("top", None, 15, 0.1, 0)
    finally:
        worker.close()
    assert there.neighbors["top"] == layer_stage.NEIGHBORS_FROM_RANKING
    assert np.array_equal(coords_here, coords_there)


def _small_threshold() -> None:  # the worker's initializer: the same threshold as the test process
    embed.UMAP_ALL_PAIRS_MAX = SMALL_THRESHOLD


def test_the_index_records_the_neighbours_without_making_older_layouts_stale() -> None:
    from precompute.schema import LayerEntry, UmapParams
    from precompute.staleness import umap_is_current

    today = UmapParams(n_neighbors=15, min_dist=0.1, metric="euclidean", seed=0)
    assert "neighbors" not in today.to_dict()  # UMAP's own search: the index is written as before
    ranked = UmapParams(n_neighbors=15, min_dist=0.1, metric="euclidean", seed=0, neighbors="euclidean ranking")
    assert UmapParams.from_dict(ranked.to_dict()) == ranked
    assert umap_is_current(LayerEntry(dim=8, umap_params=today), ranked)
    assert umap_is_current(LayerEntry(dim=8, umap_params=ranked), today)
    assert not umap_is_current(
        LayerEntry(dim=8, umap_params=today), UmapParams(n_neighbors=10, min_dist=0.1, metric="euclidean", seed=0)
    )
    assert not umap_is_current(LayerEntry(dim=8), today)


@pytest.mark.slow  # imports umap (and TensorFlow with it): about 9 s in a process that has not
def test_umaps_uncached_numba_functions_are_cached_on_disk() -> None:
    """Every function named in _UNCACHED_UMAP_JIT exists in the installed umap-learn and gets numba's disk cache
    (a renamed function would silently cost every new process its compile again)."""
    from numba.core.caching import NullCache

    from precompute.embed import _UNCACHED_UMAP_JIT, cache_umap_kernels

    done = cache_umap_kernels()
    assert len(done) == sum(len(names) for names in _UNCACHED_UMAP_JIT.values())
    import importlib

    for name in done:
        module, attr = name.rsplit(".", 1)
        assert not isinstance(getattr(importlib.import_module(module), attr)._cache, NullCache), name
