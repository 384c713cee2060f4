"""Tie-fair scores: the expectation over all orders of tied results, never the order of the manifest."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from precompute.scores import compute_query_scores, random_baseline, score_columns, summarize_scores
from precompute.similarity import rank_neighbors_exact

LABELS = np.array(["a"] * 4 + ["b"] * 3 + ["c"] * 5)


def _tie_orders(order: np.ndarray, distances: np.ndarray):
    """Every ordering of ``order`` that permutes items only within groups of equal distance."""
    groups = [list(order[distances == value]) for value in np.unique(distances)]
    for choice in itertools.product(*(itertools.permutations(group) for group in groups)):
        yield np.concatenate([np.asarray(g, dtype=int) for g in choice])


# Depth 3 in the fast tier; the deeper two (about 5-13 s each) in the full suite.
@pytest.mark.parametrize("depth", [3, *(pytest.param(depth, marks=pytest.mark.slow) for depth in (5, 11))])
def test_tie_aware_scores_are_the_mean_over_every_order_of_the_ties(depth: int) -> None:
    """Brute force: score every order of each full ranking's tie groups, truncate to depth, average."""
    rng = np.random.default_rng(depth)
    n = len(LABELS)
    codes = pd.factorize(LABELS, sort=True)[0]
    ks = tuple(k for k in (1, 2, 3, 5) if k <= depth)
    filler = (np.arange(n)[:, None] + np.arange(1, depth + 1)) % n  # valid rankings for the other rows
    for query in (0, 5, 9):  # one query of each class
        others = np.array([j for j in range(n) if j != query])
        # Tie groups of 3, 1, 4, 1 and 2 items (288 orders), shuffled over the candidates.
        full_dist = rng.permutation(np.repeat(np.arange(5), [3, 1, 4, 1, 2])).astype(np.float32)
        order = others[np.lexsort((others, full_dist))]
        full_sorted = np.sort(full_dist)
        means = []
        for permuted in _tie_orders(order, full_sorted):
            neighbors = filler.copy()
            neighbors[query] = permuted[:depth]
            table = compute_query_scores(neighbors, LABELS, ks=ks)
            means.append(table.loc[query, score_columns(ks)].to_numpy(dtype=float))
        expected = np.mean(means, axis=0)

        kept = order[:depth]
        at_cut = full_sorted == full_sorted[depth - 1]
        beyond = order[depth:][at_cut[depth:]]
        neighbors = filler.copy()
        distances = np.tile(np.arange(depth, dtype=np.float32), (n, 1))
        neighbors[query], distances[query] = kept, full_sorted[:depth]
        tied = np.zeros(n, dtype=np.int64)
        same = np.zeros(n, dtype=np.int64)
        tied[query] = len(beyond)
        same[query] = int((codes[beyond] == codes[query]).sum())
        got = compute_query_scores(neighbors, LABELS, ks=ks, distances=distances, tied_beyond=tied,
                                   tied_beyond_same=same)
        np.testing.assert_allclose(got.loc[query, score_columns(ks)].to_numpy(dtype=float), expected,
                                   rtol=1e-12, atol=1e-12, err_msg=f"query {query}")


@pytest.mark.parametrize("depth", [4, 11])
def test_a_ranking_where_every_distance_ties_scores_exactly_the_random_baseline(depth: int) -> None:
    features = np.ones((len(LABELS), 3), dtype=np.float32)  # every pair at distance 0
    codes = pd.factorize(LABELS, sort=True)[0]
    ks = tuple(k for k in (1, 2, 3, 4) if k <= depth)
    ranking = rank_neighbors_exact(features, "euclidean", top_n=depth, groups=codes)
    assert (ranking.tied_beyond == len(LABELS) - 1 - depth).all()
    scores = compute_query_scores(ranking.indices, LABELS, ks=ks, distances=ranking.distances,
                                  tied_beyond=ranking.tied_beyond, tied_beyond_same=ranking.tied_beyond_same)
    for label, part in scores.groupby("label"):
        baseline = random_baseline(LABELS, ks=ks, depth=depth).loc[label, score_columns(ks)]
        for _, row in part.iterrows():  # every query, not only the class mean
            np.testing.assert_allclose(row[score_columns(ks)].to_numpy(dtype=float), baseline.to_numpy(dtype=float),
                                       rtol=1e-12)
    # Without the ties the index order decides, and class "a" (rows 0..3) is favoured: the bias this fixes.
    plain = summarize_scores(compute_query_scores(ranking.indices, LABELS, ks=ks))
    assert plain.loc["a", "precision@1"] == 1.0


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "manhattan", "chebyshev"])
def test_permuting_the_manifest_leaves_every_score_unchanged(metric: str) -> None:
    """Integer-valued features (like pixels): many exact ties; a shuffled manifest must score the same."""
    rng = np.random.default_rng(7)
    labels = np.repeat(np.array(["beverages", "birds", "bugs", "fish"]), 10)
    features = rng.integers(0, 3, size=(len(labels), 4)).astype(np.float32)
    features[labels == "fish"] += 1  # a little signal, so scores differ from the baseline
    codes = pd.factorize(labels, sort=True)[0]

    def scores_of(feats: np.ndarray, labs: np.ndarray) -> pd.DataFrame:
        ranking = rank_neighbors_exact(feats, metric, top_n=15, groups=pd.factorize(labs, sort=True)[0])
        return compute_query_scores(ranking.indices, labs, distances=ranking.distances,
                                    tied_beyond=ranking.tied_beyond, tied_beyond_same=ranking.tied_beyond_same)

    before = scores_of(features, labels)
    assert (rank_neighbors_exact(features, metric, top_n=15, groups=codes).tied_beyond > 0).any()  # ties at the cut
    for seed in range(3):
        perm = np.random.default_rng(seed).permutation(len(labels))
        after = scores_of(features[perm], labels[perm])
        after.index = perm  # row i of the permuted set is original row perm[i]
        np.testing.assert_allclose(after.sort_index()[score_columns()].to_numpy(dtype=float),
                                   before[score_columns()].to_numpy(dtype=float), rtol=1e-12, atol=1e-12)
        summary = summarize_scores(after)
        pd.testing.assert_frame_equal(summary, summarize_scores(before), rtol=1e-12, atol=1e-12)


def test_tie_inputs_are_checked() -> None:
    neighbors = np.array([[1, 2], [0, 2], [0, 1]])
    labels = ["a", "a", "b"]
    with pytest.raises(ValueError, match="decrease"):
        compute_query_scores(neighbors, labels, ks=(1,), distances=np.array([[2.0, 1.0]] * 3))
    with pytest.raises(ValueError, match="shape"):
        compute_query_scores(neighbors, labels, ks=(1,), distances=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="need the distances"):
        compute_query_scores(neighbors, labels, ks=(1,), tied_beyond=np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="exceeds"):
        compute_query_scores(neighbors, labels, ks=(1,), distances=np.zeros((3, 2)),
                             tied_beyond=np.zeros(3, dtype=int), tied_beyond_same=np.ones(3, dtype=int))
