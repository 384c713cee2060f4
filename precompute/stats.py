"""How sure a mean score is: seeded bootstrap intervals over queries, and paired comparisons.

A mean over 200 queries is an estimate. Two configurations scored on the same queries should be compared
query by query (a paired test), not by their means alone: 0.376 against 0.388 may be noise.

- :func:`bootstrap_ci`: percentile bootstrap interval of the mean of each column, resampling queries
  (rows) with replacement; NaN entries (queries where a score is undefined) are skipped in each mean.
- :func:`paired_comparison`: the mean of per-query differences ``a - b`` with its paired bootstrap
  interval (the same resampled queries for both), and Wilcoxon's signed-rank p-value from scipy. Two
  configurations are *distinguishable* at the chosen level when the interval of the difference excludes 0.

Every resampling is seeded (``seed``), so the same scores always give the same intervals.

Examples
--------
>>> values = np.array([0.2, 0.4, 0.6, 0.8])
>>> low, high = bootstrap_ci(values, n_resamples=500, seed=0)
>>> bool(low < values.mean() < high)
True
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

N_RESAMPLES = 2000
LEVEL = 0.95
SEED = 0
# Rows of resampling indices drawn at once: 2000 x n_queries int32 for 70,000 queries is 560 MB, so chunk.
_CHUNK_ELEMENTS = 4_000_000
# Resample counts kept between calls (``_resample_weights``): at most this many bytes of uint8 each (64 MB: 2,000
# resamples of up to 32,000 queries), the last two kinds (a run's queries, and a paired comparison's).
_WEIGHTS_MAX_BYTES = 64_000_000
_WEIGHTS_KEPT = 2
_WEIGHTS: dict[tuple[int, int, int], tuple[np.ndarray, ...]] = {}
_WEIGHTS_LOCK = threading.Lock()


def bootstrap_params(n_resamples: int = N_RESAMPLES, level: float = LEVEL, seed: int = SEED) -> dict[str, Any]:
    """The parameters as the artifact index records them beside each interval."""
    return {"method": "percentile bootstrap over queries (uniform draws)", "n_resamples": int(n_resamples),
            "level": float(level),
            "seed": int(seed)}


def bootstrap_ci(values: np.ndarray, n_resamples: int = N_RESAMPLES, level: float = LEVEL, seed: int = SEED
                 ) -> np.ndarray:
    """Percentile bootstrap interval of the mean of ``values`` over rows.

    Parameters
    ----------
    values : float array, shape (n_queries,) or (n_queries, n_scores)
        One row per query; NaN where the score is undefined for that query (skipped in each mean).
    n_resamples : int
        Bootstrap resamples of the queries (with replacement).
    level : float
        Coverage of the interval, in (0, 1).
    seed : int
        Seed of the resampling: same inputs, same interval.

    Returns
    -------
    float64 array, shape (2,) or (2, n_scores)
        Lower and upper bounds. NaN for a column with no finite value. A column whose values are all equal
        gets a zero-width interval.
    """
    array = np.asarray(values, dtype=np.float64)
    squeeze = array.ndim == 1
    if squeeze:
        array = array[:, None]
    _check(array, n_resamples, level)
    means = _resampled_means(array, n_resamples, seed)
    alpha = (1.0 - level) / 2.0
    with np.errstate(all="ignore"):
        bounds = np.nanquantile(means, [alpha, 1.0 - alpha], axis=0) if np.isfinite(means).any() else \
            np.full((2, array.shape[1]), np.nan)
    return bounds[:, 0] if squeeze else bounds


def paired_comparison(a: np.ndarray, b: np.ndarray, n_resamples: int = N_RESAMPLES, level: float = LEVEL,
                      seed: int = SEED) -> dict[str, Any]:
    """Compare two configurations scored on the same queries.

    Parameters
    ----------
    a, b : float arrays, shape (n_queries,)
        Per-query scores of the two configurations, row i = the same query in both. Queries where either
        is NaN are dropped.

    Returns
    -------
    dict
        ``mean_difference`` (mean of ``a - b``), ``ci`` (its paired bootstrap interval, ``[low, high]``),
        ``p_value`` (two-sided Wilcoxon signed-rank; 1.0 when every difference is 0), ``n_queries`` and
        ``distinguishable`` (True when the interval excludes 0).

    Examples
    --------
    >>> a = np.array([0.5, 0.6, 0.7, 0.8] * 10); b = a - 0.2
    >>> paired_comparison(a, b)["distinguishable"]
    True
    >>> paired_comparison(a, a)["distinguishable"]
    False
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be 1-D arrays over the same queries, got shapes {a.shape} and {b.shape}.")
    keep = np.isfinite(a) & np.isfinite(b)
    diff = a[keep] - b[keep]
    if diff.size == 0:
        raise ValueError("a and b share no query with a finite score: there is nothing to compare.")
    low, high = bootstrap_ci(diff, n_resamples, level, seed)
    if np.all(diff == 0):
        p_value = 1.0
    else:
        from scipy.stats import wilcoxon

        p_value = float(wilcoxon(diff, zero_method="zsplit").pvalue)
    return {"mean_difference": float(diff.mean()), "ci": [float(low), float(high)], "p_value": p_value,
            "n_queries": int(diff.size), "distinguishable": bool(low > 0 or high < 0)}


