"""What a rerun may reuse: the rules that compare a stored index entry with what this run would compute.

Each rule reads only the index (``precompute.schema`` records) and returns True when the stored entry was made
with the same inputs and parameters; the pipeline then also checks the entry's files on disk (missing, damaged)
before it skips the work, and recomputes when ``--force`` says so. An entry written by an older release that
lacks a field a rule needs (no ``ties``, no ``bootstrap``) is not current: the rerun brings it up to date. So is
one whose stored scores lack a score of today's registry (``precompute.scores.SCORE_NAMES``): adding a score
rescores every stored run.

The chain of invalidation: a changed dataset folder (``fingerprint``) rescans the images and drops every model;
a changed ``ModelConfig`` re-extracts the model's features; new features redo every product of their layer (UMAP,
rankings, scores, feature duplicates) and the model's TF.js export; each product is also redone on its own when its
parameters change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from precompute.schema import (
    BaselineParams,
    BootstrapParams,
    DatasetEntry,
    LayerDuplicates,
    LayerEntry,
    MetricEntry,
    ModelConfig,
    ModelEntry,
    UmapParams,
)
from precompute.scores import cutoffs_within, score_columns

# How the stored scores treat tied distances; entries without it (older runs) are rescored.
TIE_SCORING = "expected over the orders of tied results (McSherry & Najork 2008)"


def dataset_is_current(entry: DatasetEntry | None, fingerprint: str) -> bool:
    """The stored manifest describes the folder as it is now (same files, sizes, times; contents with hashing)."""
    return entry is not None and entry.fingerprint == fingerprint


def scores_are_complete(summary: Mapping[str, Any] | None, ks: Sequence[int]) -> bool:
    """A stored summary holds every registered score at cut-offs ``ks`` (``scores.score_columns``): a score added to
    ``scores.SCORE_NAMES`` since the run makes it stale."""
    return summary is not None and set(score_columns(ks)) <= set(summary)


def baseline_is_current(entry: DatasetEntry, params: BaselineParams) -> bool:
    """The random baseline was computed at the same depth, cut-offs and image count, with every registered score."""
    return (entry.baseline is not None and entry.baseline.params == params
            and scores_are_complete(entry.baseline.summary, params.ks))


def model_is_current(entry: ModelEntry | None, config: ModelConfig) -> bool:
    """The model's features were extracted with the same backbone, weights, seed, input size, pooling, variant."""
    return entry is not None and entry.config == config


def tfjs_is_current(entry: ModelEntry | None, variants: tuple[str, ...], version: int) -> bool:
    """The model's TF.js export was written by this exporter version with exactly these variants, or was found
    impossible by this version (a reason, no variants). The files themselves are checked by the caller; new
    features (a changed config, re-extracted layers) always redo it."""
    if entry is None or entry.tfjs is None or entry.tfjs.version != version:
        return False
    if entry.tfjs.reason and not entry.tfjs.variant_bytes:
        return True
    return set(entry.tfjs.variant_bytes) == set(variants)


def umap_is_current(entry: LayerEntry, params: UmapParams) -> bool:
    """The layer's 2-D layout was computed with the same UMAP parameters and seed (however its neighbours were
    found: ``UmapParams.neighbors`` is a record, not a parameter)."""
    done = entry.umap_params
    return done is not None and dataclasses.replace(done, neighbors=None) == dataclasses.replace(params, neighbors=None)


def metric_is_current(done: MetricEntry | None, *, depth: int, search: str, labeled: bool,
                      bootstrap: BootstrapParams, ann_params: dict[str, Any] | None = None) -> bool:
    """A metric's rankings (and scores) were made at the same depth, by the same search, with today's tie
    scoring, the same bootstrap for the intervals and every registered score (labeled datasets) and the same FAISS
    parameters (approximate search). The files themselves are checked by the caller."""
    if done is None:
        return False
    scored = not labeled or (done.bootstrap == bootstrap and scores_are_complete(done.summary, cutoffs_within(depth)))
    return (done.top_n == depth and done.search == search and done.ties == TIE_SCORING and scored
            and (ann_params is None or done.ann_params == ann_params))


def feature_duplicates_are_current(done: LayerDuplicates | None, metric: str, ratio: float, sigmas: float) -> bool:
    """The layer's feature near-duplicates were found under the same metric and thresholds."""
    return done is not None and (done.metric, done.ratio, done.sigmas) == (metric, ratio, sigmas)


__all__ = ["TIE_SCORING", "baseline_is_current", "dataset_is_current", "feature_duplicates_are_current",
           "metric_is_current", "model_is_current", "scores_are_complete", "tfjs_is_current", "umap_is_current"]
