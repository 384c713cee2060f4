"""Unit tests of the playground's logic: the store, selections, rankings, uploads, tables, the thumbnail route."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from playground import uploads
from playground.callbacks.controller import control_options, update_selection
from playground.ranking import feature_results, majority_label, query_results, query_scores
from playground.state import DEFAULT_DATASET, Selection, parse_url, resolve_selection, to_url
from playground.store import MissingArtifact, Store
from playground.tables import class_breakdown, cost_table, summary_table
from playground.views.compare import render_compare
from playground.views.embeddings import render_embeddings, tooltip
from playground.views.search import grid_page, render_query_panel, render_results
from playground.views.upload import render_upload
from tests.helpers import add_trust_entries, data_url, find_class, strip_trust_entries, text_of
from tests.playground_fixtures import draw_shape, photo_png, png_bytes

PIXELS, LITE = "pixels", "efficientnet-lite0-random"


@pytest.fixture
def store(playground_artifacts) -> Store:
    return Store(playground_artifacts)


# ------------------------------------------------------------------------------------------------ store
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


# -------------------------------------------------------------------------------------------- selection
def test_resolve_selection_defaults_to_the_best_layer(store):
    sel = resolve_selection(store, {"dataset": "shapes", "model": LITE})
    best = max(
        store.layers("shapes", LITE),
        key=lambda layer: store.metric("shapes", LITE, layer, "cosine").summary["rwp@15"],
    )
    assert (sel.metric, sel.layer, sel.query, sel.k, sel.notices) == ("cosine", best, 0, 15, [])


def test_resolve_selection_replaces_unknown_names_with_a_notice(store):
    sel = resolve_selection(
        store, {"dataset": "shapes", "model": "vgg16", "layer": "x", "metric": "cosine", "query": "999", "k": "500"}
    )
    assert sel.model in store.models("shapes")
    assert sel.query == 0 and sel.k == 50
    assert any("vgg16" in n for n in sel.notices) and any("999" in n for n in sel.notices)


def test_url_round_trip(store):
    sel = resolve_selection(store, {"view": "compare", "dataset": "shapes", "model": LITE, "query": 7, "k": 9})
    pathname, search = to_url(sel)
    assert pathname == "/compare"
    again = resolve_selection(store, parse_url(pathname, search))
    assert again.to_dict() == sel.to_dict()


def test_switching_model_keeps_dataset_and_query_and_picks_a_layer(store):
    sel = resolve_selection(store, {"dataset": "shapes", "model": PIXELS, "query": 5})
    controls = {"model": LITE}
    switched = update_selection(store, "model-select", "/search", "", controls, None, sel.to_dict())
    assert (switched.dataset, switched.model, switched.query) == ("shapes", LITE, 5)
    assert switched.layer in store.layers("shapes", LITE)
    options = control_options(store, switched)
    assert [o["value"] for o in options["layer"]] == store.layers("shapes", LITE)


def test_switching_dataset_resets_the_query(store):
    sel = resolve_selection(store, {"dataset": "shapes", "query": 20})
    switched = update_selection(store, "dataset-select", "/", "", {"dataset": "shapes-flat"}, None, sel.to_dict())
    assert (switched.dataset, switched.query, switched.labeled) == ("shapes-flat", 0, False)


def test_grid_paging_opens_the_page_of_the_query(store, monkeypatch):
    monkeypatch.setattr("playground.views.search.PAGE_SIZE", 10)
    sel = resolve_selection(store, {"dataset": "shapes", "query": 23})
    ids, page, n_pages = grid_page(store, sel, None, None)
    assert (page, n_pages, ids) == (2, 3, [20, 21, 22, 23])
    ids, page, _ = grid_page(store, sel, "square", None)
    assert ids == list(range(8, 16)) and page == 0


# --------------------------------------------------------------------------------------------- rankings
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


def test_unlabeled_dataset_hides_scores_and_still_searches(store):
    sel = resolve_selection(store, {"dataset": "shapes-flat"})
    results = query_results(store, sel.dataset, sel.model, sel.layer, sel.metric, 1, 3)
    assert len(results) == 3 and all(r.same_class is None and r.label is None for r in results)
    assert query_scores(store, sel.dataset, sel.model, sel.layer, sel.metric, 1) is None
    assert "no labels" in text_of(render_query_panel(store, sel))
    assert len(find_class(render_results(store, sel), "result-card")) == 5  # k capped by what exists: 5 others


def test_views_show_missing_combinations_as_messages(artifacts_copy):
    index_path = artifacts_copy / "index.json"
    index = json.loads(index_path.read_text())
    del index["datasets"]["shapes"]["models"][PIXELS]["layers"]["pixels_8x8"]["metrics"]["chebyshev"]
    index_path.write_text(json.dumps(index))
    (artifacts_copy / "shapes" / PIXELS / "pixels_8x8" / "umap.npy").unlink()
    store = Store(artifacts_copy)
    sel = resolve_selection(store, {"dataset": "shapes", "model": PIXELS, "layer": "pixels_8x8", "metric": "chebyshev"})
    assert sel.metric == "chebyshev"  # computed elsewhere in the dataset, so selectable
    assert "not computed" in text_of(render_results(store, sel)).lower()
    assert "chebyshev (not computed)" in [o["label"] for o in control_options(store, sel)["metric"]]
    figure, info = render_embeddings(store, sel)
    assert "umap.npy" in text_of(info)
    out = render_compare(store, sel, "rwp@15")
    assert out["table"] is not None  # the rest of the dataset still compares


def test_majority_label():
    from playground.ranking import Result

    results = [Result(i + 1, i, label, 0.0, 1.0, None) for i, label in enumerate(["a", "b", "b", "a", "c"])]
    assert majority_label(results) == ("a", 2)


# ---------------------------------------------------------------------------------------------- uploads
@pytest.mark.parametrize(
    "data, reason",
    [
        (b"this is not an image at all", "not an image"),
        (b"", "empty"),
    ],
)
def test_upload_errors_are_messages(data, reason):
    with pytest.raises(uploads.UploadError, match=reason):
        uploads.prepare_image(data, 32)


def test_truncated_upload_is_a_message():
    data = photo_png()
    with pytest.raises(uploads.UploadError, match="truncated|corrupt"):
        uploads.prepare_image(data[: len(data) // 2], 32)


def test_too_big_upload_is_refused_before_decoding():
    with pytest.raises(uploads.UploadError, match="limit"):
        uploads.decode_contents(data_url(b"\0" * (uploads.MAX_UPLOAD_BYTES + 10)))
    with pytest.raises(uploads.UploadError, match="base64"):
        uploads.decode_contents("data:image/png;base64,@@@@")


def test_huge_pixel_count_is_refused(monkeypatch):
    monkeypatch.setattr(uploads, "MAX_UPLOAD_PIXELS", 100)
    with pytest.raises(uploads.UploadError, match="pixels"):
        uploads.prepare_image(png_bytes(Image.new("RGB", (20, 20))), 32)


@pytest.mark.parametrize("mode", ["CMYK", "I;16", "RGBA", "L", "P"])
def test_odd_image_modes_work(mode):
    rgb = draw_shape("circle", (200, 30, 30), np.random.default_rng(0), size=40)
    if mode == "I;16":
        image = Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
        data = png_bytes(image)
    elif mode == "CMYK":
        buffer = io.BytesIO()
        rgb.convert("CMYK").save(buffer, format="JPEG")
        data = buffer.getvalue()
    else:
        image = rgb.convert(mode)
        if mode == "RGBA":
            image.putalpha(128)
        data = png_bytes(image)
    array = uploads.prepare_image(data, 32)
    assert array.shape == (32, 32, 3) and array.dtype == np.float32


def test_render_upload_of_non_image_shows_an_error(store):
    sel = resolve_selection(store, {"view": "upload", "dataset": "shapes", "model": PIXELS})
    status, results = render_upload(store, sel, data_url(b"GIF89a but not really"), "fake.gif")
    assert results is None
    assert find_class(status, "message-error")
    assert "fake.gif" in text_of(status) and "Traceback" not in text_of(status)


def test_upload_of_a_dataset_image_finds_itself(store, playground_artifacts):
    manifest = store.manifest("shapes")
    source = json.loads((playground_artifacts / "index.json").read_text())["datasets"]["shapes"]["source"]
    data = (io.FileIO(f"{source}/{manifest['path'][5]}")).readall()
    features = uploads.upload_features(store, "shapes", PIXELS, "pixels_16x16", data)
    results = feature_results(store, "shapes", PIXELS, "pixels_16x16", "euclidean", features, 5)
    assert results[0].image_id == 5 and results[0].distance == pytest.approx(0.0, abs=1e-4)


def test_upload_of_a_real_photo_returns_results_and_caches_the_model(store, monkeypatch):
    import precompute.models

    calls = []
    real = precompute.models.load_extractor
    monkeypatch.setattr(precompute.models, "load_extractor", lambda *a: calls.append(a) or real(*a))
    uploads._extractor.cache_clear()
    layers = store.layers("shapes", LITE)
    sel = resolve_selection(store, {"view": "upload", "dataset": "shapes", "model": LITE, "layer": layers[-1], "k": 6})
    status, results = render_upload(store, sel, data_url(photo_png()), "chelsea.png")
    assert len(find_class(results, "result-card")) == 6, text_of(status)
    assert "chelsea.png" in text_of(status)
    # Another layer and another photo reuse the one extractor built for every layer of the model.
    sel.layer = layers[0]
    rotated = png_bytes(Image.open(io.BytesIO(photo_png())).rotate(90))
    status, results = render_upload(store, sel, data_url(rotated), "rotated.png")
    assert len(find_class(results, "result-card")) == 6
    assert len(calls) == 1 and list(calls[0][1]) == layers


# ----------------------------------------------------------------------------------------------- tables
def test_summary_table_has_every_combination_and_costs(store):
    table = summary_table(store, "shapes")
    assert len(table) == (3 + len(store.layers("shapes", LITE))) * 4
    assert {"rwp@15", "ap", "parameters (whole model)", "GFLOPs/image", "ms/image", "images/s"} <= set(table.columns)


def test_class_breakdown_and_costs(store):
    breakdown = class_breakdown(store, "shapes", "cosine", "rwp@15")
    assert list(breakdown.index) == ["circle", "square", "triangle"]
    assert "random" in breakdown.columns and len(breakdown.columns) == 3
    costs = cost_table(store, "shapes", "cosine", "rwp@15")
    assert list(costs["model"]) == [PIXELS, LITE]
    assert costs.loc[1, "parameters (whole model)"] > 0


def test_compare_of_an_unlabeled_dataset_shows_costs_only(store):
    sel = resolve_selection(store, {"view": "compare", "dataset": "shapes-flat"})
    out = render_compare(store, sel, "rwp@15")
    assert out["score"] is None and out["cost"] is not None
    assert "no labels" in text_of(out["message"])


def test_embeddings_figure_and_tooltip(store):
    sel = resolve_selection(store, {"view": "embeddings", "dataset": "shapes", "query": 2, "k": 5})
    figure, info = render_embeddings(store, sel)
    names = [trace.name for trace in figure.data]
    assert names == ["circle", "square", "triangle", "top results", "query"]
    assert list(figure.data[-1].customdata) == [2] and len(figure.data[-2].customdata) == 5
    show, bbox, children = tooltip(store, sel, {"points": [{"customdata": 9, "bbox": {"x0": 1}}]})
    assert show and "square" in text_of(children)
    assert tooltip(store, sel, None)[0] is False


# ------------------------------------------------------------------------------------------------ app
@pytest.fixture
def client(playground_artifacts):
    from playground.app import create_app

    return create_app(playground_artifacts).server.test_client()


def test_thumbnail_route_serves_thumbnails(client):
    response = client.get("/thumbs/shapes/3.jpg")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert Image.open(io.BytesIO(response.data)).size[0] <= 160


def test_thumbnail_route_with_a_relative_artifacts_root(playground_artifacts, monkeypatch):
    from playground.app import create_app

    monkeypatch.chdir(playground_artifacts.parent)  # as `playground` run from the repo serves ./artifacts
    client = create_app(playground_artifacts.name).server.test_client()
    assert client.get("/thumbs/shapes/3.jpg").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/thumbs/shapes/../index.json",
        "/thumbs/../index.json",
        "/thumbs/..%2F..%2Fetc/1.jpg",
        "/thumbs/shapes/..%2F..%2Findex.json",
        "/thumbs/shapes/abc.jpg",
        "/thumbs/shapes/-1.jpg",
        "/thumbs/shapes/1.5.jpg",
        "/thumbs/shapes/999.jpg",
        "/thumbs/shapes/1.jpg/extra",
        "/thumbs/nope/1.jpg",
        "/thumbs/.hidden/1.jpg",
        "/thumbs/shapes/pixels/pixels_8x8/features.npy",
    ],
)
def test_thumbnail_route_rejects_traversal_and_bad_ids(client, path):
    assert client.get(path).status_code == 404


def test_app_layout_and_defaults(playground_artifacts):
    from playground.__main__ import parse_args
    from playground.app import create_app

    app = create_app(playground_artifacts)
    assert app.server.config["MAX_CONTENT_LENGTH"] > uploads.BROWSER_MAX_BYTES * 4 // 3 > uploads.MAX_UPLOAD_BYTES
    layout = app.layout()
    assert "Semantic Image Search Playground" in text_of(layout)
    args = parse_args([])
    assert (args.host, args.port, args.no_precompute) == ("127.0.0.1", 8050, False)
    # Both embedded datasets, the default first; each one exists in the checkout.
    assert [path.name for path in args.data] == ["openclipart-200", "fashion-mnist-200"]
    assert all(path.is_dir() for path in args.data)
    assert args.data[0].name == DEFAULT_DATASET  # the app opens on the dataset the main command computes first
    assert parse_args(["--data", "a", "--data", "b"]).data == [Path("a"), Path("b")]


def test_main_precomputes_only_a_missing_dataset(tmp_path, monkeypatch, playground_artifacts):
    import precompute.pipeline
    from playground.__main__ import ensure_dataset

    calls = []
    monkeypatch.setattr(precompute.pipeline, "run", lambda *args, **kw: calls.append(args))
    ensure_dataset(playground_artifacts, tmp_path / "shapes")  # already there: nothing to do
    assert calls == []
    (tmp_path / "fresh").mkdir()
    ensure_dataset(tmp_path / "out", tmp_path / "fresh")
    assert calls == [(tmp_path / "fresh", tmp_path / "out")]
    ensure_dataset(tmp_path / "out", tmp_path / "missing-folder")  # absent data: warn, serve
    assert len(calls) == 1


def test_selection_dict_round_trip():
    sel = Selection(dataset="d", model="m", layer="l", metric="cosine", query=3, k=7, notices=["x"])
    assert Selection.from_dict(sel.to_dict()) == sel


def test_every_view_renders_a_message_on_empty_artifacts(tmp_path):
    store = Store(tmp_path)
    sel = resolve_selection(store, {})
    assert "precompute" in sel.notices[0]
    assert "No dataset" in text_of(render_query_panel(store, sel))
    assert find_class(render_results(store, sel), "message-warning")
    assert render_embeddings(store, sel)[0].layout.annotations
    assert render_compare(store, sel, None)["table"] is None
    status, results = render_upload(store, sel, data_url(photo_png()), "cat.png")
    assert find_class(status, "message-warning") and results is None


# ------------------------------------------------------------------ duplicates and intervals ("trust")
@pytest.fixture(scope="module")
def trusted_artifacts(playground_artifacts, tmp_path_factory) -> tuple[Path, dict[str, int]]:
    """The artifacts with ``add_trust_entries`` applied, once (its bootstrap intervals take about a second)."""
    root = tmp_path_factory.mktemp("trusted") / "artifacts"
    shutil.copytree(playground_artifacts, root)
    return root, add_trust_entries(root)


@pytest.fixture
def trust(artifacts_copy, trusted_artifacts) -> tuple[Store, dict[str, int]]:
    """``artifacts_copy`` as ``add_trust_entries`` leaves it (a copy of the module's trusted artifacts)."""
    from playground.store import clear_caches

    template, ids = trusted_artifacts
    shutil.rmtree(artifacts_copy)
    shutil.copytree(template, artifacts_copy)
    clear_caches()
    return Store(artifacts_copy), ids


@pytest.fixture
def old_store(artifacts_copy) -> Store:
    strip_trust_entries(artifacts_copy)
    return Store(artifacts_copy)


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


def test_duplicate_pairs_put_pairs_whose_labels_differ_first(trust):
    from playground.tables import duplicate_pairs, duplicates_of

    store, pair = trust
    pairs = duplicate_pairs(store, "shapes", PIXELS, "pixels_8x8")
    assert list(zip(pairs["b"], pairs["kind"], strict=True)) == [
        (pair["other"], "near"), (pair["first"], "exact"), (pair["first"], "feature"), (pair["second"], "feature")
    ]
    assert pairs["cross_class"].tolist() == [True, False, False, False]
    labels = store.labels("shapes")
    assert pairs.loc[0, "label_b"] == labels[pair["other"]] != pairs.loc[0, "label_a"]
    assert len(duplicate_pairs(store, "shapes")) == 2  # the dataset's hash pairs only
    partners = duplicates_of(pairs, pair["first"])
    assert list(partners) == [0] and [row["kind"] for row in partners[0]] == ["exact", "feature"]
    assert [row["kind"] for row in duplicates_of(pairs, 0)[pair["first"]]] == ["exact", "feature"]


def test_results_badge_duplicates_of_the_query(trust):
    store, pair = trust
    sel = resolve_selection(store, {"dataset": "shapes", "model": PIXELS, "layer": "pixels_8x8", "query": 0})
    cards = {card.to_plotly_json()["props"]["data-image-id"]: card
             for card in find_class(render_results(store, sel), "result-card")}
    assert text_of(find_class(cards[str(pair["first"])], "badges")) == "exact duplicate"
    # A look-alike pair across classes is said as such, not as a label mistake (issue #24: it accused correct
    # labels); a label is called probably wrong only on confident learning's evidence, with its suggestion.
    assert text_of(find_class(cards[str(pair["other"])], "badges")) == "near-duplicate look alike, labels differ"
    assert "mistake" not in text_of(render_results(store, sel)) and "mislabeled" not in str(render_results(store, sel))
    assert text_of(find_class(cards[str(pair["second"])], "badges")) == (
        "feature near-duplicate label probably wrong (suggested: hats, confidence 0.93)")
    badged = {key for key, card in cards.items() if find_class(card, "badge")}
    assert "label probably wrong (suggested: hats" in text_of(render_query_panel(
        store, resolve_selection(store, {"dataset": "shapes", "query": pair["second"]})))
    assert badged == {str(pair[name]) for name in ("first", "second", "other")}
    assert "3 of them form a duplicate pair" in text_of(render_results(store, sel))
    # Another layer holds no feature pairs: only the dataset's hash pairs are badged.
    sel.layer = "pixels_16x16"
    cards = find_class(render_results(store, sel), "result-card")
    assert all("feature" not in text_of(find_class(card, "badges")) for card in cards)


def test_duplicates_panel_lists_pairs_with_counts(trust, monkeypatch):
    from playground import ids
    from playground.views.search import render_duplicates

    store, pair = trust
    sel = resolve_selection(store, {"dataset": "shapes", "model": PIXELS, "layer": "pixels_8x8", "query": 5})
    children = render_duplicates(store, sel)
    summary = text_of(children[0])
    assert summary == ("Duplicates: 3 pairs (1 exact, 1 near, 2 feature); 1 with labels that differ; "
                       "1 label probably wrong")
    text = text_of(children)
    assert "free top-1 hit" in text and "guaranteed miss" in text and "as given" in text
    assert "at most 4 of 64 bits" in text and "0.25 × the layer's median nearest-neighbour distance" in text
    # cleanlab's label issues come first, with the suggested label; then the pairs, those across classes first.
    issue, *rows = find_class(children, "duplicate-pair")
    assert "label-issue" in issue.className.split() and "confidence 0.93" in text_of(issue)
    assert text_of(children).index("Labels probably wrong: 1") < text_of(children).index("Duplicate pairs")
    assert len(rows) == 3 and "cross" in rows[0].className.split()
    assert "look alike, labels differ" in text_of(rows[0]) and "labels differ" not in text_of(rows[1:])
    buttons = [b for row in rows for b in row.children if getattr(b, "id", None)]
    assert [b.id["type"] for b in buttons] == [ids.DUPLICATE_PICK] * 6
    assert len({json.dumps(b.id, sort_keys=True) for b in buttons + issue.children[:1]}) == 7  # unique ids
    assert [b.id["index"] for b in buttons[:2]] == [0, pair["other"]]
    monkeypatch.setattr("playground.views.search.MAX_PAIRS_SHOWN", 1)
    assert "2 more pairs" in text_of(render_duplicates(store, sel))


def test_older_artifacts_show_no_badges_and_say_duplicates_were_not_looked_for(old_store):
    from playground.views.search import render_duplicates

    sel = resolve_selection(old_store, {"dataset": "shapes", "model": PIXELS, "layer": "pixels_8x8", "query": 0})
    assert not find_class(render_results(old_store, sel), "badge")
    assert "not looked for" in text_of(render_duplicates(old_store, sel))
    flat = resolve_selection(old_store, {"dataset": "shapes-flat"})
    assert "not looked for" in text_of(render_duplicates(old_store, flat))


def test_a_missing_duplicates_file_is_a_message_not_a_crash(trust, artifacts_copy):
    from playground.views.search import render_duplicates
    from precompute import artifacts as art

    store, _ = trust
    art.duplicates_path(artifacts_copy, "shapes").unlink()
    sel = resolve_selection(store, {"dataset": "shapes", "model": PIXELS, "layer": "pixels_8x8", "query": 0})
    assert all("badge-issue" in badge.className for badge in find_class(render_results(store, sel), "badge"))
    children = render_duplicates(store, sel)
    assert "unreadable" in text_of(children[0]) and "duplicates.parquet" in text_of(children)


def test_summary_table_carries_the_intervals(trust):
    from playground.tables import score_names

    store, _ = trust
    table = summary_table(store, "shapes")
    columns = list(table.columns)
    assert columns[columns.index("rwp@15") : columns.index("rwp@15") + 3] == ["rwp@15", "rwp@15 low", "rwp@15 high"]
    assert columns[-4:] == ["parameters (whole model)", "GFLOPs/image", "ms/image", "images/s"]
    assert "rwp@15 low" not in score_names(table) and "ap" in score_names(table)
    assert (table["rwp@15 low"] <= table["rwp@15"]).all() and (table["rwp@15"] <= table["rwp@15 high"]).all()
    entry = store.metric("shapes", PIXELS, "pixels_16x16", "euclidean").summary_ci["ap"]
    row = table[(table["layer"] == "pixels_16x16") & (table["metric"] == "euclidean")].iloc[0]
    assert [row["ap low"], row["ap high"]] == pytest.approx(entry)
    assert "rwp@15 low,rwp@15 high" in table.to_csv(index=False).splitlines()[0]  # the CSV download


def test_older_artifacts_have_no_interval_columns(old_store):
    from playground.tables import metric_model_table

    table = summary_table(old_store, "shapes")
    assert not [c for c in table.columns if c.endswith((" low", " high"))]
    assert list(metric_model_table(table, "rwp@15", intervals=True).columns) == [PIXELS, LITE]
    sel = resolve_selection(old_store, {"view": "compare", "dataset": "shapes"})
    out = render_compare(old_store, sel, "rwp@15")
    assert "no interval stored" in text_of(out["headline"])
    assert all(trace.error_y.array is None for trace in out["layers"].data)


def test_compare_to_best_runs_the_paired_test_on_per_query_scores(trust):
    from playground.tables import BELOW, BEST, NOT_DISTINGUISHABLE, compare_to_best
    from precompute.stats import paired_comparison

    store, _ = trust
    best, verdicts = compare_to_best(store, "shapes", "cosine", "rwp@15")
    table = summary_table(store, "shapes")
    assert best["rwp@15"] == table["rwp@15"].max()
    assert list(verdicts["model"]) == [PIXELS, LITE]
    reference = store.scores("shapes", best["model"], best["layer"], best["metric"])["rwp@15"]
    assert (verdicts["verdict"] == BEST).sum() <= 1
    for _, row in verdicts.iterrows():
        if (row["model"], row["layer"], "cosine") == (best["model"], best["layer"], best["metric"]):
            assert row["verdict"] == BEST
            continue
        other = store.scores("shapes", row["model"], row["layer"], "cosine")["rwp@15"]
        expected = paired_comparison(reference.to_numpy(), other.reindex(reference.index).to_numpy())
        assert row["difference"] == pytest.approx(expected["mean_difference"])
        assert [row["difference low"], row["difference high"]] == pytest.approx(expected["ci"])
        assert row["p_value"] == pytest.approx(expected["p_value"])
        assert row["verdict"] == (BELOW if expected["distinguishable"] else NOT_DISTINGUISHABLE)
        assert not expected["distinguishable"] or expected["ci"][0] > 0  # the best is not beaten


def test_verdicts_in_words():
    from playground.tables import ABOVE, BELOW, BEST, NOT_COMPARABLE, NOT_DISTINGUISHABLE
    from playground.views.compare import render_verdicts, verdict_text

    def row(model, verdict, difference=np.nan, low=np.nan, high=np.nan, p=np.nan):
        return {"model": model, "layer": "l", "metric": "cosine", "rwp@15": 0.4, "rwp@15 low": 0.35,
                "rwp@15 high": 0.45, "verdict": verdict, "difference": difference, "difference low": low,
                "difference high": high, "p_value": p, "n_queries": 200}

    verdicts = pd.DataFrame(
        [row("a", BEST), row("b", NOT_DISTINGUISHABLE, 0.012, -0.01, 0.034, 0.27),
         row("c", BELOW, 0.052, 0.031, 0.074, 0.00031), row("d", NOT_COMPARABLE),
         row("e", ABOVE, -0.05, -0.07, -0.03, 0.001)]
    )
    texts = [verdict_text(r) for _, r in verdicts.iterrows()]
    assert texts[0] == "best"
    assert texts[1] == "not distinguishable from the best (difference 0.012 [-0.010, 0.034], p = 0.27)"
    assert texts[2] == "below the best (difference 0.052 [0.031, 0.074], p = 0.00031)"
    assert texts[3].startswith("not comparable")
    assert texts[4] == "above the best on the queries both scored (difference -0.050 [-0.070, -0.030], p = 0.001)"
    best = pd.Series({"model": "a", "layer": "l", "metric": "cosine", "rwp@15": 0.388, "rwp@15 low": 0.351,
                      "rwp@15 high": 0.425})
    headline, table = render_verdicts(best, verdicts, "cosine", "rwp@15")
    assert text_of(headline) == (
        "Best by rwp@15: a / l / cosine, 0.388 [0.351, 0.425] (95 % bootstrap interval over queries). "
        "Not distinguishable from it: b (l). Below it: c."
    )
    assert "0.400 [0.350, 0.450]" in text_of(table)
    only = render_verdicts(best, verdicts.iloc[:1], "cosine", "rwp@15")[0]
    assert text_of(only).endswith("It is the only model.")


def test_compare_view_shows_intervals_and_the_paired_test(trust):
    store, _ = trust
    sel = resolve_selection(store, {"view": "compare", "dataset": "shapes", "metric": "cosine"})
    out = render_compare(store, sel, "rwp@15")
    headline = text_of(out["headline"])
    best = summary_table(store, "shapes").sort_values("rwp@15").iloc[-1]
    assert headline.startswith(f"Best by rwp@15: {best['model']} / {best['layer']} / {best['metric']}, ")
    assert f"{best['rwp@15']:.3f} [{best['rwp@15 low']:.3f}, {best['rwp@15 high']:.3f}]" in headline
    verdicts = text_of(out["verdicts"])
    assert "best" in verdicts and ("below the best (difference" in verdicts or "not distinguishable" in verdicts)
    assert re.search(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", text_of(out["table"]))  # metric x model table
    assert re.search(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", text_of(out["cost"]))
    lines = [trace for trace in out["layers"].data if trace.mode == "lines+markers"]
    rows = summary_table(store, "shapes").query("model == 'pixels' and metric == 'cosine'").sort_values("order")
    assert list(lines[0].error_y.array) == pytest.approx((rows["rwp@15 high"] - rows["rwp@15"]).tolist())
    assert list(lines[0].error_y.arrayminus) == pytest.approx((rows["rwp@15"] - rows["rwp@15 low"]).tolist())
    assert out["cost_figure"].data[0].error_y.array is not None


def test_compare_of_a_single_configuration_names_it(trust, artifacts_copy):
    index = json.loads((artifacts_copy / "index.json").read_text())
    models = index["datasets"]["shapes"]["models"]
    del models[LITE]
    layers = models[PIXELS]["layers"]
    for name in ("pixels_16x16", "pixels_32x32"):
        del layers[name]
    layers["pixels_8x8"]["metrics"] = {"cosine": layers["pixels_8x8"]["metrics"]["cosine"]}
    (artifacts_copy / "index.json").write_text(json.dumps(index))
    store, _ = trust
    out = render_compare(store, resolve_selection(store, {"view": "compare", "dataset": "shapes"}), "rwp@15")
    assert "pixels / pixels_8x8 / cosine" in text_of(out["headline"])
    assert text_of(out["headline"]).endswith("It is the only model.")


# ------------------------------------------------------------------------------- UX round 2 (issue #13)
def test_closeness_places_each_distance_between_the_farthest_and_the_closest():
    from playground.ranking import closeness

    assert closeness([2.0, 3.0, 6.0]).tolist() == [1.0, 0.75, 0.0]
    assert closeness([5.0, 5.0]).tolist() == [1.0, 1.0]  # ties (or a single result): all full
    assert closeness([]).tolist() == []
    assert closeness([1.0, np.nan, 3.0]).tolist() == [1.0, 0.0, 0.0]


def test_format_distance_keeps_four_significant_digits_without_exponents():
    from playground.components import format_distance

    assert [format_distance(d) for d in (0.35123, 0.0021, 12.314, 999.94, 1234.5, 0.0)] == [
        "0.3512", "0.002100", "12.31", "999.9", "1,234", "0.000"
    ]
    assert format_distance(float("nan")) == "—"


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "manhattan", "chebyshev"])
def test_result_cards_name_the_metric_and_scale_bars_within_the_results(store, metric):
    from playground.components import format_distance

    sel = resolve_selection(store, {"dataset": "shapes", "model": PIXELS, "layer": "pixels_32x32", "metric": metric,
                                    "query": 4, "k": 12})
    rendered = render_results(store, sel)
    cards = find_class(rendered, "result-card")
    results = query_results(store, "shapes", PIXELS, "pixels_32x32", metric, 4, 12)
    props = [card.to_plotly_json()["props"] for card in cards]
    assert [float(p["data-distance"]) for p in props] == pytest.approx([r.distance for r in results])
    bars = [float(p["data-bar"]) for p in props]
    assert bars[0] == 1.0 and bars[-1] == 0.0 and bars == sorted(bars, reverse=True)
    distances = np.array([r.distance for r in results])
    assert bars == pytest.approx((distances.max() - distances) / (distances.max() - distances.min()), abs=1e-4)
    for card, result in zip(cards, results, strict=True):
        text = text_of(find_class(card, "distance"))
        assert text.startswith(metric) and text.endswith(format_distance(result.distance))
    assert f"{metric} distance to the query" in text_of(rendered)


def test_labels_break_only_after_underscores():
    from dash import html

    from playground.components import label_text

    parts = label_text("computer_hardware")
    assert parts[0] == "computer_" and isinstance(parts[1], html.Wbr) and parts[2] == "hardware"
    assert label_text("hats") == ["hats"] and label_text(None) == []


def test_default_query_is_the_one_nearest_the_mean_score(store, monkeypatch):
    from playground.state import best_layer, default_query

    model = store.models("shapes")[0]
    layer = best_layer(store, "shapes", model, "cosine")
    scores = store.scores("shapes", model, layer, "cosine")["rwp@15"]
    gaps = (scores - scores.mean()).abs()
    expected = int(min(gaps.index[gaps == gaps.min()]))
    assert default_query(store, "shapes") == expected != 0
    assert default_query(store, "shapes-flat") == 0  # unlabeled: image 0
    # Ties go to the lower id: two queries exactly at the mean.
    tied = pd.DataFrame({"label": "circle", "rwp@15": [0.0, 0.5, 1.0, 0.5]}, index=pd.Index([0, 1, 2, 3], name="query"))
    monkeypatch.setattr(Store, "scores", lambda self, *args: tied)
    assert default_query(store, "shapes") == 1


def test_a_dataset_opens_on_its_default_query(store):
    from playground.state import default_query

    first = update_selection(store, None, "/", "", {}, None, None)
    assert first.query == default_query(store, "shapes") and not first.notices
    linked = update_selection(store, "url", "/search", "?dataset=shapes&query=7", {}, None, first.to_dict())
    assert linked.query == 7
    flat = update_selection(store, "dataset-select", "/", "", {"dataset": "shapes-flat"}, None, first.to_dict())
    back = update_selection(store, "dataset-select", "/", "", {"dataset": "shapes"}, None, flat.to_dict())
    assert back.query == default_query(store, "shapes")
    bad = update_selection(store, None, "/search", "?dataset=shapes&query=999", {}, None, None)
    assert bad.query == default_query(store, "shapes") and "showing image" in bad.notices[0]


@pytest.mark.parametrize(
    "url, notice, field, value",
    [
        ("/search?dataset=shapes&query=abc", "Query 'abc' is not an image id", "query", 0),
        ("/search?dataset=shapes&query=-1", "Image -1 is not in shapes", "query", 0),
        ("/search?dataset=shapes&k=0", "Results must be 1 to 50; 0 became 1", "k", 1),
        ("/search?dataset=shapes&k=1000", "Results must be 1 to 50; 1000 became 50", "k", 50),
        ("/search?dataset=shapes&k=ten", "Results 'ten' is not a whole number; showing 15", "k", 15),
        ("/search?dataset=shapes&k=2.5", "Results '2.5' is not a whole number", "k", 15),
        ("/nowhere?dataset=shapes", "There is no view '/nowhere'", "view", "search"),
    ],
)
def test_malformed_or_out_of_range_url_values_get_a_notice(store, url, notice, field, value):
    pathname, _, search = url.partition("?")
    sel = resolve_selection(store, parse_url(pathname, search))
    assert any(notice in text for text in sel.notices), sel.notices
    assert getattr(sel, field) == value


def test_the_results_box_out_of_range_or_empty_gets_a_notice(store):
    sel = resolve_selection(store, {"dataset": "shapes", "k": 9})
    for typed, notice, k in [(0, "0 became 1", 1), (100, "100 became 50", 50), (None, "The Results box is empty", 9),
                             (2.5, "2.5 is not a whole number", 9), (12.0, None, 12)]:
        after = update_selection(store, "top-k", "/search", "", {"k": typed}, None, sel.to_dict())
        assert after.k == k
        assert (notice in " ".join(after.notices)) if notice else not after.notices
    assert parse_url("/", "") == {} and parse_url("/search/", "")["view"] == "search"


def test_view_links_carry_the_selection_and_mark_the_current_view(store):
    from playground.callbacks.controller import tab_links

    sel = resolve_selection(store, {"view": "embeddings", "dataset": "shapes", "query": 5})
    links = tab_links(sel)
    assert [href.split("?")[0] for href, _ in links] == ["/search", "/upload", "/embeddings", "/compare"]
    assert all("query=5" in href and "dataset=shapes" in href for href, _ in links)
    assert [cls for _, cls in links] == ["tab", "tab", "tab tab-selected", "tab"]


def _graphs(component) -> list:
    from dash import dcc

    found = []
    if isinstance(component, list | tuple):
        for child in component:
            found += _graphs(child)
    elif hasattr(component, "to_plotly_json"):
        if isinstance(component, dcc.Graph):
            found.append(component)
        found += _graphs(getattr(component, "children", None))
    return found


def test_every_graph_is_offline_no_cloud_button_no_logo(playground_artifacts):
    from playground import components
    from playground.app import create_app
    from playground.views import compare

    config = components.graph_config(scrollZoom=True, modeBarButtonsToRemove=["lasso2d"])
    assert config["scrollZoom"] and not config["displaylogo"] and not config["showSendToCloud"]
    assert config["plotlyServerURL"] == "" and {"sendChartToCloud", "lasso2d"} <= set(config["modeBarButtonsToRemove"])
    layout = create_app(playground_artifacts).layout()
    graphs = _graphs(layout)
    assert graphs
    compare_ids = {graph.id for graph in _graphs(compare.layout())}
    assert len(compare_ids) == 4 and compare_ids <= {graph.id for graph in graphs}  # Compare's graphs are covered
    for graph in graphs:
        assert graph.config["displaylogo"] is False and graph.config["showSendToCloud"] is False, graph.id
        assert "sendChartToCloud" in graph.config["modeBarButtonsToRemove"], graph.id


def test_app_page_has_a_language_and_no_second_footer(client):
    page = client.get("/").get_data(as_text=True)
    assert '<html lang="en">' in page and page.count("<footer") == 0  # the app's own footer is rendered by React


# ------------------------------------------------------------------------------------ full-size images
def test_image_route_serves_a_bounded_jpeg_of_the_source_file(client, store):
    from playground.images import MAX_SIDE

    response = client.get("/images/shapes/3.jpg")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    image = Image.open(io.BytesIO(response.data))
    row = store.manifest("shapes").iloc[3]
    assert image.size == (row["width"], row["height"]) and max(image.size) <= MAX_SIDE


@pytest.mark.parametrize(
    "path",
    [
        "/images/shapes/../index.json",
        "/images/../index.json",
        "/images/..%2F..%2Fetc/1.jpg",
        "/images/shapes/..%2F..%2Findex.json",
        "/images/shapes/abc.jpg",
        "/images/shapes/-1.jpg",
        "/images/shapes/1.5.jpg",
        "/images/shapes/999.jpg",
        "/images/shapes/1.jpg/extra",
        "/images/nope/1.jpg",
        "/images/.hidden/1.jpg",
        "/images/shapes/pixels/pixels_8x8/features.npy",
    ],
)
def test_image_route_rejects_traversal_and_bad_ids(client, path):
    assert client.get(path).status_code == 404


@pytest.fixture
def own_source(artifacts_copy, tmp_path):
    """An artifacts copy whose 'shapes' source folder is a private copy the test may change."""
    import shutil

    index = json.loads((artifacts_copy / "index.json").read_text())
    source = tmp_path / "source"
    shutil.copytree(index["datasets"]["shapes"]["source"], source)
    index["datasets"]["shapes"]["source"] = str(source)
    (artifacts_copy / "index.json").write_text(json.dumps(index))
    return artifacts_copy, source


def _manifest_path_of(root: Path, image_id: int, new_path: str) -> None:
    from precompute import artifacts as art

    manifest = art.read_table(art.manifest_path(root, "shapes"))
    manifest.loc[image_id, "path"] = new_path
    art.write_table(art.manifest_path(root, "shapes"), manifest)


def test_image_route_refuses_paths_that_leave_the_source_folder(own_source, tmp_path):
    from playground.app import create_app

    root, source = own_source
    secret = tmp_path / "secret.png"
    Image.new("RGB", (8, 8), "red").save(secret)
    (source / "circle" / "link.png").symlink_to(secret)  # a link out of the folder
    _manifest_path_of(root, 0, "../secret.png")
    _manifest_path_of(root, 1, "circle/link.png")
    _manifest_path_of(root, 2, str(secret))  # an absolute path
    _manifest_path_of(root, 3, "circle/missing.png")
    _manifest_path_of(root, 4, "circle")  # a folder
    client = create_app(root).server.test_client()
    for image_id in range(5):
        assert client.get(f"/images/shapes/{image_id}.jpg").status_code == 404, image_id
        with pytest.raises(MissingArtifact):
            Store(root).source_file("shapes", image_id)
    assert client.get("/images/shapes/5.jpg").status_code == 200
    inside = source / "circle" / "inside.png"
    inside.symlink_to(source / "square" / "0.png")  # a link that stays inside is fine
    _manifest_path_of(root, 6, "circle/inside.png")
    assert create_app(root).server.test_client().get("/images/shapes/6.jpg").status_code == 200


def test_image_route_downscales_and_refuses_oversized_files(own_source, monkeypatch):
    from playground import images
    from playground.app import create_app

    root, source = own_source
    Image.new("RGB", (2400, 1200), "blue").save(source / "circle" / "big.png")
    _manifest_path_of(root, 0, "circle/big.png")
    client = create_app(root).server.test_client()
    response = client.get("/images/shapes/0.jpg")
    assert Image.open(io.BytesIO(response.data)).size == (images.MAX_SIDE, images.MAX_SIDE // 2)
    monkeypatch.setattr(images, "MAX_FILE_BYTES", 100)
    assert client.get("/images/shapes/1.jpg").status_code == 404
    monkeypatch.setattr(images, "MAX_FILE_BYTES", 64 * 2**20)
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    images._encoded.cache_clear()
    assert client.get("/images/shapes/0.jpg").status_code == 404
    (source / "circle" / "1.png").write_bytes(b"not an image")
    _manifest_path_of(root, 2, "circle/1.png")
    assert client.get("/images/shapes/2.jpg").status_code == 404


def test_viewer_opens_on_a_zoom_click_and_shows_the_image(store):
    from dash.exceptions import PreventUpdate

    from playground import ids
    from playground.callbacks.page import render_viewer, viewer_request

    zoom = {"type": ids.VIEW_IMAGE, "where": "results", "index": 7}
    assert viewer_request(zoom, [{"value": 1}]) == 7
    assert viewer_request(ids.VIEWER_CLOSE, [{"value": 1}]) is None
    with pytest.raises(PreventUpdate):
        viewer_request(zoom, [{"value": 0}])  # fresh buttons after a re-render
    sel = resolve_selection(store, {"dataset": "shapes"})
    style, children = render_viewer(store, sel, 7)
    assert style["display"] == "flex" and children[0].src == "/images/shapes/7.jpg"
    assert "image 7" in text_of(children) and "48×48 px" in text_of(children)
    assert render_viewer(store, sel, None)[0]["display"] == "none"
    assert render_viewer(store, sel, 999)[0]["display"] == "none"


def test_query_requests_from_uploads_and_the_viewer_open_search():
    from dash.exceptions import PreventUpdate

    from playground import ids
    from playground.callbacks.controller import click_request as query_request

    assert query_request({"type": ids.UPLOAD_PICK, "index": 4}, [{"value": 1}], None, None)["view"] == "search"
    grid = query_request({"type": ids.PICK, "index": 4}, [{"value": 1}], None, None)
    assert grid["id"] == 4 and "view" not in grid
    assert query_request(ids.VIEWER_SEARCH, [{"value": 1}], None, 9) | {"at": 0} == {"id": 9, "view": "search", "at": 0}
    map_click = query_request(ids.UMAP_GRAPH, [{"value": 1}], {"points": [{"customdata": 11}]}, None)
    assert map_click["id"] == 11
    with pytest.raises(PreventUpdate):
        query_request({"type": ids.IMAGE_PICK, "where": "selection", "index": 2}, [{"value": 0}], None, None)


# ----------------------------------------------------------------------------------------- uploads
def test_upload_results_open_in_search_and_full_size(store):
    from playground import ids

    sel = resolve_selection(store, {"view": "upload", "dataset": "shapes", "model": PIXELS, "k": 5})
    manifest = store.manifest("shapes")
    source = store.dataset("shapes").source
    status, results = render_upload(store, sel, data_url(Path(source, manifest["path"][2]).read_bytes()), "c.png")
    cards = find_class(results, "result-card")
    assert len(cards) == 5
    picks = [b for card in cards for b in card.children if getattr(b, "id", None)]
    assert {b.id["type"] for b in picks} == {ids.UPLOAD_PICK, ids.VIEW_IMAGE}
    assert "Click a result to search" in text_of(status)


def test_a_file_refused_by_the_browser_gets_a_message():
    from playground.views.upload import render_rejected

    message = render_rejected({"name": "huge.tif", "size": 15 * 1024 * 1024, "verdict": "too_big"})
    assert find_class(message, "message-error")
    assert text_of(message) == (
        "huge.tif:  The file is 15.0 MiB (15,728,640 bytes); the limit is 10 MiB. Downscale it first. It was not sent."
    )


# -------------------------------------------------------------------------------------------- embeddings
def _simulated_lab(colours: list[str], matrix: np.ndarray) -> np.ndarray:
    """CIELAB of sRGB colours as seen with a colour-vision deficiency (Machado, Oliveira & Fernandes 2009)."""
    from skimage.color import rgb2lab

    rgb = np.array([[int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)] for c in colours])
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    seen = np.clip(linear @ matrix.T, 0, 1)
    srgb = np.where(seen <= 0.0031308, 12.92 * seen, 1.055 * seen ** (1 / 2.4) - 0.055)
    return rgb2lab(srgb[None])[0]


def test_class_palette_is_distinct_for_colour_blind_eyes_and_20_classes():
    from itertools import combinations

    from skimage.color import deltaE_ciede2000

    from playground.figures import CLASS_COLOURS, QUERY_COLOUR, class_style

    visions = {  # Machado et al. (2009), severity 1
        "normal": np.eye(3),
        "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                                [-0.003882, -0.048116, 1.051998]]),
        "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                                  [-0.011820, 0.042940, 0.968881]]),
        "tritanopia": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                                [0.004733, 0.691367, 0.303900]]),
    }
    colours = [*CLASS_COLOURS, "#FFFFFF", QUERY_COLOUR]  # the background and the query's star too
    for name, matrix in visions.items():
        lab = _simulated_lab(colours, matrix)
        smallest = min(
            deltaE_ciede2000(lab[i], lab[j]) for i, j in combinations(range(len(colours)), 2)
            if not (i >= len(CLASS_COLOURS) and j >= len(CLASS_COLOURS))
        )
        # 30 CIEDE2000 for normal vision with 3:1 contrast on white (issue #24) leaves 6.9 under simulated
        # colour-vision deficiencies (playground/figures.py, CLASS_COLOURS).
        assert smallest > (29 if name == "normal" else 6.5), name
    styles = [class_style(i) for i in range(20)]
    assert len(set(styles)) == 20 and len({colour for colour, _ in styles}) == 10


