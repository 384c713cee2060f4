"""Tests for precompute.scores: hand-computed cases, sklearn agreement, the random baseline, validation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, ndcg_score

from precompute.scores import (
    ALL_LABEL,
    DEFAULT_KS,
    SCORE_NAMES,
    compute_query_scores,
    random_baseline,
    score_columns,
    summarize_scores,
)


def _log2(x: float) -> float:
    return math.log2(x)


def _random_rankings(rng: np.random.Generator, n_images: int, depth: int) -> np.ndarray:
    """Uniformly random rankings (n_images, depth) of the other rows, the query excluded."""
    keys = rng.random((n_images, n_images))
    np.fill_diagonal(keys, np.inf)  # the query sorts last and is cut off below
    return np.argsort(keys, axis=1)[:, :depth]


# ------------------------------------------------------------------------------------- hand-computed

# Six images, two classes of three: every query has R = 2 relevant items among 5 candidates, and the
# rankings below are full (N = 5), so rwp@15 uses 5 results with weights 15/15, 14/15, ..., 11/15
# (sum 65/15). IDCG@1 = 1 and IDCG@5 = 1 + 1/log2(3) for R = 2.
SIX_LABELS = ["a", "a", "a", "b", "b", "b"]
SIX_NEIGHBORS = np.array(
    [
        [3, 1, 4, 2, 5],  # q0 a: relevance 0 1 0 1 0
        [0, 2, 3, 4, 5],  # q1 a: relevance 1 1 0 0 0
        [5, 4, 3, 1, 0],  # q2 a: relevance 0 0 0 1 1
        [4, 0, 1, 2, 5],  # q3 b: relevance 1 0 0 0 1
        [5, 3, 0, 1, 2],  # q4 b: relevance 1 1 0 0 0
        [0, 1, 2, 3, 4],  # q5 b: relevance 0 0 0 1 1
    ]
)
IDCG5 = 1 + 1 / _log2(3)
SIX_EXPECTED = {
    # rwp@15: weights of the relevant positions (15 - i) over 65.
    "rwp@15": [(14 + 12) / 65, (15 + 14) / 65, (12 + 11) / 65, (15 + 11) / 65, (15 + 14) / 65, (12 + 11) / 65],
    "precision@1": [0, 1, 0, 1, 1, 0],
    "precision@5": [2 / 5] * 6,  # both relevant items are always within the 5 results
    "recall@1": [0, 1 / 2, 0, 1 / 2, 1 / 2, 0],
    "recall@5": [1.0] * 6,
    "ndcg@1": [0, 1, 0, 1, 1, 0],
    "ndcg@5": [
        (1 / _log2(3) + 1 / _log2(5)) / IDCG5,  # hits at ranks 2 and 4
        1.0,  # hits at ranks 1 and 2: the ideal ordering
        (1 / _log2(5) + 1 / _log2(6)) / IDCG5,  # ranks 4 and 5
        (1 + 1 / _log2(6)) / IDCG5,  # ranks 1 and 5
        1.0,
        (1 / _log2(5) + 1 / _log2(6)) / IDCG5,
    ],
    # ap: mean over the R = 2 hits of precision at the hit's rank.
    "ap": [(1 / 2 + 2 / 4) / 2, 1.0, (1 / 4 + 2 / 5) / 2, (1 / 1 + 2 / 5) / 2, 1.0, (1 / 4 + 2 / 5) / 2],
}


def test_six_image_scores_match_hand_computation() -> None:
    scores = compute_query_scores(SIX_NEIGHBORS, SIX_LABELS, ks=(1, 5))
    assert list(scores.columns) == ["label", *score_columns((1, 5))]
    assert scores["label"].tolist() == SIX_LABELS
    for column, expected in SIX_EXPECTED.items():
        np.testing.assert_allclose(scores[column].to_numpy(), expected, rtol=1e-12, err_msg=column)


def test_six_image_summary_is_mean_per_class_and_over_all() -> None:
    summary = summarize_scores(compute_query_scores(SIX_NEIGHBORS, SIX_LABELS, ks=(1, 5)))
    assert summary.index.tolist() == ["a", "b", ALL_LABEL]
    assert summary.index.name == "label"
    assert summary["n_queries"].tolist() == [3, 3, 6]
    assert summary["n_queries"].dtype == np.int64
    # precision@1: class a has hits for q1 only, class b for q3 and q4.
    np.testing.assert_allclose(summary["precision@1"], [1 / 3, 2 / 3, 1 / 2])
    # ap: a = (0.5 + 1 + 0.325) / 3, b = (0.7 + 1 + 0.325) / 3, all = the mean of the six.
    np.testing.assert_allclose(summary["ap"], [1.825 / 3, 2.025 / 3, 3.85 / 6])


def test_rwp_uses_only_the_top_15_of_longer_rankings() -> None:
    # Twenty images, classes x (rows 0-9) and y (rows 10-19); query 0 has a full ranking of 19.
    labels = ["x"] * 10 + ["y"] * 10
    neighbors = np.array([[j for j in range(20) if j != i] for i in range(20)])
    neighbors[0] = [1, 10, 2, 11, 12, 3, 13, 14, 15, 16, 17, 18, 19, 4, 5, 6, 7, 8, 9]
    scores = compute_query_scores(neighbors, labels, ks=(15,)).loc[0]
    # Relevant within the top 15 at 0-based positions 0, 2, 5, 13, 14: weights 15 + 13 + 10 + 2 + 1 = 41
    # over 15 + 14 + ... + 1 = 120. The relevant results at positions 15-18 do not count.
    assert scores["rwp@15"] == pytest.approx(41 / 120)
    assert scores["precision@15"] == pytest.approx(5 / 15)
    assert scores["recall@15"] == pytest.approx(5 / 9)
    # All 9 relevant items are stored: ap is the full AP, hits at 1-based ranks 1, 3, 6, 14, 15, ..., 19.
    ranks = [1, 3, 6, 14, 15, 16, 17, 18, 19]
    assert scores["ap"] == pytest.approx(sum((h + 1) / r for h, r in enumerate(ranks)) / 9)


def test_truncated_ranking_normalises_ap_by_min_r_n() -> None:
    # Rows 0-5 are class a (R = 5 for query 0); only N = 3 neighbours are stored.
    labels = ["a"] * 6 + ["b"] * 2
    neighbors = np.array([[(i + 1 + j) % 8 for j in range(3)] for i in range(8)])
    neighbors[0] = [1, 6, 2]  # relevance 1 0 1
    scores = compute_query_scores(neighbors, labels, ks=(1, 3)).loc[0]
    assert scores["ap"] == pytest.approx((1 / 1 + 2 / 3) / 3)  # over min(R=5, N=3), not over R
    assert scores["recall@3"] == pytest.approx(2 / 5)  # recall still counts all R relevant items
    # rwp@15 with 3 results: weights 15, 14, 13 over their sum 42.
    assert scores["rwp@15"] == pytest.approx((15 + 13) / 42)
    # ndcg@3: hits at ranks 1 and 3, ideal has 3 hits (min(k=3, R=5)).
    assert scores["ndcg@3"] == pytest.approx((1 + 0.5) / (1 + 1 / _log2(3) + 0.5))


def test_singleton_class_gives_nan_where_undefined() -> None:
    labels = ["a", "a", "b"]  # b has no other member: nothing to retrieve for query 2
    neighbors = np.array([[1, 2], [2, 0], [0, 1]])
    scores = compute_query_scores(neighbors, labels, ks=(1, 2)).loc[2]
    assert scores["precision@1"] == 0 and scores["precision@2"] == 0 and scores["rwp@15"] == 0
    for column in ["recall@1", "recall@2", "ndcg@1", "ndcg@2", "ap"]:
        assert math.isnan(scores[column]), column
    summary = summarize_scores(compute_query_scores(neighbors, labels, ks=(1, 2)))
    assert math.isnan(summary.loc["b", "ap"])
    # __all__ skips the NaN query: mean ap of queries 0 (1.0) and 1 (hit at rank 2: 0.5).
    assert summary.loc[ALL_LABEL, "ap"] == pytest.approx(0.75)


# ----------------------------------------------------------------------------------- against sklearn


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ndcg_and_ap_match_sklearn_on_full_rankings(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_images = 30
    labels = rng.choice(["cat", "dog", "eel", "fox"], size=n_images)
    labels[:8] = ["cat", "cat", "dog", "dog", "eel", "eel", "fox", "fox"]  # every query has R >= 1
    neighbors = _random_rankings(rng, n_images, n_images - 1)
    ks = (1, 3, 10, 29)
    scores = compute_query_scores(neighbors, labels, ks=ks)

    # A full ranking as sklearn wants it: relevance of each candidate, and a score that decreases with rank.
    y_true = (labels[neighbors] == labels[:, None]).astype(int)
    y_score = np.broadcast_to(np.arange(n_images - 1, 0, -1), y_true.shape)
    for k in ks:
        expected = [ndcg_score(y_true[i : i + 1], y_score[i : i + 1], k=k) for i in range(n_images)]
        np.testing.assert_allclose(scores[f"ndcg@{k}"], expected, rtol=1e-10, err_msg=f"ndcg@{k}")
    expected_ap = [average_precision_score(y_true[i], y_score[i]) for i in range(n_images)]
    np.testing.assert_allclose(scores["ap"], expected_ap, rtol=1e-10)


# ----------------------------------------------------------------------------------- random baseline


def _exhaustive_mean_summary(labels: list[str], ks: tuple[int, ...], depth: int) -> pd.DataFrame:
    """Mean summary over every ordering of every query's candidates: the exact random expectation."""
    n_images = len(labels)
    candidates = np.array([[j for j in range(n_images) if j != i] for i in range(n_images)])
    summaries = [
        summarize_scores(compute_query_scores(candidates[:, list(order)][:, :depth], labels, ks=ks))
        for order in itertools.permutations(range(n_images - 1))
    ]
    # Each query's ordering runs over all permutations (the same one for all queries at a time): the
    # mean of the per-class means is the per-class mean of the per-query expectations.
    return sum(summaries[1:], summaries[0]) / len(summaries)


