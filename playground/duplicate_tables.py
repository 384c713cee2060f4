"""Duplicates and likely label mistakes of a dataset, as the app shows them: the duplicate pairs of a dataset and
of one layer's features (:func:`duplicate_pairs`), grouped by pair or by image, and confident learning's label
issues by image, in words."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from playground.store import MissingArtifact, Store

# Kinds of duplicate evidence, strongest first, as the app names them.
DUPLICATE_KINDS = {"exact": "exact duplicate", "near": "near-duplicate", "feature": "feature near-duplicate"}
# A pair of look-alikes across classes: a hint, not an accusation (one close pair says little about which label,
# if any, is wrong). Label mistakes are confident learning's (precompute.label_issues): LABEL_ISSUE.
LABELS_DIFFER = "look alike, labels differ"
LABEL_ISSUE = "label probably wrong"


def label_issue_text(issue: dict[str, Any]) -> str:
    """A cleanlab flag in words: ``label probably wrong (suggested: hats, confidence 0.93)``."""
    return f"{LABEL_ISSUE} (suggested: {issue['suggested']}, confidence {float(issue['confidence']):.2f})"


def label_issues_by_id(store: Store, dataset: str) -> dict[int, dict[str, Any]]:
    """Image id -> its label issue (``store.label_issues`` row); empty when none were computed or readable."""
    try:
        issues = store.label_issues(dataset)
    except MissingArtifact:
        return {}
    return {} if issues is None else {int(row["id"]): row for row in issues.to_dict("records")}
PAIR_COLUMNS = ["a", "b", "kind", "cross_class", "phash_distance", "distance", "label_a", "label_b"]


def duplicate_pairs(
    store: Store, dataset: str, model: str | None = None, layer: str | None = None, involving: int | None = None
) -> pd.DataFrame:
    """The duplicate pairs of a dataset and of one layer's features, one row per pair and kind of evidence.

    Kinds: ``exact`` (same pixels) and ``near`` (perceptual hashes within the dataset's threshold) from
    ``store.duplicates``; ``feature`` (far closer in this layer's features than its typical nearest
    neighbour) from ``store.layer_duplicates``. A pair found both ways has a row for each. ``involving``
    keeps only the pairs of one image (selected before anything else: the search view's badges need no more).

    Returns
    -------
    pd.DataFrame
        Columns :data:`PAIR_COLUMNS`: a, b (row ids, a < b), kind, cross_class (the two images carry
        different labels), phash_distance (hash pairs), distance (feature pairs), label_a, label_b (None
        unlabeled). Cross-class pairs first (the likely label mistakes), then exact, near, feature, then
        closest first. Empty when the artifacts hold no duplicate tables (older runs). MissingArtifact when
        the index names a duplicate table whose file is gone.
    """
    parts = []
    hashed = store.duplicates(dataset)
    if hashed is not None:
        parts.append(hashed.assign(distance=np.nan))
    if model is not None and layer is not None:
        features = store.layer_duplicates(dataset, model, layer)
        if features is not None:
            parts.append(features.assign(kind="feature", phash_distance=np.nan))
    if involving is not None:
        parts = [part[(part["a"] == involving) | (part["b"] == involving)] for part in parts]
    parts = [part for part in parts if len(part)]
    if not parts:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    pairs = pd.concat([part.reindex(columns=PAIR_COLUMNS[:6]) for part in parts], ignore_index=True)
    pairs["a"], pairs["b"] = pairs["a"].astype(int), pairs["b"].astype(int)
    pairs["cross_class"] = pairs["cross_class"].eq(True)  # absent (NaN) is not a cross-class pair
    labels = store.labels(dataset)
    pairs["label_a"] = None if labels is None else labels[pairs["a"].to_numpy()]
    pairs["label_b"] = None if labels is None else labels[pairs["b"].to_numpy()]
    strength = pairs["kind"].map({kind: i for i, kind in enumerate(DUPLICATE_KINDS)})
    pairs = pairs.assign(_cross=~pairs["cross_class"], _strength=strength)
    pairs = pairs.sort_values(["_cross", "_strength", "phash_distance", "distance", "a", "b"], kind="stable")
    return pairs.drop(columns=["_cross", "_strength"]).reset_index(drop=True)


def group_pairs(pairs: pd.DataFrame) -> list[list[dict[str, Any]]]:
    """The rows of ``duplicate_pairs`` grouped by pair (a, b), in the table's order: one list per pair."""
    groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for row in pairs.to_dict("records"):
        groups.setdefault((int(row["a"]), int(row["b"])), []).append(row)
    return list(groups.values())


def duplicates_of(pairs: pd.DataFrame, image_id: int) -> dict[int, list[dict[str, Any]]]:
    """The images that form a duplicate pair with ``image_id``: partner id -> that pair's rows (strongest first)."""
    partners: dict[int, list[dict[str, Any]]] = {}
    if pairs.empty:
        return partners
    mine = pairs[(pairs["a"] == image_id) | (pairs["b"] == image_id)]
    for row in sorted(mine.to_dict("records"), key=lambda r: list(DUPLICATE_KINDS).index(r["kind"])):
        partner = int(row["b"] if row["a"] == image_id else row["a"])
        partners.setdefault(partner, []).append(row)
    return partners
