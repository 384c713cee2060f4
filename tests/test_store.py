"""The playground's read-only store: the index in order, cached read-only arrays, missing and damaged files, and
the duplicate and label-check tables."""

from __future__ import annotations

import pandas as pd
import pytest

from playground.state import resolve_selection
from playground.store import MissingArtifact, Store
from playground.tables import summary_table
from tests.helpers import text_of

PIXELS, LITE = "pixels", "efficientnet-lite0-random"


def test_store_reads_the_index_in_order(store):
    assert set(store.datasets()) == {"shapes", "shapes-flat"}
    assert store.models("shapes") == [PIXELS, LITE]
    assert store.layers("shapes", PIXELS) == ["pixels_8x8", "pixels_16x16", "pixels_32x32"]
    assert store.all_metrics("shapes") == ["cosine", "euclidean", "manhattan", "chebyshev"]
    assert store.is_labeled("shapes") and not store.is_labeled("shapes-flat")


def test_store_arrays_are_cached_and_read_only(store):
    first = store.features("shapes", PIXELS, "pixels_8x8")
    assert store.features("shapes", PIXELS, "pixels_8x8") is first
    assert first.shape == (24, 192)
    with pytest.raises(ValueError):
        first[0, 0] = 1.0
    indices, _ = store.neighbors("shapes", PIXELS, "pixels_8x8", "cosine")
    assert not indices.flags.writeable


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.dataset("nope"),
        lambda s: s.model("shapes", "vgg16"),
        lambda s: s.layer("shapes", PIXELS, "block5_conv3"),
        lambda s: s.neighbors("shapes", PIXELS, "pixels_8x8", "minkowski-p3"),
        lambda s: s.features("shapes", None, None),
    ],
)
def test_store_missing_combinations_raise_missing_artifact(store, call):
    with pytest.raises(MissingArtifact):
        call(store)


def test_store_missing_file_is_missing_artifact(artifacts_copy):
    (artifacts_copy / "shapes" / PIXELS / "pixels_8x8" / "umap.npy").unlink()
    with pytest.raises(MissingArtifact, match="umap.npy"):
        Store(artifacts_copy).umap("shapes", PIXELS, "pixels_8x8")


def test_store_of_an_empty_root(tmp_path):
    store = Store(tmp_path / "nothing")
    assert store.datasets() == []
    sel = resolve_selection(store, {})
    assert sel.dataset is None and sel.notices


def test_store_reads_duplicate_tables(trust):
    store, pair = trust
    hashed = store.duplicates("shapes")
    assert list(hashed.columns) == ["a", "b", "kind", "phash_distance", "cross_class"]
    assert store.duplicates("shapes") is hashed  # cached
    features = store.layer_duplicates("shapes", PIXELS, "pixels_8x8")
    assert features["b"].tolist() == [pair["first"], pair["second"]]
    assert store.layer_duplicates("shapes", PIXELS, "pixels_16x16") is None  # no entry for that layer


def test_the_pipeline_entries_are_read(store):
    """What precompute itself writes (no hand-made entries): tables with the documented columns, intervals."""
    from playground.views.search import render_duplicates

    assert {"a", "b", "kind", "phash_distance", "cross_class"} <= set(store.duplicates("shapes").columns)
    assert {"a", "b", "distance", "cross_class"} <= set(store.layer_duplicates("shapes", LITE, "top_conv").columns)
    table = summary_table(store, "shapes")
    assert table["rwp@15 low"].notna().all() and (table["rwp@15 low"] <= table["rwp@15 high"]).all()
    sel = resolve_selection(store, {"dataset": "shapes-flat"})
    assert text_of(render_duplicates(store, sel)[0]).startswith("Duplicates: ")


def test_store_without_duplicate_entries_returns_none(old_store):
    assert old_store.duplicates("shapes") is None
    assert old_store.layer_duplicates("shapes", PIXELS, "pixels_8x8") is None


def test_store_checks_duplicate_files(trust, artifacts_copy):
    from precompute import artifacts as art

    store, _ = trust
    art.write_table(art.duplicates_path(artifacts_copy, "shapes"), pd.DataFrame({"a": [0], "b": [24]}))
    with pytest.raises(art.ArtifactError, match="outside 0..23"):
        store.duplicates("shapes")
    art.layer_duplicates_path(artifacts_copy, "shapes", PIXELS, "pixels_8x8").unlink()
    with pytest.raises(MissingArtifact, match="duplicates.parquet"):
        store.layer_duplicates("shapes", PIXELS, "pixels_8x8")
