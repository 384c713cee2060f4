"""Results of a query: ranked neighbours with similarities and labels, and the query's own scores.

Pure functions over a :class:`~playground.store.Store`; the callbacks only turn their output into
components, so these are what the tests and the benchmark call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from playground.store import MissingArtifact, Store
from precompute.ann import search
from precompute.similarity import similarity_from_distance

# Scores shown beside a query, in this order (those the scores table holds).
QUERY_SCORES = ("rwp@15", "precision@1", "precision@5", "precision@10", "precision@15", "ap")
# The absolute reference of a result's distance: pairs of the collection's images measured under the same model,
# layer and metric (all of them up to this many; beyond, every image against a seeded sample of queries).
REFERENCE_PAIRS = 200_000
# A best result farther than this share of the collection's own nearest neighbours is called a weak match.
WEAK_MATCH_QUANTILE = 0.95


@dataclass(frozen=True)
class Result:
    """One ranked result. ``same_class`` is None when the query has no label (uploads, unlabeled sets)."""

    rank: int  # 1-based
    image_id: int
    label: str | None
    distance: float
    similarity: float
    same_class: bool | None


def _results(
    ids: np.ndarray, distances: np.ndarray, metric: str, labels: np.ndarray | None, query_label: str | None
) -> list[Result]:
    similarities = similarity_from_distance(metric, distances)
    rows = []
    for rank, (image_id, distance, similarity) in enumerate(zip(ids, distances, similarities, strict=True), 1):
        label = None if labels is None else str(labels[image_id])
        same = None if query_label is None or label is None else label == query_label
        rows.append(Result(rank, int(image_id), label, float(distance), float(similarity), same))
    return rows


def query_results(store: Store, dataset: str, model: str, layer: str, metric: str, query: int, k: int) -> list[Result]:
    """Top ``k`` results of dataset image ``query`` (itself excluded), best first.

    Read from the stored rankings; when ``k`` is deeper than what was stored, ranked exactly from the
    stored features instead. Raises MissingArtifact for a combination that was not computed.
    """
    indices, distances = store.neighbors(dataset, model, layer, metric)
    if not 0 <= query < len(indices):
        raise MissingArtifact(f"No image {query} in {dataset!r} (0..{len(indices) - 1}).")
    labels = store.labels(dataset)
    query_label = None if labels is None else str(labels[query])
    if k <= indices.shape[1]:
        return _results(indices[query, :k], distances[query, :k], metric, labels, query_label)
    features = store.features(dataset, model, layer)
    ids, dists = search(features[query], features, metric, top_n=min(k, len(features) - 1),
                        index=store.ann_index(dataset, model, layer, metric), exclude=np.array([query]))
    found = ids[0] >= 0  # an approximate index can return fewer than k
    return _results(ids[0][found], dists[0][found], metric, labels, query_label)


def feature_results(
    store: Store, dataset: str, model: str, layer: str, metric: str, query_features: np.ndarray, k: int
) -> list[Result]:
    """Top ``k`` dataset images for a new query vector (an upload), best first, nothing excluded."""
    features = store.features(dataset, model, layer)
    index = store.ann_index(dataset, model, layer, metric)  # also: same "not computed" message as the rankings
    ids, dists = search(query_features, features, metric, top_n=min(k, len(features)), index=index)
    found = ids[0] >= 0
    return _results(ids[0][found], dists[0][found], metric, store.labels(dataset), None)


def closeness(distances: Sequence[float]) -> np.ndarray:
    """Where each distance lies within its result set: 1 at the closest result shown, 0 at the farthest.

    The bar of a result card. Raw similarities say little outside cosine (``1 / (1 + d)`` of a manhattan
    distance of 900 is 0.001), and even cosine ones crowd near 1 for raw pixels or untrained weights; the
    position within the results shows the gaps between them whatever the metric's scale. All 1 when the
    distances are all equal (one result, or ties); NaN distances get 0.

    Examples
    --------
    >>> closeness([2.0, 3.0, 6.0]).tolist()
    [1.0, 0.75, 0.0]
    """
    d = np.asarray(distances, dtype=np.float64)
    finite = d[np.isfinite(d)]
    if finite.size == 0:
        return np.zeros(d.shape)
    near, far = finite.min(), finite.max()
    if far - near <= 0:
        return np.where(np.isfinite(d), 1.0, 0.0)
    return np.where(np.isfinite(d), np.clip((far - d) / (far - near), 0.0, 1.0), 0.0)


@dataclass(frozen=True)
class DistanceReference:
    """Where a distance falls in a collection (one model / layer / metric): ``pairs`` are distances between
    its images, sorted; ``nearest`` each image's distance to its nearest neighbour, sorted."""

    pairs: np.ndarray
    nearest: np.ndarray

    def closer_than(self, distance: float) -> float:
        """The share of the collection's pairs farther apart than ``distance`` (0..1; NaN for no pairs)."""
        if not self.pairs.size or not np.isfinite(distance):
            return float("nan")
        return float(1.0 - np.searchsorted(self.pairs, distance, side="right") / self.pairs.size)

    def weak(self, distance: float) -> bool:
        """Whether a best result at ``distance`` is farther than :data:`WEAK_MATCH_QUANTILE` of the images'
        own nearest neighbours."""
        return bool(self.nearest.size) and distance > float(np.quantile(self.nearest, WEAK_MATCH_QUANTILE))

    def for_browser(self) -> dict[str, Any]:
        """What the browser needs to word a distance as :meth:`closer_than` and :meth:`weak` do, in 103 numbers
        rather than the pairs (private mode's cards, assets/private_cards.js).

        ``closer[p]`` (p = 0..100) is the distance below which a result is closer than at least p % of the pairs,
        the whole percent that ``components.closer_text`` writes (None: any distance): ``floor(100 *
        closer_than(d)) >= p`` exactly when ``d < closer[p]``, with the same float arithmetic, so the browser's
        words are the server's. ``weak_above`` is the distance a best result must exceed to be a weak match.
        """
        n = self.pairs.size
        closer: list[float | None] = []
        if n:
            # The percent at a distance with `count` pairs at or below it, as closer_than and closer_text compute it
            # (it falls as count grows); then for each p, the most pairs at or below d that still give p % or more.
            percents = np.floor(100 * (1.0 - np.arange(n + 1) / n))
            counts = np.searchsorted(-percents, -np.arange(101.0), side="right") - 1
            closer = [float(self.pairs[count]) if count < n else None for count in counts]
        weak_above = float(np.quantile(self.nearest, WEAK_MATCH_QUANTILE)) if self.nearest.size else None
        return {"closer": closer, "weak_above": weak_above, "weak_quantile": WEAK_MATCH_QUANTILE}