def test_embeddings_figure_selection_and_thumbnails(store, monkeypatch):
    from playground import figures

    sel = resolve_selection(store, {"view": "embeddings", "dataset": "shapes", "query": 2, "k": 5})
    figure, _ = render_embeddings(store, sel)
    assert figure.layout.dragmode == "lasso" and not figure.layout.images
    assert all(trace.unselected.marker.opacity < 0.5 for trace in figure.data[:3])
    assert [trace.marker.color for trace in figure.data[:3]] == list(figures.CLASS_COLOURS[:3])
    figure, _ = render_embeddings(store, sel, thumbnails=True)
    assert len(figure.layout.images) == 24 and figure.layout.images[5].source == "/thumbs/shapes/5.jpg"
    monkeypatch.setattr(figures, "MAX_THUMBNAIL_POINTS", 10)
    figure, info = render_embeddings(store, sel, thumbnails=True)
    assert not figure.layout.images and "up to 10 images" in text_of(info)


def test_selection_strip_counts_classes_and_offers_each_image(store):
    from playground import ids
    from playground.views.embeddings import class_mix, render_selection, selected_ids

    sel = resolve_selection(store, {"view": "embeddings", "dataset": "shapes", "query": 2})
    points = {"points": [{"customdata": i} for i in (0, 1, 9, 17, 1, 2)] + [{"customdata": 2}]}
    assert selected_ids(points) == [0, 1, 9, 17, 2]  # the query and result markers repeat images
    assert class_mix(["b", "a", "a", "c", "b", "a"]) == [("a", 3), ("b", 2), ("c", 1)]
    strip = render_selection(store, sel, selected_ids(points))
    assert text_of(strip).startswith("5 selected:  3 circle (60%), 1 square (20%), 1 triangle (20%)")
    buttons = [b for b in find_class(strip, "result-pick")]
    assert [b.id["index"] for b in buttons] == [0, 1, 9, 17, 2] and buttons[0].id["type"] == ids.IMAGE_PICK
    assert "No image inside" in text_of(render_selection(store, sel, []))
    assert "Lasso" in text_of(render_selection(store, sel, None))


