"""Distance metrics and exact top-N neighbour rankings.

Squared euclidean ranks exactly like euclidean, so it is not a separate metric; minkowski with
p = 2 *is* euclidean, so it is refused. A minkowski metric is named with its p: ``minkowski-p3``.
"""

from __future__ import annotations

import re

import numpy as np

# name -> scikit-learn metric; the registry every other module validates against.
METRICS: dict[str, str] = {
    "cosine": "cosine",
    "euclidean": "euclidean",
    "manhattan": "manhattan",
    "chebyshev": "chebyshev",
    "minkowski": "minkowski",
}
DEFAULT_METRICS = ("cosine", "euclidean", "manhattan", "chebyshev")
DEFAULT_MINKOWSKI_P = 3.0
_MINKOWSKI = re.compile(r"^minkowski-p(\d+(?:\.\d+)?)$")


def metric_name(metric: str, p: float | None = None) -> str:
    """The canonical artifact name: ``minkowski`` becomes ``minkowski-p<p>``; others pass through checked."""
    if metric == "minkowski":
        p = DEFAULT_MINKOWSKI_P if p is None else float(p)
        if p < 1 or p == 2:
            raise ValueError(f"minkowski needs p >= 1 and p != 2 (p = 2 is euclidean), got p={p}.")
        return f"minkowski-p{p:g}"
    parse_metric(metric)
    return metric


def parse_metric(name: str) -> tuple[str, dict[str, float]]:
    """``'minkowski-p3'`` -> ``('minkowski', {'p': 3.0})``; a ValueError lists the valid names."""
    match = _MINKOWSKI.match(name)
    if match:
        p = float(match.group(1))
        if p < 1 or p == 2:
            raise ValueError(f"{name}: minkowski needs p >= 1 and p != 2.")
        return "minkowski", {"p": p}
    if name in METRICS and name != "minkowski":
        return METRICS[name], {}
    raise ValueError(
        f"Unknown metric {name!r}. Valid metrics: {', '.join(m for m in METRICS if m != 'minkowski')}, "
        "minkowski-p<P> (e.g. minkowski-p3; p != 2)."
    )


def similarity_from_distance(metric: str, distances: np.ndarray) -> np.ndarray:
    """A similarity for display: cosine similarity for cosine, ``1 / (1 + d)`` for the others."""
    distances = np.asarray(distances, dtype=np.float64)
    if metric == "cosine":
        return 1.0 - distances
    return 1.0 / (1.0 + distances)


def pairwise_distances(queries: np.ndarray, features: np.ndarray, metric: str) -> np.ndarray:
    """Distances (n_queries, n_features) under a named metric, float64 for stable ranking."""
    from sklearn.metrics import pairwise_distances as sk_pairwise

    sk_metric, kwargs = parse_metric(metric)
    return sk_pairwise(np.asarray(queries, dtype=np.float64), np.asarray(features, dtype=np.float64),
                       metric=sk_metric, **kwargs)


def top_k_from_distances(distances: np.ndarray, k: int, exclude: np.ndarray | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Ranked top-k per row: ties broken by lower index, so results are deterministic.

    ``exclude[i]`` (a column index, or -1) is removed from row i's ranking (the query itself).
    """
    distances = np.array(distances, dtype=np.float64, copy=True)
    n_rows, n_cols = distances.shape
    if exclude is not None:
        rows = np.flatnonzero(exclude >= 0)
        distances[rows, exclude[rows]] = np.inf
    k = min(k, n_cols - (1 if exclude is not None else 0))
    if k < n_cols:
        candidates = np.argpartition(distances, k - 1, axis=1)[:, :k]
        # argpartition may cut between equal distances: widen to every column tied with the k-th.
        kth = np.take_along_axis(distances, candidates, axis=1).max(axis=1, keepdims=True)
        if np.any((distances <= kth).sum(axis=1) > k):
            candidates = np.argsort(distances, axis=1, kind="stable")[:, :k]
    else:
        candidates = np.tile(np.arange(n_cols), (n_rows, 1))
    cand_dist = np.take_along_axis(distances, candidates, axis=1)
    order = np.lexsort((candidates, cand_dist), axis=1)[:, :k]
    indices = np.take_along_axis(candidates, order, axis=1)
    return indices.astype(np.int32), np.take_along_axis(distances, indices, axis=1).astype(np.float32)


def rank_neighbors(features: np.ndarray, metric: str, top_n: int = 50, chunk_rows: int = 1024
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-N neighbours of every row among the other rows (the row itself excluded).

    Parameters
    ----------
    features : array (n, dim)
    metric : a name from ``METRICS`` or ``minkowski-p<P>``
    top_n : neighbours kept per row (at most n - 1)

    Returns
    -------
    indices : int32 (n, min(top_n, n - 1)), best first
    distances : float32, same shape

    Memory is bounded by ``chunk_rows x n`` distances at a time.
    """
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be 2-D (n, dim), got shape {features.shape}")
    n = len(features)
    if n < 2:
        raise ValueError(f"Need at least 2 images to rank neighbours, got {n}.")
    if top_n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    parse_metric(metric)
    if not np.isfinite(features).all():
        bad = int((~np.isfinite(features)).any(axis=1).sum())
        raise ValueError(f"{bad} feature rows contain NaN or inf; the model produced invalid features.")
    k = min(top_n, n - 1)
    indices = np.empty((n, k), dtype=np.int32)
    distances = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        block = pairwise_distances(features[start:stop], features, metric)
        idx, dist = top_k_from_distances(block, k, exclude=np.arange(start, stop))
        indices[start:stop], distances[start:stop] = idx, dist
    return indices, distances


def search(query_features: np.ndarray, features: np.ndarray, metric: str, top_n: int = 15
           ) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-N of new queries (n_queries, dim) against a dataset's features (nothing excluded)."""
    query_features = np.atleast_2d(np.asarray(query_features))
    if query_features.shape[1] != np.asarray(features).shape[1]:
        raise ValueError(f"Query dim {query_features.shape[1]} != dataset dim {np.asarray(features).shape[1]}.")
    return top_k_from_distances(pairwise_distances(query_features, features, metric), top_n)