_REFERENCES: dict[tuple, DistanceReference] = {}


def distance_reference(store: Store, dataset: str, model: str, layer: str, metric: str) -> DistanceReference:
    """The collection's own distances under this model / layer / metric (cached per features file version).

    Every pair of images up to :data:`REFERENCE_PAIRS` pairs; beyond, a seeded sample of images against all of
    them (themselves left out). The nearest-neighbour distances come from the stored rankings.
    """
    from precompute import artifacts as art
    from precompute.similarity import pairwise_distances

    path = art.features_path(store.root, dataset, model, layer)
    key = (str(path), path.stat().st_mtime_ns if path.exists() else 0, metric)
    if key not in _REFERENCES:
        features = np.asarray(store.features(dataset, model, layer))
        n = len(features)
        rows = np.arange(n)
        if n * (n - 1) // 2 > REFERENCE_PAIRS:
            rows = np.sort(np.random.default_rng(0).choice(n, max(1, REFERENCE_PAIRS // n), replace=False))
        distances = pairwise_distances(features[rows], features, metric)
        keep = np.ones(distances.shape, dtype=bool)
        keep[np.arange(len(rows)), rows] = False  # an image and itself
        if len(rows) == n:
            keep &= np.triu(np.ones((n, n), dtype=bool), k=1)  # each pair once
        _, stored = store.neighbors(dataset, model, layer, metric)
        if len(_REFERENCES) > 64:  # a bounded cache: a long-running server sees many layers and metrics
            _REFERENCES.clear()
        _REFERENCES[key] = DistanceReference(np.sort(distances[keep]), np.sort(stored[:, 0].astype(np.float64)))
    return _REFERENCES[key]


def majority_label(results: list[Result]) -> tuple[str, int] | None:
    """The most frequent label among results and its count (ties: the better ranked first)."""
    labels = [r.label for r in results if r.label is not None]
    if not labels:
        return None
    counts = pd.Series(labels).value_counts(sort=False)
    best = max(counts.index, key=lambda label: (counts[label], -labels.index(label)))
    return best, int(counts[best])


def query_scores(store: Store, dataset: str, model: str, layer: str, metric: str, query: int,
                 k: int | None = None) -> pd.DataFrame | None:
    """The query's own scores beside the layer's mean and a random ranking's.

    Returns a table indexed by score name with columns ``query``, ``mean`` (over all queries of this
    model / layer / metric), ``class mean`` (over the query's class), ``random`` (expected score of a
    random ranking for a query of this class); None for an unlabeled dataset. With ``k`` (the number of
    results shown), its first row is ``precision@k``, so the table speaks of the results on screen
    (:func:`precision_at_k_row`).
    """
    scores = store.scores(dataset, model, layer, metric)
    if scores is None:
        return None
    row = scores.loc[query]
    label = str(row["label"])
    summary = store.class_summary(dataset, model, layer, metric)
    baseline = store.baseline(dataset)
    names = [name for name in QUERY_SCORES if name in scores.columns]
    table = pd.DataFrame(index=pd.Index(names, name="score"))
    table["query"] = [float(row[name]) for name in names]
    table["class mean"] = [float(summary.loc[label, name]) for name in names]
    table["mean"] = [float(summary.loc["__all__", name]) for name in names]
    if baseline is not None and label in baseline.index:
        table["random"] = [float(baseline.loc[label, name]) if name in baseline.columns else np.nan for name in names]
    else:
        base = store.baseline_summary(dataset)
        table["random"] = [base.get(name, np.nan) for name in names]
    if k is not None and f"precision@{k}" not in table.index:
        row = precision_at_k_row(store, dataset, model, layer, metric, query, k)
        if row is not None:
            table = pd.concat([pd.DataFrame([row], index=pd.Index([f"precision@{k}"], name="score")), table])
    elif k is not None:
        table = table.loc[[f"precision@{k}", *[n for n in table.index if n != f"precision@{k}"]]]
    return table


def precision_at_k_row(store: Store, dataset: str, model: str, layer: str, metric: str, query: int,
                       k: int) -> dict[str, float] | None:
    """precision@k of the query, its class and every query, from the stored rankings, and a random ranking's
    expectation ((n_c - 1) / (n - 1): any depth); None when ``k`` is deeper than the rankings stored.

    The stored scores hold a few cut-offs (1, 5, 10, 15...); the results shown can be any number. Ties at
    the cut count in stored order here (the stored scores average over tie orders), a difference only where
    distances tie exactly at rank k.
    """
    indices, _ = store.neighbors(dataset, model, layer, metric)
    if not 1 <= k <= indices.shape[1]:
        return None
    labels = np.asarray(store.labels(dataset)).astype(str)
    per_query = (labels[indices[:, :k]] == labels[:, None]).mean(axis=1)
    mine = labels == labels[query]
    n, n_class = len(labels), int(mine.sum())
    return {"query": float(per_query[query]), "class mean": float(per_query[mine].mean()),
            "mean": float(per_query.mean()), "random": (n_class - 1) / (n - 1) if n > 1 else np.nan}