def test_the_map_keeps_a_selection_across_queries_and_clears_it_on_another_map(store):
    from playground import ids
    from playground.views.embeddings import next_selection

    lasso = {"points": [{"customdata": 3}, {"customdata": 5}], "lassoPoints": {"x": [0], "y": [0]}}
    state = next_selection(None, "shapes/pixels/a", "selection", None)
    assert state == {"key": "shapes/pixels/a", "ids": None, "cleared": 0}
    state = next_selection(state, "shapes/pixels/a", ids.UMAP_GRAPH, lasso)
    assert state["ids"] == [3, 5]
    assert next_selection(state, "shapes/pixels/a", "selection", None)["ids"] == [3, 5]  # a new query keeps it
    echo = {"points": [], "selections": []}  # plotly's own report after a redraw
    assert next_selection(state, "shapes/pixels/a", ids.UMAP_GRAPH, echo) == state
    empty = next_selection(state, "shapes/pixels/a", ids.UMAP_GRAPH, {"points": [], "range": {"x": [0, 1]}})
    assert empty["ids"] == [] and empty["cleared"] == 1  # a box over nothing: redraw with nothing faded
    assert next_selection(state, "shapes/pixels/a", ids.UMAP_GRAPH, None)["ids"] is None  # double-click
    assert next_selection(state, "shapes/pixels/b", "selection", None)["ids"] is None  # another layer
    sel = resolve_selection(store, {"view": "embeddings", "dataset": "shapes", "query": 2, "k": 3})
    figure, _ = render_embeddings(store, sel, selected=[0, 1, 9])
    chosen = [[int(trace.customdata[i]) for i in trace.selectedpoints] for trace in figure.data[:3]]
    assert chosen == [[0, 1], [9], []]


