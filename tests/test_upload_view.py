"""The Upload view's rendering (playground/views/upload.py): results for an image, messages for what fails."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from playground import uploads
from playground.ranking import feature_results
from playground.state import resolve_selection
from playground.views.upload import render_upload
from tests.helpers import data_url, find_class, text_of
from tests.playground_fixtures import photo_png, png_bytes

PIXELS, LITE = "pixels", "efficientnet-lite0-random"


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
