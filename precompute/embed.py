"""2-D UMAP layouts of feature matrices, for the map view of the playground.

``umap`` is imported inside :func:`compute_umap`, not at the top: importing it pulls in numba and
TensorFlow (for ParametricUMAP) and takes seconds, which callers that never embed should not pay.
"""

from __future__ import annotations

import warnings
from numbers import Real

import numpy as np

# Metrics offered for layouts: those of umap's own registry that work on dense features without extra
# parameters (minkowski's p, mahalanobis' matrix) or special data (strings, categories, lat/long).
UMAP_METRICS = ("euclidean", "cosine", "correlation", "manhattan", "chebyshev", "canberra", "braycurtis")
# UMAP's spectral initialisation fails on 2 or 3 points (scipy's eigh needs k < N); below this many
# images the layout is a PCA projection instead.
MIN_UMAP_IMAGES = 4
# Below this many points UMAP computes all pairwise distances itself (exact, and quick); from it on it searches
# the neighbours with an RP forest and NN-descent (pynndescent), unless given them (``knn``). The threshold is
# umap-learn's own (``X.shape[0] < 4096`` in umap_.py, 0.5.12), not a parameter of it.
UMAP_ALL_PAIRS_MAX = 4096


def compute_umap(
    features: np.ndarray,
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "euclidean",
    seed: int = 0,
    knn: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Lay out feature vectors in 2-D with UMAP, reproducibly.

    Parameters
    ----------
    features : array of numbers, shape (n_images, dim)
        One feature vector per image; every value must be finite once cast to float32.
    n_neighbors : int, default 15
        Size of the local neighbourhood UMAP preserves (>= 2). Clipped to ``n_images - 1`` for small sets.
    min_dist : float, default 0.1
        How tightly UMAP may pack points, between 0 and 1 (UMAP's ``spread``).
    metric : str, default "euclidean"
        Distance between feature vectors, one of ``UMAP_METRICS``. Passed to UMAP as is.
    seed : int, default 0 (the pipeline's `--seed` default)
        Random seed, 0 <= seed < 2**32. The same features and parameters with the same seed give the same
        layout on the same machine and library versions. A seeded UMAP runs on one thread, its BLAS calls too.
    knn : (indices, distances), optional
        The exact ``metric`` neighbours of every image in UMAP's convention (:func:`knn_from_ranking` builds them
        from a stored ranking): shape (n_images, k) with k the clipped ``n_neighbors``, each row the image itself
        at distance 0 and then its k - 1 nearest, best first. From ``UMAP_ALL_PAIRS_MAX`` (4096) images on, UMAP
        uses them instead of its own approximate search (an RP forest and NN-descent, half a minute of numba
        compiling in a fresh process); below, UMAP compares all pairs itself and ``knn`` is not used, so small
        layouts are the same with or without it.

    Returns
    -------
    numpy.ndarray, float32, shape (n_images, 2)
        Row ``i`` is the position of image ``i``. With fewer than ``MIN_UMAP_IMAGES`` (4) images UMAP
        cannot run: the layout is then the projection on the first two principal axes, which keeps all
        pairwise euclidean distances (2 or 3 points lie in a plane), with a zero column where the data
        have fewer than two dimensions of spread; 0 or 1 image gives zeros.

    Raises
    ------
    ValueError
        If ``features`` is not a 2-D numeric array with at least one column, if rows hold NaN or infinite
        values (the message gives how many), if a parameter is out of range or ``metric`` is unknown, or if
        ``knn`` does not have the shape (n_images, k).

    Examples
    --------
    >>> layout = compute_umap(np.eye(3, 5))  # three images: the PCA fallback
    >>> layout.shape, layout.dtype.name
    ((3, 2), 'float32')
    """
    features = _check_features(features)
    if not _is_int(n_neighbors) or n_neighbors < 2:
        raise ValueError(f"n_neighbors must be an integer >= 2, got {n_neighbors!r}.")
    if not isinstance(min_dist, Real) or not 0.0 <= min_dist <= 1.0:
        raise ValueError(f"min_dist must be a number between 0 and 1, got {min_dist!r}.")
    if metric not in UMAP_METRICS:
        raise ValueError(f"Unknown metric {metric!r}; valid metrics are {list(UMAP_METRICS)} (see UMAP_METRICS).")
    if not _is_int(seed) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer between 0 and 2**32 - 1, got {seed!r}.")

    if len(features) < MIN_UMAP_IMAGES:
        return _pca_2d(features)

    k = min(int(n_neighbors), len(features) - 1)
    extra = {}
    if knn is not None and len(features) >= UMAP_ALL_PAIRS_MAX:
        indices, distances = (np.ascontiguousarray(a) for a in knn)
        if indices.shape != (len(features), k) or distances.shape != indices.shape:
            raise ValueError(
                f"knn must be two arrays of shape ({len(features)}, {k}) (every image and its {k} neighbours, "
                f"itself first), got {indices.shape} and {distances.shape}."
            )
        # No NNDescent index (the third item): UMAP then cannot transform new points, which the layouts never do.
        extra["precomputed_knn"] = (indices.astype(np.int32, copy=True), distances.astype(np.float32, copy=True), None)

    import umap

    cache_umap_kernels()
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=k,
        min_dist=float(min_dist),
        metric=metric,
        random_state=int(seed),
        # A seeded UMAP runs on one thread whatever n_jobs says; asking for one up front is what keeps
        # umap from warning, on every call, that it overrode n_jobs because of random_state.
        n_jobs=1,
        **extra,
    )
    from threadpoolctl import threadpool_limits

    # BLAS on one thread as well (the spectral initialisation's eigensolver): its result then does not depend on how
    # many cores the machine has, and a layout beside other work does not spin BLAS threads against it (stem_conv of
    # 10,000 images beside two busy cores: 58 s on two BLAS threads, 18 s on one; 16 s alone).
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\] \(knn_search_index\) is not an NNDescent")
        return reducer.fit_transform(features).astype(np.float32, copy=False)


def knn_from_ranking(
    indices: np.ndarray, distances: np.ndarray, n_neighbors: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """UMAP's precomputed neighbours (``compute_umap(knn=...)``) from a stored ranking, or None if it cannot give them.

    Parameters
    ----------
    indices, distances : arrays (n_images, depth)
        A ranking as ``precompute.artifacts.read_neighbors`` returns it: every image's results best first,
        the image itself left out, -1 (at distance inf) in a slot an approximate search left empty.
    n_neighbors : int
        UMAP's ``n_neighbors``, clipped to ``n_images - 1`` as :func:`compute_umap` does.

    Returns
    -------
    (int32 array, float32 array), shape (n_images, k), or None
        Each row the image itself at distance 0, then its first k - 1 results. None when the ranking holds
        fewer than k - 1 results per image, or has an empty slot among them: UMAP then searches on its own.
    """
    indices, distances = np.asarray(indices), np.asarray(distances)
    n_images = len(indices)
    k = min(int(n_neighbors), n_images - 1)
    if k < 1 or indices.ndim != 2 or distances.shape != indices.shape or indices.shape[1] < k - 1:
        return None
    top_ids, top_dist = indices[:, : k - 1], distances[:, : k - 1]
    if (top_ids < 0).any() or not np.isfinite(top_dist).all():
        return None
    knn_indices = np.empty((n_images, k), dtype=np.int32)
    knn_dists = np.empty((n_images, k), dtype=np.float32)
    knn_indices[:, 0], knn_dists[:, 0] = np.arange(n_images, dtype=np.int32), 0.0
    knn_indices[:, 1:], knn_dists[:, 1:] = top_ids, top_dist
    return knn_indices, knn_dists


# umap-learn's numba functions that a 2-D euclidean layout compiles and that umap-learn does not ask numba to cache
# (0.5.12): about 12 s of compiling in every process that lays out (the main command, each UMAP worker, each test
# process). Asking numba to cache them (Dispatcher.enable_caching, what ``njit(cache=True)`` does) lets later
# processes load the same machine code from numba's on-disk cache: a first layout of 200 points in a new process
# took 11.96 s before and 0.29 s after (docs/benchmarks.md section 19). Same code, same layouts.
_UNCACHED_UMAP_JIT = {
    "umap.umap_": ("fast_knn_indices", "smooth_knn_dist", "compute_membership_strengths"),
    "umap.utils": ("fast_knn_indices", "tau_rand_int", "tau_rand"),
    "umap.layouts": ("_nb_optimize_layout_euclidean_single_epoch", "clip", "tau_rand_int"),
    "umap.distances": ("euclidean",),
}


_CACHED: set[str] = set()


def cache_umap_kernels() -> list[str]:
    """Turn on numba's on-disk cache for :data:`_UNCACHED_UMAP_JIT` (each function once per process); the names done
    so far. A name umap-learn no longer has, a function that is not a numba dispatcher, or a module that does not
    import (a stand-in ``umap`` in tests) is left alone."""
    import importlib

    for module_name, names in _UNCACHED_UMAP_JIT.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in names:
            function = getattr(module, name, None)
            key = f"{module_name}.{name}"
            if key not in _CACHED and callable(getattr(function, "enable_caching", None)):
                function.enable_caching()
                _CACHED.add(key)
    return sorted(_CACHED)


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_features(features: np.ndarray) -> np.ndarray:
    """Return ``features`` as a finite float32 (n, d) array, else raise ValueError."""
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[1] == 0 or not np.issubdtype(features.dtype, np.number):
        raise ValueError(
            f"features must be a 2-D numeric array (n_images, dim) with dim >= 1, got {features.dtype} with "
            f"shape {features.shape}."
        )
    # Check after the cast: a float64 value too large for float32 becomes inf there.
    features = features.astype(np.float32, copy=False)
    bad_rows = np.flatnonzero(~np.isfinite(features).all(axis=1))
    if bad_rows.size:
        raise ValueError(
            f"{bad_rows.size} of {len(features)} feature rows hold NaN or infinite values (first rows: "
            f"{bad_rows[:5].tolist()}); re-extract those images or drop them before the layout."
        )
    return features


def _pca_2d(features: np.ndarray) -> np.ndarray:
    """Project (n, d) features on their first two principal axes, zero-padded; float32 (n, 2)."""
    layout = np.zeros((len(features), 2), dtype=np.float32)
    if len(features) < 2:
        return layout
    centered = features.astype(np.float64) - features.mean(axis=0, dtype=np.float64)
    u, s, _ = np.linalg.svd(centered, full_matrices=False)
    scores = (u * s)[:, :2]
    # SVD signs are arbitrary; fix each axis so its largest coordinate is positive (sklearn's svd_flip).
    largest = scores[np.argmax(np.abs(scores), axis=0), np.arange(scores.shape[1])]
    scores = scores * np.where(largest < 0, -1.0, 1.0)
    layout[:, : scores.shape[1]] = scores
    return layout