def test_neighbours_beside_the_map_are_the_query_results(store):
    from playground.views.embeddings import render_neighbours

    sel = resolve_selection(store, {"view": "embeddings", "dataset": "shapes", "metric": "euclidean", "query": 6,
                                    "k": 7})
    panel = render_neighbours(store, sel)
    items = find_class(panel, "neighbour")
    expected = query_results(store, "shapes", sel.model, sel.layer, "euclidean", 6, 7)
    assert [item.to_plotly_json()["props"]["data-image-id"] for item in items] == [str(r.image_id) for r in expected]
    assert "euclidean" in text_of(panel) and "query: image 6" in text_of(panel)


def test_model_info_is_one_clamped_line_with_the_whole_text_as_tooltip(store):
    from playground.callbacks.controller import model_info

    sel = resolve_selection(store, {"dataset": "shapes", "model": LITE})
    info = model_info(store, sel)
    assert info.className == "model-info-text" and info.title == info.children and "Weights:" in info.title


# ------------------------------------------------------------------------------------------- the answer
def _cost_order(store, dataset, score):
    """Every scored configuration with its layer's cost, cheapest first: an independent re-derivation."""
    rows = []
    for model in store.models(dataset):
        for layer in store.layers(dataset, model):
            entry = store.layer(dataset, model, layer)
            for metric, result in entry.metrics.items():
                rows.append(((entry.gflops, entry.n_params, -result.summary[score]), (model, layer, metric),
                             result.summary[score]))
    return [(key, value) for _, key, value in sorted(rows, key=lambda r: r[0])]


