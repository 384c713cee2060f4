"""The app on a dataset big enough for an approximate index: stored FAISS index used for uploads and deep k."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from playground.ranking import feature_results, query_results
from playground.store import Store, clear_caches
from precompute.ann import AnnIndex
from precompute.pipeline import run
from tests.playground_fixtures import make_shapes_dataset

pytestmark = pytest.mark.slow  # a pipeline run of its own (FAISS indexes, UMAP) besides the shared fixture


@pytest.fixture(scope="module")
def indexed_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("ann-app")
    dataset = make_shapes_dataset(base / "shapes", n_per_class=12)
    # exact_search_max=10 < 36 images: the run stores a FAISS index per metric, as above 20,000 by default.
    run(dataset, base / "artifacts", models=["pixels"], metrics=("cosine", "euclidean"), top_n=10,
        progress=False, exact_search_max=10)
    clear_caches()
    return base / "artifacts"


def test_store_loads_the_stored_index(indexed_root: Path) -> None:
    store = Store(indexed_root)
    index = store.ann_index("shapes", "pixels", "pixels_16x16", "cosine")
    assert isinstance(index, AnnIndex)
    assert store.ann_index("shapes", "pixels", "pixels_16x16", "cosine") is index  # loaded once, cached


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_upload_and_deep_queries_go_through_the_index_and_match_exact(indexed_root: Path, metric: str) -> None:
    store = Store(indexed_root)
    features = np.asarray(store.features("shapes", "pixels", "pixels_16x16"))
    query = features[3] + 0.01
    approx = feature_results(store, "shapes", "pixels", "pixels_16x16", metric, query, 8)
    from precompute.similarity import search_exact as exact_search

    ids, _ = exact_search(query, features, metric, top_n=8)
    assert [r.image_id for r in approx][:5] == ids[0][:5].tolist()
    deep = query_results(store, "shapes", "pixels", "pixels_16x16", metric, 3, 20)  # deeper than the 10 stored
    assert len(deep) == 20 and 3 not in [r.image_id for r in deep]
    distances = [r.distance for r in deep]
    assert distances == sorted(distances)
