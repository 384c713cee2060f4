"""The rules a rerun uses to reuse stored work (precompute.staleness), on the v1 sample index."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from precompute import scores
from precompute.schema import ArtifactIndex, BaselineParams, BootstrapParams, TfjsExport, UmapParams
from precompute.scores import cutoffs_within, score_columns
from precompute.staleness import (
    TIE_SCORING,
    baseline_is_current,
    dataset_is_current,
    feature_duplicates_are_current,
    metric_is_current,
    model_is_current,
    scores_are_complete,
    tfjs_is_current,
    umap_is_current,
)
from precompute.stats import bootstrap_params

SAMPLE = Path(__file__).parent / "data" / "index-v1.json"


def _entry():
    """The sample's dataset, its stored summaries completed with every registered score (the sample keeps two)."""
    entry = ArtifactIndex.from_dict(json.loads(SAMPLE.read_text())).datasets["colours"]
    entry.baseline.summary = _complete(entry.baseline.summary, entry.baseline.params.ks)
    for model in entry.models.values():
        for layer in model.layers.values():
            for metric in layer.metrics.values():
                metric.summary = _complete(metric.summary, cutoffs_within(metric.top_n))
    return entry


def _complete(summary: dict, ks) -> dict:
    return {**{column: 0.5 for column in score_columns(ks)}, **summary}


def test_a_stored_metric_is_reused_only_with_the_same_depth_search_ties_and_bootstrap() -> None:
    metric = _entry().models["pixels"].layers["pixels_8x8"].metrics["cosine"]
    same = {"depth": 10, "search": "exact", "labeled": True, "bootstrap": BootstrapParams.from_dict(bootstrap_params())}
    assert metric.ties == TIE_SCORING and metric_is_current(metric, **same)
    assert not metric_is_current(None, **same)
    assert not metric_is_current(metric, **{**same, "depth": 20})
    assert not metric_is_current(metric, **{**same, "search": "faiss-hnsw"})
    assert not metric_is_current(metric, **{**same, "ann_params": {"M": 32}})  # approximate: its parameters too
    other_seed = BootstrapParams.from_dict(bootstrap_params(seed=1))
    assert not metric_is_current(metric, **{**same, "bootstrap": other_seed})
    assert metric_is_current(metric, **{**same, "bootstrap": other_seed, "labeled": False})  # no scores to redo
    assert not metric_is_current(dataclasses.replace(metric, ties=None), **same)  # an older run: rescored


def test_dataset_model_layer_and_baseline_rules() -> None:
    entry = _entry()
    assert dataset_is_current(entry, entry.fingerprint) and not dataset_is_current(entry, "another folder")
    assert not dataset_is_current(None, entry.fingerprint)
    model = entry.models["pixels"]
    assert model_is_current(model, dataclasses.replace(model.config))
    assert not model_is_current(model, dataclasses.replace(model.config, input_size=64))
    assert not model_is_current(model, dataclasses.replace(model.config, quantize="int8"))
    layer = model.layers["pixels_8x8"]
    assert umap_is_current(layer, UmapParams(n_neighbors=5, min_dist=0.1, metric="euclidean", seed=0))
    assert not umap_is_current(layer, UmapParams(n_neighbors=15, min_dist=0.1, metric="euclidean", seed=0))
    assert feature_duplicates_are_current(layer.duplicates, "cosine", 0.1, 3.0)
    assert not feature_duplicates_are_current(layer.duplicates, "cosine", 0.25, 3.0)
    assert not feature_duplicates_are_current(None, "cosine", 0.1, 3.0)
    assert baseline_is_current(entry, BaselineParams(depth=10, ks=[1, 5, 10], n_images=18))
    assert not baseline_is_current(entry, BaselineParams(depth=15, ks=[1, 5, 10, 15], n_images=18))


def test_a_stored_tfjs_export_is_reused_only_from_the_same_exporter_with_the_same_variants() -> None:
    model = _entry().models["pixels"]
    written = dataclasses.replace(model, tfjs=TfjsExport(variant_bytes={"float32": 40, "uint8": 10}, version=2))
    assert tfjs_is_current(written, ("uint8", "float32"), 2)  # the variants as a set: their order does not matter
    assert not tfjs_is_current(written, ("float32",), 2)  # fewer variants asked for
    assert not tfjs_is_current(written, ("float32", "float16", "uint8"), 2)  # more
    assert not tfjs_is_current(written, ("float32", "uint8"), 3)  # another exporter version
    assert not tfjs_is_current(None, ("float32",), 2)  # a model not stored yet
    assert not tfjs_is_current(dataclasses.replace(model, tfjs=None), ("float32",), 2)  # a run from before exports
    unversioned = dataclasses.replace(model, tfjs=TfjsExport(variant_bytes={"float32": 40}))
    assert not tfjs_is_current(unversioned, ("float32",), 2)
    # Found impossible (a layer TF.js cannot load): current for any variants until the exporter changes.
    impossible = dataclasses.replace(model, tfjs=TfjsExport(reason="a layer TF.js cannot load", version=2))
    assert tfjs_is_current(impossible, ("float32",), 2) and tfjs_is_current(impossible, ("float16", "uint8"), 2)
    assert not tfjs_is_current(impossible, ("float32",), 3)


def test_a_stored_run_without_a_registered_score_is_stale(monkeypatch) -> None:
    """Adding a score to the registry rescores every stored run: its metrics and its random baseline."""
    entry = _entry()
    metric = entry.models["pixels"].layers["pixels_8x8"].metrics["cosine"]
    same = {"depth": 10, "search": "exact", "labeled": True, "bootstrap": BootstrapParams.from_dict(bootstrap_params())}
    params = BaselineParams(depth=10, ks=[1, 5, 10], n_images=18)
    assert metric_is_current(metric, **same) and baseline_is_current(entry, params)

    monkeypatch.setitem(scores.SCORE_NAMES, "mrr", "Mean reciprocal rank of the first same-label result.")
    assert not metric_is_current(metric, **same) and not baseline_is_current(entry, params)
    assert metric_is_current(metric, **{**same, "labeled": False})  # unlabeled: no scores stored, none to add
    monkeypatch.undo()

    for column in ("ap", "ndcg@5"):  # a score family, or a cut-off of one, missing from what the run stored
        stored = dataclasses.replace(metric, summary={k: v for k, v in metric.summary.items() if k != column})
        assert not metric_is_current(stored, **same), column
    assert not metric_is_current(dataclasses.replace(metric, summary=None), **same)
    assert scores_are_complete({**metric.summary, "n_queries": 18.0}, [1, 5, 10])
    assert not scores_are_complete(metric.summary, [1, 5, 10, 15])  # a deeper run stores precision@15 too
    raw = ArtifactIndex.from_dict(json.loads(SAMPLE.read_text())).datasets["colours"]  # rwp@15 and ap only
    assert not metric_is_current(raw.models["pixels"].layers["pixels_8x8"].metrics["cosine"], **same)
    assert not baseline_is_current(raw, params)