def test_configurations_are_ordered_by_the_cost_of_their_layer(store):
    from playground.tables import configurations

    table = configurations(store, "shapes", "rwp@15")
    assert len(table) == len(summary_table(store, "shapes")) == 44  # 3 + 8 layers x 4 metrics
    costs = table[["layer GFLOPs", "layer parameters"]].to_numpy()
    assert (np.diff(costs[:, 0]) >= 0).all()
    for (model, layer), part in table.groupby(["model", "layer"]):
        entry = store.layer("shapes", model, layer)
        assert (part["layer GFLOPs"] == entry.gflops).all() and (part["layer parameters"] == entry.n_params).all()
    assert (table.loc[table["model"] == PIXELS, "layer GFLOPs"] == 0).all()  # raw pixels: no network at all


def test_answer_is_the_cheapest_configuration_the_paired_test_cannot_tell_from_the_best(store):
    from playground.tables import BEST, NOT_DISTINGUISHABLE, answer
    from precompute.stats import paired_comparison

    result = answer(store, "shapes", "rwp@15")
    table = summary_table(store, "shapes")
    assert result.best["rwp@15"] == table["rwp@15"].max()
    reference = store.scores("shapes", result.best["model"], result.best["layer"], result.best["metric"])["rwp@15"]
    best_key = (result.best["model"], result.best["layer"], result.best["metric"])
    cheapest_key = (result.cheapest["model"], result.cheapest["layer"], result.cheapest["metric"])
    order = [key for key, _ in _cost_order(store, "shapes", "rwp@15")]
    n_cheaper = order.index(cheapest_key)
    assert result.n_tested + result.n_ruled_out == n_cheaper + (cheapest_key != best_key)
    assert n_cheaper <= order.index(best_key)
    for key in order[: order.index(cheapest_key)]:  # everything cheaper is below the best, query by query
        other = store.scores("shapes", *key)["rwp@15"]
        test = paired_comparison(reference.to_numpy(), other.reindex(reference.index).to_numpy())
        assert test["distinguishable"] and test["ci"][0] > 0, key
    if cheapest_key == best_key:
        assert result.cheapest["verdict"] == BEST and np.isnan(result.cheapest["difference"])
    else:
        assert result.cheapest["verdict"] == NOT_DISTINGUISHABLE
    baseline = store.baseline_summary("shapes")["rwp@15"]
    assert result.multiple_of_random == pytest.approx(result.best["rwp@15"] / baseline)
    assert result.model_cost == store.model("shapes", result.best["model"]).cost