def _check(array: np.ndarray, n_resamples: int, level: float) -> None:
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"values must have shape (n_queries,) or (n_queries, n_scores) with n_queries >= 1, "
                         f"got {array.shape}.")
    if not isinstance(n_resamples, int | np.integer) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}.")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), got {level!r}.")


def _resampled_means(array: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Means (n_resamples, n_scores) of the columns over resampled rows, NaN skipped."""
    n = array.shape[0]
    finite = np.isfinite(array)
    filled = np.where(finite, array, 0.0)
    counts = finite.astype(np.float64)
    means = np.empty((n_resamples, array.shape[1]))
    lo = 0
    for chunk in _resample_weights(n, n_resamples, seed):
        weights = chunk.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            means[lo : lo + len(chunk)] = (weights @ filled) / (weights @ counts)
        lo += len(chunk)
    return means


def _resample_weights(n: int, n_resamples: int, seed: int) -> tuple[np.ndarray, ...] | Iterator[np.ndarray]:
    """How often each of ``n`` queries is drawn in each resample: chunks of rows (resamples) of counts.

    The draws depend on ``(n, n_resamples, seed)`` only, not on the scores: a run scores every (layer, metric) of a
    dataset over the same queries with the same seed, so the counts are drawn once and kept (:data:`_WEIGHTS`, the
    last ``_WEIGHTS_KEPT`` kinds, as uint8 where every count fits: 20 MB for 2,000 resamples of 10,000 queries) up to
    ``_WEIGHTS_MAX_BYTES``; larger ones are drawn chunk by chunk each time, as before. Same draws either way.
    """
    key = (int(n), int(n_resamples), int(seed))
    kept = _WEIGHTS.get(key)
    if kept is not None:
        return kept
    chunks = _draw_weights(*key)
    if n * n_resamples > _WEIGHTS_MAX_BYTES:
        return chunks
    kept = tuple(chunk.astype(np.uint8) if chunk.max(initial=0) <= 255 else chunk for chunk in chunks)
    for chunk in kept:
        chunk.flags.writeable = False
    with _WEIGHTS_LOCK:
        _WEIGHTS[key] = kept
        while len(_WEIGHTS) > _WEIGHTS_KEPT:
            _WEIGHTS.pop(next(iter(_WEIGHTS)))
    return kept


def _draw_weights(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for lo in range(0, n_resamples, step):
        rows = min(step, n_resamples - lo)
        # How often each query is drawn in each resample: n uniform draws per resample, counted by one bincount
        # (13x faster than numpy's multinomial over 70,000 categories).
        draws = rng.integers(0, n, size=(rows, n)) + (np.arange(rows) * n)[:, None]
        yield np.bincount(draws.ravel(), minlength=rows * n).reshape(rows, n)
