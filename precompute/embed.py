"""2-D UMAP layouts of feature matrices, for the map view of the playground.

``umap`` is imported inside :func:`compute_umap`, not at the top: importing it pulls in numba and
TensorFlow (for ParametricUMAP) and takes seconds, which callers that never embed should not pay.
"""

from __future__ import annotations

from numbers import Real

import numpy as np

# Metrics offered for layouts: those of umap's own registry that work on dense features without extra
# parameters (minkowski's p, mahalanobis' matrix) or special data (strings, categories, lat/long).
UMAP_METRICS = ("euclidean", "cosine", "correlation", "manhattan", "chebyshev", "canberra", "braycurtis")
# UMAP's spectral initialisation fails on 2 or 3 points (scipy's eigh needs k < N); below this many
# images the layout is a PCA projection instead.
MIN_UMAP_IMAGES = 4


def compute_umap(
    features: np.ndarray,
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "euclidean",
    seed: int = 0,
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
        layout on the same machine and library versions. A seeded UMAP runs on one thread.

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
        values (the message gives how many), or if a parameter is out of range or ``metric`` is unknown.

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

    import umap

    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(int(n_neighbors), len(features) - 1),
        min_dist=float(min_dist),
        metric=metric,
        random_state=int(seed),
        # A seeded UMAP runs on one thread whatever n_jobs says; asking for one up front is what keeps
        # umap from warning, on every call, that it overrode n_jobs because of random_state.
        n_jobs=1,
    )
    return reducer.fit_transform(features).astype(np.float32, copy=False)


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
