"""Rankings read by the app (playground/ranking.py): stored and on-the-fly results, query scores, the majority label."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from playground.ranking import majority_label, query_results, query_scores

PIXELS, LITE = "pixels", "efficientnet-lite0-random"


def test_query_results_follow_the_stored_ranking(store):
    indices, distances = store.neighbors("shapes", PIXELS, "pixels_16x16", "euclidean")
    results = query_results(store, "shapes", PIXELS, "pixels_16x16", "euclidean", 4, 15)
    assert [r.image_id for r in results] == indices[4, :15].tolist()
    assert [r.rank for r in results] == list(range(1, 16))
    assert np.allclose([r.similarity for r in results], 1 / (1 + distances[4, :15]))
    labels = store.labels("shapes")
    assert all(r.same_class == (labels[r.image_id] == labels[4]) for r in results)
    assert [r.similarity for r in results] == sorted((r.similarity for r in results), reverse=True)


def test_query_results_deeper_than_stored_rank_on_the_fly(store):
    results = query_results(store, "shapes", PIXELS, "pixels_8x8", "cosine", 3, 23)
    assert len(results) == 23 and 3 not in [r.image_id for r in results]
    stored, _ = store.neighbors("shapes", PIXELS, "pixels_8x8", "cosine")
    assert [r.image_id for r in results[:20]] == stored[3].tolist()


def test_switching_the_model_changes_the_results(store):
    a = query_results(store, "shapes", PIXELS, "pixels_8x8", "cosine", 0, 15)
    b = query_results(store, "shapes", LITE, store.layers("shapes", LITE)[-1], "cosine", 0, 15)
    assert [r.image_id for r in a] != [r.image_id for r in b]


def test_query_scores_read_the_scores_file_and_the_baseline(store, playground_artifacts):
    table = query_scores(store, "shapes", PIXELS, "pixels_8x8", "cosine", 2)
    scores = pd.read_parquet(playground_artifacts / "shapes" / PIXELS / "pixels_8x8" / "scores-cosine.parquet")
    assert table.loc["rwp@15", "query"] == pytest.approx(scores.loc[2, "rwp@15"])
    assert table.loc["ap", "query"] == pytest.approx(scores.loc[2, "ap"])
    assert table.loc["precision@5", "random"] == pytest.approx(7 / 23)  # 7 relevant among 23 candidates
    assert table.loc["rwp@15", "mean"] == pytest.approx(scores["rwp@15"].mean())


def test_majority_label():
    from playground.ranking import Result

    results = [Result(i + 1, i, label, 0.0, 1.0, None) for i, label in enumerate(["a", "b", "b", "a", "c"])]
    assert majority_label(results) == ("a", 2)
