"""What makes the numbers trustworthy: one search engine, duplicates found, baselines per depth, intervals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from precompute import artifacts as art
from precompute.feature_duplicates import FEATURE_DUPLICATE_RATIO
from precompute.pipeline import ModelRequest, Run, RunConfig
from precompute.schema import ArtifactIndex
from precompute.similarity import METRICS as SIMILARITY_METRICS
from precompute.similarity import metric_name
from precompute.stats import bootstrap_ci
from tests.helpers import make_dataset

METRICS = tuple(metric_name(name) for name in SIMILARITY_METRICS)  # every registered metric (minkowski-p3)


def _run(dataset: Path, out: Path, **options) -> None:
    settings = {"models": [ModelRequest("pixels", "auto")], "metrics": ("cosine", "euclidean"), "top_n": 8,
                "progress": False, "umap_neighbors": 5}
    Run(RunConfig(dataset, out, **(settings | options))).execute()


@pytest.fixture(scope="module")
def duplicated_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Colour classes with planted duplicates: one byte copy within a class, one re-encoded copy across."""
    base = tmp_path_factory.mktemp("trust")
    dataset = make_dataset(base / "colours")
    shutil.copy(dataset / "red" / "red-0.png", dataset / "red" / "red-copy.png")
    Image.open(dataset / "green" / "green-1.png").save(dataset / "blue" / "green-1-mislabelled.bmp")
    out = base / "artifacts"
    _run(dataset, out, metrics=METRICS)
    return dataset, out


@pytest.mark.slow
def test_duplicates_are_found_listed_and_flagged_across_classes(duplicated_run: tuple[Path, Path]) -> None:
    _, out = duplicated_run
    entry = art.read_index(out).to_dict()["datasets"]["colours"]
    manifest = art.read_table(art.manifest_path(out, "colours"))
    summary = entry["duplicates"]
    assert (summary["n_exact"], summary["n_cross_class"]) == (2, 1)
    pairs = art.read_table(out / summary["path"])
    named = {(manifest.path[a], manifest.path[b]): cross for a, b, cross in pairs[["a", "b", "cross_class"]].values}
    assert named == {("blue/green-1-mislabelled.bmp", "green/green-1.png"): True,
                     ("red/red-0.png", "red/red-copy.png"): False}
    report = json.loads(art.report_path(out, "colours").read_text())
    mistakes = [p for p in report["duplicates"]["pairs"] if p["labels_differ"]]
    assert [(p["a"], p["b"]) for p in mistakes] == [("blue/green-1-mislabelled.bmp", "green/green-1.png")]
    # Per layer: the planted pairs are at distance 0, far below the typical nearest neighbour.
    for layer in entry["models"]["pixels"]["layers"].values():
        found = layer["duplicates"]
        assert found["metric"] == "cosine" and found["ratio"] == FEATURE_DUPLICATE_RATIO
        assert found["threshold"] == pytest.approx(min(FEATURE_DUPLICATE_RATIO * found["typical_distance"],
                                                       found["outlier_bound"]))
        layer_pairs = art.read_table(out / found["path"])
        assert {tuple(p) for p in pairs[["a", "b"]].values} <= {tuple(p) for p in layer_pairs[["a", "b"]].values}
        assert found["n_cross_class"] >= 1


@pytest.mark.slow
def test_stored_rankings_equal_the_app_search_path_for_every_metric(duplicated_run: tuple[Path, Path]) -> None:
    """A stored feature vector searched as the app searches (upload path, nothing excluded) gives the stored
    ranking: same ids in the same order, distances within 1e-6, for every query and metric."""
    from playground.ranking import feature_results, query_results
    from playground.store import Store, clear_caches

    _, out = duplicated_run
    clear_caches()
    store = Store(out)
    for layer in store.layers("colours", "pixels"):
        features = np.asarray(store.features("colours", "pixels", layer))
        for metric in METRICS:
            indices, distances = store.neighbors("colours", "pixels", layer, metric)
            depth = indices.shape[1]
            for query in range(len(features)):
                results = feature_results(store, "colours", "pixels", layer, metric, features[query], depth + 1)
                # The query finds itself (distance 0); without it, the rest must be the stored ranking.
                rest = [r for r in results if r.image_id != query][:depth]
                assert [r.image_id for r in rest] == indices[query].tolist(), (layer, metric, query)
                np.testing.assert_allclose([r.distance for r in rest], distances[query], rtol=0, atol=1e-6)
                deep = query_results(store, "colours", "pixels", layer, metric, query, depth + 3)  # beyond storage
                assert [r.image_id for r in deep][:depth] == indices[query].tolist()


def test_intervals_are_stored_seeded_and_bracket_the_mean(playground_artifacts: Path) -> None:
    out = playground_artifacts  # a real run's, shared with the playground tests (no pipeline run of its own)
    layer = art.read_index(out).to_dict()["datasets"]["shapes"]["models"]["pixels"]["layers"]["pixels_16x16"]
    result = layer["metrics"]["cosine"]
    assert result["bootstrap"]["level"] == 0.95 and result["bootstrap"]["seed"] == 0
    scores = art.read_table(out / result["scores"])
    for name, (low, high) in result["summary_ci"].items():
        assert low <= result["summary"][name] + 1e-9 and result["summary"][name] <= high + 1e-9, name
    again = bootstrap_ci(scores["rwp@15"].to_numpy(), seed=0)
    assert result["summary_ci"]["rwp@15"] == pytest.approx(again.tolist(), abs=1e-5)


