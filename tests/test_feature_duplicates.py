"""Feature near-duplicates of a layer (precompute.feature_duplicates): both thresholds computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from precompute.feature_duplicates import FEATURE_DUPLICATE_RATIO, FEATURE_DUPLICATE_SIGMAS, find_feature_duplicates


def _rankings(distances: list[list[float]], indices: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    return np.array(indices), np.array(distances, dtype=np.float32)


def test_a_pair_far_closer_than_the_typical_neighbour_is_found_once_with_its_class() -> None:
    # Nearest distances 0.01, 0.01, 1, 1, 1, 1: median 1, so the ratio bound is 0.1. log d1 = (-4.6, -4.6, 0, 0, 0, 0):
    # median 0, MAD 0, so the outlier bound is exp(0) = 1 and the ratio bound decides.
    indices, distances = _rankings(
        [[0.01, 2.0], [0.01, 2.0], [1, 3], [1, 3], [1, 3], [1, 3]], [[1, 2], [0, 3], [3, 4], [2, 5], [5, 0], [4, 1]]
    )
    found = find_feature_duplicates(indices, distances, labels=np.array(["a", "b", "c", "c", "d", "d"]))
    assert found.typical_distance == 1.0 and found.outlier_bound == 1.0
    assert found.threshold == FEATURE_DUPLICATE_RATIO * 1.0
    expected = pd.DataFrame({"a": [0], "b": [1], "distance": np.float32([0.01]), "cross_class": [True]})
    pd.testing.assert_frame_equal(found.pairs, expected)
    unlabeled = find_feature_duplicates(indices, distances)  # no labels: no pair is across classes
    assert unlabeled.pairs["cross_class"].tolist() == [False]


def test_the_log_scale_outlier_bound_wins_where_most_neighbours_crowd_together() -> None:
    # A shallow layer: nearest distances spread around 0.1 (ratio bound 0.01), a pair at 0.001 and one at 0.006.
    # The outlier bound exp(m - 3 * 1.4826 * MAD) of log d1 (about 0.0046) lies between them: only the first passes.
    nearest = [0.001, 0.001, 0.006, 0.05, 0.1, 0.1, 0.1, 0.12, 0.2, 0.3, 0.006]
    indices = np.array([[1], [0], [10], [4], [5], [4], [7], [6], [9], [8], [2]])
    distances = np.array([[d] for d in nearest])
    logs = np.log(nearest)
    mad = np.median(np.abs(logs - np.median(logs)))
    bound = math.exp(np.median(logs) - FEATURE_DUPLICATE_SIGMAS * 1.4826 * mad)
    found = find_feature_duplicates(indices, distances)
    assert found.typical_distance == 0.1 and math.isclose(found.outlier_bound, bound)
    assert 0.001 < found.threshold == found.outlier_bound < 0.006 < FEATURE_DUPLICATE_RATIO * 0.1
    assert found.pairs[["a", "b"]].values.tolist() == [[0, 1]]


def test_identical_features_everywhere_give_no_bound_and_no_pair() -> None:
    # Every nearest distance 0: no positive log distance, so the outlier bound is 0 and only distance-0 pairs pass.
    indices, distances = _rankings([[0.0], [0.0], [0.0]], [[1], [0], [0]])
    found = find_feature_duplicates(indices, distances)
    assert found.outlier_bound == 0.0 and found.threshold == 0.0
    assert found.pairs[["a", "b"]].values.tolist() == [[0, 1], [0, 2]]