@pytest.mark.parametrize("depth", [5, 2])
def test_random_baseline_is_exact_expectation_over_all_orderings(depth: int) -> None:
    labels = ["a", "a", "a", "b", "b", "c"]  # c is a singleton: NaN recall, ndcg and ap
    ks = (1, 2) if depth == 2 else (1, 2, 5)
    baseline = random_baseline(labels, ks=ks, depth=depth)
    exact = _exhaustive_mean_summary(labels, ks, depth)
    pd.testing.assert_index_equal(baseline.index, exact.index)
    assert list(baseline.columns) == list(exact.columns)
    assert baseline["n_queries"].tolist() == [3, 2, 1, 6]
    np.testing.assert_allclose(baseline.drop(columns="n_queries"), exact.drop(columns="n_queries"), rtol=1e-12)
    assert (baseline.loc["c", ["rwp@15", "precision@1", "precision@2"]] == 0).all()
    assert baseline.loc["c", ["recall@1", "ndcg@1", "ap"]].isna().all()


@pytest.mark.slow  # 300 random rankings scored (6-18 s); the exact expectation over all orderings is fast-tier
def test_random_baseline_matches_monte_carlo_mean() -> None:
    rng = np.random.default_rng(7)
    labels = rng.choice(["p", "q", "r"], size=60, p=[0.5, 0.3, 0.2])
    depth, n_rankings = 20, 300
    baseline = random_baseline(labels, depth=depth)
    summaries = [
        summarize_scores(compute_query_scores(_random_rankings(rng, len(labels), depth), labels))
        for _ in range(n_rankings)
    ]
    empirical = sum(summaries[1:], summaries[0]) / n_rankings
    # Each cell averages 300 x (class size) query scores in [0, 1]: a standard error below 0.01.
    np.testing.assert_allclose(baseline.drop(columns="n_queries"), empirical.drop(columns="n_queries"), atol=0.02)