def _clone_scores(root: Path, source: tuple[str, str, str], target: tuple[str, str, str], change) -> None:
    """Give configuration ``target`` the per-query rwp@15 of ``source`` passed through ``change``, its mean and a
    matching summary in the index: a cheap configuration whose relation to the best is known."""
    from precompute import artifacts as art
    from precompute.stats import bootstrap_ci

    scores = art.read_table(art.scores_path(root, "shapes", *source))
    scores["rwp@15"] = change(scores["rwp@15"].to_numpy())
    art.write_table(art.scores_path(root, "shapes", *target), scores)
    index = json.loads((root / "index.json").read_text())
    model, layer, metric = target
    entry = index["datasets"]["shapes"]["models"][model]["layers"][layer]["metrics"][metric]
    entry["summary"]["rwp@15"] = float(scores["rwp@15"].mean())
    entry["summary_ci"]["rwp@15"] = bootstrap_ci(scores["rwp@15"].to_numpy()).tolist()
    (root / "index.json").write_text(json.dumps(index))


def _best_key(store):
    best = summary_table(store, "shapes").sort_values("rwp@15", kind="stable").iloc[-1]
    return best["model"], best["layer"], best["metric"]


def test_answer_finds_a_cheap_copy_of_the_best(artifacts_copy):
    from playground.tables import NOT_DISTINGUISHABLE, answer
    from playground.views.compare import render_answer

    store = Store(artifacts_copy)
    best = _best_key(store)
    cheap = (PIXELS, "pixels_8x8", "euclidean")  # no network: 0 GFLOPs
    # The best's per-query scores, one query a little lower: the same configuration to any test on 24 queries.
    _clone_scores(artifacts_copy, best, cheap, lambda v: v - np.eye(1, len(v), int(np.argmax(v)))[0] * 0.01)
    result = answer(store, "shapes", "rwp@15")
    assert (result.best["model"], result.best["layer"], result.best["metric"]) == best
    assert (result.cheapest["model"], result.cheapest["layer"], result.cheapest["metric"]) == cheap
    assert result.cheapest["verdict"] == NOT_DISTINGUISHABLE and result.cheapest["difference low"] <= 0
    assert result.near is None  # the cheapest answer already is within 5 %
    text = text_of(render_answer(result))
    assert f"{PIXELS} / pixels_8x8 / euclidean reaches 99." in text and "% of the best" in text
    assert "with no network at all (0 GFLOPs against" in text and "the paired test cannot tell it" in text


