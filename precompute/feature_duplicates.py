"""Feature near-duplicates of a layer: pairs of images whose features are far closer than the layer's typical
nearest neighbour (``precompute.duplicates`` finds duplicate *files* by hashing; this finds them by a model).

With ``d1`` the distance of each image to its nearest neighbour under one ranking, a stored pair is a duplicate
when its distance is at most both

- ``FEATURE_DUPLICATE_RATIO`` x median(d1), and
- ``exp(m - FEATURE_DUPLICATE_SIGMAS * s)``, the low outlier bound of d1 on a log scale, where m and s are the
  median and the robust standard deviation (1.4826 MAD) of log(d1) over the positive d1.

The second condition matters in shallow layers, where most drawings crowd together (on openclipart-200's
stem_conv, 31 nearest pairs fall under a tenth of the median, 6 of them real duplicates; the bound keeps those 6).
Such a pair is the same picture for this layer, whatever its files say. Across classes it is only a hint (close
vectors, labels differ): label mistakes are confident learning's to flag (``precompute.label_issues``).

Examples
--------
>>> indices = np.array([[1], [0], [3], [2], [0]])
>>> distances = np.array([[0.001], [0.001], [1.0], [1.0], [1.2]])
>>> found = find_feature_duplicates(indices, distances, labels=np.array(["a", "b", "c", "c", "a"]))
>>> found.pairs
   a  b  distance  cross_class
0  0  1     0.001         True
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

FEATURE_DUPLICATE_RATIO = 0.1
FEATURE_DUPLICATE_SIGMAS = 3.0
# A robust standard deviation from the median absolute deviation (normal data: 1 / Phi^-1(3/4)).
_MAD_TO_SD = 1.4826


class FeatureDuplicates(NamedTuple):
    """The pairs (``a < b``, ``distance``, ``cross_class``), and the thresholds that chose them."""

    pairs: pd.DataFrame
    threshold: float  # min(ratio * typical_distance, outlier_bound)
    typical_distance: float  # median nearest-neighbour distance
    outlier_bound: float  # exp(m - sigmas * s) of the positive log distances; 0.0 when none is positive


def find_feature_duplicates(
    indices: np.ndarray,
    distances: np.ndarray,
    labels: np.ndarray | None = None,
    ratio: float = FEATURE_DUPLICATE_RATIO,
    sigmas: float = FEATURE_DUPLICATE_SIGMAS,
) -> FeatureDuplicates:
    """Feature near-duplicate pairs of one ranking.

    Parameters
    ----------
    indices, distances : arrays of shape (n_images, depth)
        Each image's neighbours, nearest first, and their distances (a stored ranking).
    labels : array of shape (n_images,), optional
        The images' labels; ``cross_class`` is False for every pair without them.
    ratio, sigmas : the two thresholds (see the module).

    Returns
    -------
    FeatureDuplicates, its pairs sorted by ``(a, b)``, each pair once.
    """
    nearest = distances[:, 0].astype(np.float64)
    typical = float(np.median(nearest))
    logs = np.log(nearest[nearest > 0])
    outlier_bound = 0.0
    if logs.size:
        spread = _MAD_TO_SD * float(np.median(np.abs(logs - np.median(logs))))
        outlier_bound = float(np.exp(np.median(logs) - sigmas * spread))
    threshold = min(ratio * typical, outlier_bound)
    rows, cols = np.nonzero(distances <= threshold)
    a, b = rows, indices[rows, cols].astype(np.int64)
    pairs = pd.DataFrame({"a": np.minimum(a, b), "b": np.maximum(a, b), "distance": distances[rows, cols]})
    pairs = pairs.drop_duplicates(["a", "b"]).sort_values(["a", "b"], kind="stable").reset_index(drop=True)
    pairs["cross_class"] = (labels[pairs["a"]] != labels[pairs["b"]]) if labels is not None else False
    return FeatureDuplicates(pairs, threshold, typical, outlier_bound)


__all__ = ["FEATURE_DUPLICATE_RATIO", "FEATURE_DUPLICATE_SIGMAS", "FeatureDuplicates", "find_feature_duplicates"]