def test_random_baseline_closed_forms() -> None:
    labels = ["a"] * 4 + ["b"] * 6  # n = 10, M = 9: R = 3 for a, 5 for b
    baseline = random_baseline(labels, ks=(1, 5))
    assert baseline.loc["a", "precision@5"] == pytest.approx(3 / 9)
    assert baseline.loc["b", "rwp@15"] == pytest.approx(5 / 9)
    assert baseline.loc["a", "recall@5"] == pytest.approx(5 / 9)
    assert baseline.loc[ALL_LABEL, "precision@1"] == pytest.approx((4 * 3 / 9 + 6 * 5 / 9) / 10)
    # One relevant item among M: ap is the expected reciprocal rank, sum(1/i) / M.
    pair = random_baseline(["a", "a", "b", "b", "c", "c"], ks=(1,))
    assert pair.loc["a", "ap"] == pytest.approx(sum(1 / i for i in range(1, 6)) / 5)


# ------------------------------------------------------------------------------------- tables


def test_int_labels_give_string_index_that_parquet_can_store(tmp_path) -> None:
    labels = np.array([2, 10, 2, 10, 10])
    neighbors = _random_rankings(np.random.default_rng(0), 5, 4)
    summary = summarize_scores(compute_query_scores(neighbors, labels, ks=(1, 4)))
    baseline = random_baseline(labels, ks=(1, 4))
    # Sorted by label value (2 before 10), written as strings beside "__all__".
    assert summary.index.tolist() == baseline.index.tolist() == ["2", "10", ALL_LABEL]
    summary.to_parquet(tmp_path / "summary.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "summary.parquet"), summary)


def test_score_columns_cover_every_family() -> None:
    columns = score_columns(DEFAULT_KS)
    assert columns[0] == "rwp@15" and columns[-1] == "ap"
    assert len(columns) == 2 + 3 * len(DEFAULT_KS)
    families = {c if c in SCORE_NAMES else c.split("@")[0] + "@k" for c in columns}
    assert families == set(SCORE_NAMES)


def test_many_queries_are_handled_in_one_pass() -> None:
    # Not timed: a size check that the vectorised path copes with many queries x 50 neighbours.
    rng = np.random.default_rng(3)
    n_images = 20_000
    labels = rng.integers(0, 10, size=n_images)
    # Distinct offsets 1..n-1 from each query: 50 distinct neighbours, never the query itself.
    offsets = 1 + rng.choice(n_images - 1, size=50, replace=False)
    neighbors = (np.arange(n_images)[:, None] + offsets) % n_images
    scores = compute_query_scores(neighbors, labels)
    assert scores.shape == (n_images, 1 + len(score_columns()))
    assert scores.drop(columns="label").notna().all().all()


# ------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("neighbors", "labels", "message"),
    [
        (np.array([[1], [0]]), ["a", "a", "b"], "neighbors has 2 rows but labels has 3"),
        (np.array([1, 0]), ["a", "a"], "2-D integer array"),
        (np.array([[1.0], [0.0]]), ["a", "a"], "float64"),
        (np.array([[1], [5]]), ["a", "a"], "index 5, outside the dataset rows 0..1"),
        (np.array([[1], [-1]]), ["a", "a"], "index -1"),
        (np.array([[1, 2], [1, 0], [0, 1]]), ["a", "a", "b"], "1 queries list themselves"),
        (np.array([[1, 1], [0, 2], [0, 1]]), ["a", "a", "b"], "list a neighbour more than once"),
        (np.zeros((2, 0), dtype=int), ["a", "a"], "no columns"),
        (np.array([[1], [0]]), ["a", None], "1 labels are missing"),
        (np.array([[1], [0]]), [["a", "b"]], "one-dimensional"),
        (np.array([[1], [0]]), ["__all__", "a"], "'__all__' is reserved"),
        (np.array([[1], [0]]), np.array([1, "a"], dtype=object), "all strings or all numbers"),
    ],
)
def test_compute_query_scores_rejects_bad_input(neighbors: np.ndarray, labels: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_query_scores(neighbors, labels, ks=(1,))


@pytest.mark.parametrize(
    ("ks", "message"),
    [
        ((1, 3), r"k = 3 .* at most the number of stored neighbours N = 2"),
        ((0,), "k = 0"),
        ((True,), "k = True"),
        ((1.5,), "k = 1.5"),
        ((), "non-empty"),
        (5, "non-empty sequence"),
    ],
)
def test_bad_ks_are_rejected(ks: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_query_scores(np.array([[1, 2], [0, 2], [0, 1]]), ["a", "a", "b"], ks=ks)


def test_duplicate_ks_are_merged_and_sorted() -> None:
    scores = compute_query_scores(np.array([[1, 2], [0, 2], [0, 1]]), ["a", "a", "b"], ks=(2, 1, 2))
    assert list(scores.columns) == ["label", *score_columns((1, 2))]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels": ["a"]}, "at least 2 images, got 1"),
        ({"labels": ["a", "b", "b"], "depth": 3}, r"between 1 and n_images - 1 = 2, got 3"),
        ({"labels": ["a", "b", "b"], "depth": 0}, "got 0"),
        ({"labels": ["a", "b", "b"], "ks": (1, 5), "depth": 2}, "k = 5"),
    ],
)
def test_random_baseline_rejects_bad_input(kwargs: dict, message: str) -> None:
    kwargs.setdefault("ks", (1,))
    with pytest.raises(ValueError, match=message):
        random_baseline(**kwargs)


def test_summarize_scores_rejects_tables_without_scores() -> None:
    with pytest.raises(ValueError, match="'label' column"):
        summarize_scores(pd.DataFrame({"ap": [1.0]}))
    with pytest.raises(ValueError, match="no score column"):
        summarize_scores(pd.DataFrame({"label": ["a"], "speed": [1.0]}))
    with pytest.raises(ValueError, match="no rows"):
        summarize_scores(pd.DataFrame({"label": [], "ap": []}))