def test_answer_names_a_cheaper_configuration_within_the_stated_share(artifacts_copy):
    from playground.tables import BELOW, NEAR_BEST_SHARE, answer

    store = Store(artifacts_copy)
    best = _best_key(store)
    cheap = (PIXELS, "pixels_8x8", "euclidean")
    # 2 % below the best on every query: distinguishable (the difference never varies), but within 5 %.
    _clone_scores(artifacts_copy, best, cheap, lambda v: v * 0.98)
    result = answer(store, "shapes", "rwp@15")
    assert result.share == NEAR_BEST_SHARE
    assert (result.near["model"], result.near["layer"], result.near["metric"]) == cheap
    assert result.near["verdict"] == BELOW
    assert result.near["rwp@15"] >= NEAR_BEST_SHARE * result.best["rwp@15"]
    with pytest.raises(ValueError, match="share must be in"):
        answer(store, "shapes", "rwp@15", share=1.5)


def test_answer_in_words():
    from playground.tables import BEST, NOT_DISTINGUISHABLE, Answer
    from playground.views.compare import percent_of, render_answer, share_words
    from precompute.schema import ModelCost

    assert [share_words(r) for r in (0.5, 0.34, 0.25, 0.42, 0.95)] == [
        "half the", "a third of the", "a quarter of the", "42 % of the", "95 % of the"]
    assert [percent_of(v, 1.0) for v in (0.97, 0.996, 1.0)] == ["97 %", "99.6 %", "100 %"]
    best = pd.Series({"model": "efficientnet-lite2", "layer": "top_conv", "metric": "cosine", "rwp@15": 0.4,
                      "rwp@15 low": 0.37, "rwp@15 high": 0.43, "layer GFLOPs": 1.54, "layer parameters": 4.86e6})
    cheapest = pd.Series({"model": "efficientnet-lite0", "layer": "top_conv", "metric": "cosine", "rwp@15": 0.388,
                          "layer GFLOPs": 0.77, "layer parameters": 3.41e6, "verdict": NOT_DISTINGUISHABLE,
                          "difference": 0.012, "difference low": -0.004, "difference high": 0.028, "p_value": 0.21,
                          "n_queries": 200})
    result = Answer("rwp@15", best, 0.095, ModelCost(ms_per_image=41.23, layers_in_pass=8), cheapest, None, 0.95, 12)
    text = text_of(render_answer(result))
    assert "efficientnet-lite2 / top_conv / cosine, rwp@15 0.400 [0.370, 0.430], 4.2x a random ranking (0.095)" in text
    assert ("1.54 GFLOPs per image and 4.9M parameters up to top_conv; 41.2 ms/image for efficientnet-lite2's "
            "pass") in text
    assert ("efficientnet-lite0 / top_conv / cosine reaches 97 % of the best (0.388) at half the FLOPs (0.77 vs 1.54 "
            "GFLOPs) and 70 % of the parameters (3.4M vs 4.9M); the paired test cannot tell it from the best "
            "(difference 0.012 [-0.004, 0.028], p = 0.21)") in text
    alone = Answer("rwp@15", best, None, ModelCost(), pd.concat([best, pd.Series({"verdict": BEST})]), None, 0.95, 30,
                   5)
    text = text_of(render_answer(alone))
    assert "random ranking" not in text and "falls below the best" in text
    assert "30 tested, 5 more clearly below by their intervals" in text
    assert render_answer(None) is None


def test_clearly_below_needs_a_gap_wider_than_both_intervals():
    from playground.tables import _clearly_below

    best = pd.Series({"rwp@15": 0.40, "rwp@15 low": 0.37, "rwp@15 high": 0.43})  # width 0.06
    other = {"rwp@15 low": 0.0, "rwp@15 high": 0.0}
    for mean, width, expected in ((0.30, 0.04, False), (0.29, 0.04, True), (0.20, 0.2, False)):
        row = pd.Series({"rwp@15": mean, "rwp@15 low": mean - width / 2, "rwp@15 high": mean + width / 2})
        assert _clearly_below(row, best, "rwp@15") is expected, (mean, width)
    assert not _clearly_below(pd.Series({"rwp@15": 0.0}), best, "rwp@15")  # no interval stored: test it
    assert not _clearly_below(pd.Series({"rwp@15": 0.0, **other, "rwp@15 high": np.nan}), best, "rwp@15")


def test_family_table_and_figure(store):
    from playground.figures import family_figure
    from playground.tables import family_table, model_family

    table = family_table(store, "shapes", "rwp@15")
    summary = summary_table(store, "shapes")
    assert list(table["model"]) == [PIXELS, LITE]
    for _, row in table.iterrows():  # the best over every layer and metric of the model
        assert row["rwp@15"] == summary.loc[summary["model"] == row["model"], "rwp@15"].max()
        deepest = store.layers("shapes", row["model"])[-1]  # the network the model runs, up to its deepest layer
        assert row["parameters"] == store.layer("shapes", row["model"], deepest).n_params
    assert model_family(store, "shapes", LITE) == "EfficientNet-Lite (random)"  # untrained: not the ImageNet curve
    assert model_family(store, "shapes", PIXELS) == PIXELS

    made = pd.DataFrame({
        "model": ["efficientnet-lite2", "efficientnet-lite0", "efficientnet-lite1", "mobilenetv2-nsfwjs", "pixels"],
        "family": ["EfficientNet-Lite"] * 3 + ["mobilenetv2-nsfwjs", "pixels"],
        "parameters": [4.87e6, 3.41e6, 4.19e6, 2.26e6, 0],
        "layer": ["top_conv"] * 3 + ["block_10_project", "pixels_16x16"], "metric": ["cosine"] * 5,
        "rwp@15": [0.42, 0.40, 0.41, 0.23, 0.16], "rwp@15 low": [0.39, 0.37, 0.38, 0.21, 0.14],
        "rwp@15 high": [0.45, 0.43, 0.44, 0.25, 0.17],
    })
    fig = family_figure(made, "rwp@15", baseline=0.095)
    lite, mobilenet = fig.data
    assert lite.name == "EfficientNet-Lite" and lite.mode == "lines+markers+text"
    assert list(lite.x) == [3.41e6, 4.19e6, 4.87e6] and list(lite.y) == [0.40, 0.41, 0.42]  # smallest first
    assert list(lite.error_y.array) == pytest.approx([0.03] * 3)
    assert mobilenet.mode == "markers+text" and list(mobilenet.x) == [2.26e6]
    assert fig.layout.xaxis.type == "log"
    lines = sorted(shape.y0 for shape in fig.layout.shapes)  # pixels (no parameters) and random as lines
    assert lines == pytest.approx([0.095, 0.16])
    assert "No scores" in family_figure(made.iloc[:0], "rwp@15").layout.annotations[0].text


def test_compare_view_opens_with_the_answer_and_the_family_figure(store):
    out = render_compare(store, resolve_selection(store, {"view": "compare", "dataset": "shapes"}), "rwp@15")
    text = text_of(out["answer"])
    assert text.startswith("Best: ") and "Its cost: " in text and "As good, cheaper: " in text
    assert [trace.name for trace in out["family"].data] == ["EfficientNet-Lite (random)"]
    flat = render_compare(store, resolve_selection(store, {"view": "compare", "dataset": "shapes-flat"}), None)
    assert flat["answer"] is None and "unlabeled" in flat["family"].layout.annotations[0].text