@pytest.mark.slow
def test_kept_resample_counts_give_the_intervals_of_fresh_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bootstrap's counts are drawn once per (queries, resamples, seed) and kept: the intervals are those of
    draws made afresh (kept as uint8, or too large to keep), with NaN scores and one, two and many queries."""
    from precompute import stats

    rng = np.random.default_rng(7)
    for n in (1, 2, 31, 2500):
        values = rng.random((n, 3))
        values[rng.random((n, 3)) < 0.2] = np.nan
        stats._WEIGHTS.clear()
        monkeypatch.setattr(stats, "_WEIGHTS_MAX_BYTES", 0)  # drawn afresh on each call, as before
        fresh = [stats.bootstrap_ci(values, n_resamples=300, seed=seed) for seed in (0, 1)]
        assert not stats._WEIGHTS
        monkeypatch.setattr(stats, "_WEIGHTS_MAX_BYTES", 10**9)
        for _ in range(2):  # the first call draws and keeps, the second reuses
            kept = [stats.bootstrap_ci(values, n_resamples=300, seed=seed) for seed in (0, 1)]
            for a, b in zip(fresh, kept, strict=True):
                np.testing.assert_array_equal(a, b)
        assert len(stats._WEIGHTS) == stats._WEIGHTS_KEPT
        assert all(chunk.dtype == np.uint8 for chunks in stats._WEIGHTS.values() for chunk in chunks)
    stats._WEIGHTS.clear()


def test_the_random_baseline_follows_the_stored_depth(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "colours")
    out = tmp_path / "artifacts"
    _run(dataset, out, top_n=15)
    first = art.read_index(out).to_dict()["datasets"]["colours"]["baseline"]
    assert first["params"] == {"depth": 15, "ks": [1, 5, 10, 15], "n_images": 18}
    _run(dataset, out, top_n=5)
    second = art.read_index(out).to_dict()["datasets"]["colours"]["baseline"]
    assert second["params"] == {"depth": 5, "ks": [1, 5], "n_images": 18}
    assert second["summary"]["ap"] != first["summary"]["ap"]  # AP depends on the depth
    stored = art.read_table(out / second["path"])
    assert "precision@10" not in stored.columns
    metric = art.read_index(out).to_dict()["datasets"]["colours"]["models"]["pixels"]["layers"]["pixels_8x8"]["metrics"]
    assert metric["cosine"]["top_n"] == 5  # rankings and baseline share their depth


@pytest.mark.slow
def test_an_older_run_without_hashes_or_tie_scores_is_brought_up_to_date(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "colours", per_class=4)
    out = tmp_path / "artifacts"
    _run(dataset, out)
    # Make it look like a run of the previous release: no hash columns, no duplicates, no tie scoring.
    path = art.manifest_path(out, "colours")
    art.write_table(path, art.read_table(path).drop(columns=["content_hash", "phash"]))

    def downgrade(index: ArtifactIndex) -> None:
        entry = index.datasets["colours"]
        entry.duplicates = None
        for layer in entry.models["pixels"].layers.values():
            for result in layer.metrics.values():
                result.ties = None
    art.update_index(out, downgrade)
    _run(dataset, out)
    entry = art.read_index(out).to_dict()["datasets"]["colours"]
    assert "duplicates" in entry and "content_hash" in art.read_table(path).columns
    assert all(result.get("ties") for layer in entry["models"]["pixels"]["layers"].values()
               for result in layer["metrics"].values())


@pytest.mark.slow
def test_scores_do_not_depend_on_the_order_of_the_class_folders(tmp_path: Path) -> None:
    """The same images under class names that sort the other way round score the same, class for class."""
    first = make_dataset(tmp_path / "one")
    second = tmp_path / "two"
    renames = {"red": "z-red", "green": "y-green", "blue": "a-blue"}  # reverses the manifest's class order
    for old, new in renames.items():
        shutil.copytree(first / old, second / new)
    for folder in (first, second):
        _run(folder, tmp_path / "artifacts", metrics=("chebyshev", "manhattan"), top_n=6)
    index = art.read_index(tmp_path / "artifacts").to_dict()["datasets"]
    for layer in index["one"]["models"]["pixels"]["layers"]:
        for metric in ("chebyshev", "manhattan"):
            one = art.read_table(tmp_path / "artifacts" / index["one"]["models"]["pixels"]["layers"][layer]["metrics"]
                                 [metric]["scores"]).groupby("label").mean(numeric_only=True)
            two = art.read_table(tmp_path / "artifacts" / index["two"]["models"]["pixels"]["layers"][layer]["metrics"]
                                 [metric]["scores"]).groupby("label").mean(numeric_only=True)
            two.index = pd.Index([{v: k for k, v in renames.items()}[name] for name in two.index], name="label")
            pd.testing.assert_frame_equal(one.sort_index(), two.sort_index(), rtol=1e-9, atol=1e-12)