# --------------------------------------------------------------------- Compare, UX round 2 (issue #13)
def test_compare_layers_are_named_per_model_and_winners_are_bold(store):
    from dash import html

    from playground.figures import MODEBAR_ROOM

    best = summary_table(store, "shapes").sort_values("rwp@15", kind="stable").iloc[-1]
    sel = resolve_selection(store, {"view": "compare", "dataset": "shapes", "metric": best["metric"]})
    out = render_compare(store, sel, "rwp@15")
    figure = out["layers"]
    lines = {trace.name: trace for trace in figure.data if trace.mode == "lines+markers"}
    assert list(lines) == [PIXELS, LITE]
    for model, trace in lines.items():  # Keras names in network order, each model on its own axis
        assert list(trace.x) == store.layers("shapes", model)
        axis = figure.layout["xaxis" if trace.xaxis == "x" else "xaxis" + trace.xaxis[1:]]
        assert axis.type == "category" and list(axis.categoryarray) == store.layers("shapes", model)
        assert sum(text.startswith("<b>") for text in axis.ticktext) == 1  # the model's best layer in bold
    assert lines[PIXELS].xaxis != lines[LITE].xaxis
    titles = [a.text for a in figure.layout.annotations if a.text in (PIXELS, LITE) or "★ best" in a.text]
    assert f"<b>{best['model']} ★ best</b>" in titles and len(titles) == 2
    stars = [trace for trace in figure.data if trace.mode == "markers+text"]
    assert all(text.startswith("<b>") for trace in stars for text in trace.text)
    # Every Compare figure's title sits below the toolbar's row.
    for name in ("layers", "heatmap", "cost_figure", "family"):
        title = out[name].layout.title
        assert title.yref == "container" and title.pad.t >= MODEBAR_ROOM and title.yanchor == "top", name
        assert out[name].layout.margin.t > MODEBAR_ROOM, name
    # Winners in bold in the tables: each model's best metric, the best model's row and cost.
    winners = find_class(out["table"], "winner")
    assert len(winners) == 2 and all(isinstance(cell.children, html.Strong) for cell in winners)
    assert best["model"] in text_of(find_class(out["verdicts"], "winner"))
    assert text_of(find_class(out["cost"], "winner")).startswith(best["model"])
    heat = out["heatmap"].data[0]
    assert all(sum("<b>" in text for text in row[:-1]) >= 1 for row in heat.text)  # a winner per class
    assert not any("<b>" in row[-1] for row in heat.text)  # never the random ranking


def test_a_click_on_a_compare_chart_opens_that_configuration_in_search(store):
    from playground.views.compare import search_target

    sel = resolve_selection(store, {"view": "compare", "dataset": "shapes", "metric": "euclidean", "query": 5,
                                    "k": 9})
    out = render_compare(store, sel, "rwp@15")

    def click(figure, trace, point):
        custom = figure.data[trace].customdata[point]
        return {"points": [{"curveNumber": trace, "pointNumber": point, "customdata": list(custom)}]}

    pathname, search = search_target(click(out["layers"], 0, 2), sel.to_dict())
    assert pathname == "/search"
    request = parse_url(pathname, search)
    assert request == {"view": "search", "dataset": "shapes", "model": PIXELS, "layer": "pixels_32x32",
                       "metric": "euclidean", "query": "5", "k": "9"}
    opened = resolve_selection(store, request)
    assert (opened.view, opened.model, opened.layer, opened.metric, opened.query) == (
        "search", PIXELS, "pixels_32x32", "euclidean", 5) and not opened.notices
    # The family figure's point carries its own best metric; the cost figure's and the heatmap's the bar's.
    family = out["family"].data[0]
    _, search = search_target(click(out["family"], 0, 0), sel.to_dict())
    assert f"model={family.customdata[0][0]}" in search and f"metric={family.customdata[0][2]}" in search
    _, search = search_target(click(out["cost_figure"], 0, 1), sel.to_dict())
    best_layer = cost_table(store, "shapes", "euclidean", "rwp@15").loc[1, "best layer"]
    assert f"model={LITE}&layer={best_layer}&metric=euclidean" in search
    heat = out["heatmap"].data[0]  # Dash's click data of a heatmap cell: its x and y, no customdata
    _, search = search_target({"points": [{"curveNumber": 0, "x": heat.x[0], "y": heat.y[0]}]}, sel.to_dict())
    assert f"model={PIXELS}&layer=" in search and "metric=euclidean" in search
    random_column = {"points": [{"curveNumber": 0, "x": heat.x[-1], "y": heat.y[0]}]}  # the random ranking's
    assert heat.x[-1] == "random" and search_target(random_column, sel.to_dict()) is None
    assert search_target(None, sel.to_dict()) is None and search_target({"points": []}, sel.to_dict()) is None
    assert search_target(click(out["layers"], 0, 0), None) is None  # no dataset selected


def test_compare_click_callback_writes_the_url(playground_artifacts):
    from playground import ids
    from playground.app import create_app

    app = create_app(playground_artifacts)
    clicks = [(key, c) for key, c in app.callback_map.items()
              if {i["id"] for i in c["inputs"]} == {ids.COMPARE_LAYERS, ids.COMPARE_FAMILY_GRAPH,
                                                     ids.COMPARE_COST_GRAPH, ids.COMPARE_HEATMAP}]
    assert len(clicks) == 1 and {i["property"] for i in clicks[0][1]["inputs"]} == {"clickData"}
    # Duplicate outputs (allow_duplicate) of the controller's URL: the URL is resolved like any link.
    assert clicks[0][0].startswith(f"..{ids.URL}.pathname@") and f"...{ids.URL}.search@" in clicks[0][0]


def test_log_axes_say_whole_numbers_with_units():
    import math

    from playground.figures import cost_quality_figure, family_figure, format_count, format_ms, log_ticks

    ticks = log_ticks([math.log10(0.06), math.log10(30)], format_ms)
    assert ticks["ticktext"] == ["0.1 ms", "0.3 ms", "1 ms", "3 ms", "10 ms", "30 ms"]
    assert log_ticks([math.log10(0.08), math.log10(25)], format_ms)["ticktext"] == [
        "0.1 ms", "0.3 ms", "1 ms", "3 ms", "10 ms"]  # 1-2-5 would give 8 ticks: 1-3 steps
    dense = log_ticks([math.log10(2e6), math.log10(6e6)], format_count)["ticktext"]
    assert dense == ["2M", "3M", "5M"]
    assert log_ticks([0, 4], format_ms)["ticktext"] == ["1 ms", "10 ms", "100 ms", "1 s", "10 s"]
    assert log_ticks(None, format_ms) == {}
    costs = pd.DataFrame({"model": ["pixels", "efficientnet-lite0-random", "big"],
                          "parameters (whole model)": [0, 3.4e6, 130e6],
                          "GFLOPs/image": [0, 0.4, 15], "ms/image": [0.05, 4.0, 120.0], "model MB": [0, 13.6, 520],
                          "best layer": ["pixels_8x8", "top_conv", "fc2"], "best rwp@15": [0.2, 0.3, 0.25]})
    fig = cost_quality_figure(costs, "best rwp@15", metric="cosine")
    assert all(text.endswith(("ms", " s")) for text in fig.layout.xaxis.ticktext)
    assert len(fig.layout.xaxis.tickvals) <= 7
    trace = fig.data[0]
    assert list(trace.text) == ["pixels", "<b>efficientnet-lite0-random</b>", "big"]  # the winner in bold
    assert len(trace.textposition) == 3 and trace.cliponaxis is False
    assert trace.textposition[0] != "middle left" and trace.textposition[2] != "middle right"  # kept inside
    assert "marker area: model file size (largest 520.0 MB)" in fig.layout.title.text
    family = pd.DataFrame({"model": ["a", "b"], "family": ["F", "F"], "parameters": [2e6, 5e6],
                           "layer": ["l1", "l2"], "metric": ["cosine", "cosine"], "rwp@15": [0.3, 0.4]})
    fig = family_figure(family, "rwp@15")
    assert fig.layout.xaxis.ticktext and all(t.endswith("M") for t in fig.layout.xaxis.ticktext)
    assert list(fig.data[0].text) == ["a", "<b>b</b>"]


def test_compare_builds_each_derived_table_once_per_render(store, monkeypatch):
    from playground import tables

    calls = {"summary_table": 0, "best_layers": 0, "metric_model_table": 0}
    for name in calls:
        real = getattr(tables, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(tables, name, counted)
    render_compare(store, resolve_selection(store, {"view": "compare", "dataset": "shapes"}), "rwp@15")
    assert calls == {"summary_table": 1, "best_layers": 1, "metric_model_table": 1}


def test_labels_are_placed_off_each_other_and_inside_the_plot():
    from playground.figures import place_labels

    # Three models in a cluster (EfficientNet-Lite0/1/2), one alone near the right edge.
    x, y = [0.50, 0.52, 0.55, 0.98], [0.40, 0.41, 0.40, 0.20]
    names = ["efficientnet-lite0", "efficientnet-lite1", "<b>efficientnet-lite2</b>", "inceptionv3-nsfwjs"]
    positions = place_labels(x, y, names, [0, 1], [0, 0.5])
    assert len(set(positions[:3])) == 3  # the cluster's names go three different ways
    assert "right" not in positions[3]  # not off the right edge
    assert place_labels([], [], [], [0, 1], [0, 1]) == []
