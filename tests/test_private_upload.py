"""Private mode of the Upload view (issue #16): routes, the page's data flow, and headless Chromium end to end.

The browser tests read what the page sent twice: Chromium's DevTools network log (``Network.requestWillBeSent``:
every URL and request body) and every request the server received (a Flask hook, bodies included), and assert
that in private mode none carries the image's bytes, its base64 or any 48-character piece of either. They also
check that the browser's top-10 is the server's, and the cosine between the browser's features and the
server's, on scikit-image's photos.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.private_upload import (
    BrowserSession,
    cosine,
    export_stored_model,
    page_info,
    photo_bytes,
    server_features,
    top_ids,
)
from playground import ids, private
from playground.store import BrokenArtifact, MissingArtifact, Store, clear_caches
from precompute import artifacts as art
from precompute import npm_files
from precompute.readers.tfjs import read_export_spec

LITE, PIXELS = "efficientnet-lite0-random", "pixels"
NEEDS_CHROMIUM = pytest.mark.skipif(
    shutil.which("chromedriver") is None or shutil.which("chromium") is None,
    reason="needs chromium and chromedriver (apt-get install chromium chromium-driver)",
)
BROWSER = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:selenium.*"),
    NEEDS_CHROMIUM,
]


def browser_test(function):
    """The marks of a test that drives headless Chromium."""
    for mark in reversed(BROWSER):
        function = mark(function)
    return function


def _tfjs_installed() -> bool:
    return private.tfjs_problem() is None


NEEDS_TFJS = pytest.mark.skipif(not _tfjs_installed(),
                                reason="tf.min.js is not cached (python -m precompute.npm_files)")


NO_EXPORT = "a stand-in reason: this model has no TF.js export"


@pytest.fixture(scope="module")
def private_artifacts(playground_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The playground's artifacts with TF.js exports of shapes' two models (precompute writes them; exported
    here if this run did not) and none for shapes-flat's pixels (the index says why)."""
    root = tmp_path_factory.mktemp("private") / "artifacts"
    shutil.copytree(playground_artifacts, root)
    clear_caches()
    for model in (LITE, PIXELS):
        export_stored_model(root, "shapes", model)
    shutil.rmtree(art.tfjs_dir(root, "shapes-flat", PIXELS), ignore_errors=True)
    index = json.loads((root / "index.json").read_text())
    index["datasets"]["shapes-flat"]["models"][PIXELS]["tfjs"] = {"reason": NO_EXPORT}
    (root / "index.json").write_text(json.dumps(index))
    return root


# ------------------------------------------------------------------------------------------------ server side
def test_routes_serve_tfjs_exports_features_and_labels_with_path_checks(private_artifacts, monkeypatch):
    from playground.app import create_app

    app = create_app(private_artifacts)
    client = app.server.test_client()
    store = Store(private_artifacts)
    fingerprint = store.dataset("shapes").fingerprint

    if _tfjs_installed():
        answer = client.get("/private/tf.min.js?v=4.22.0")
        assert answer.status_code == 200 and answer.mimetype == "text/javascript"
        assert "max-age=31536000" in answer.headers["Cache-Control"]
        answer.close()

    if private.wasm_urls() is not None:  # TF.js' wasm backend: its script and binaries, the right MIME types
        answer = client.get("/private/tf-backend-wasm.min.js?v=4.22.0")
        assert answer.status_code == 200 and answer.mimetype == "text/javascript"
        answer.close()
        for name in npm_files.TFJS_WASM.companion_names:
            answer = client.get(f"/private/{name}?v=4.22.0")
            assert answer.status_code == 200 and answer.mimetype == "application/wasm", name
            assert answer.data[:4] == b"\0asm" and "immutable" in answer.headers["Cache-Control"]
            answer.close()
    assert client.get("/private/other.wasm").status_code == 404

    spec = json.loads(client.get(f"/private/shapes/{LITE}/export.json?v={fingerprint}").data)
    assert spec["layers"] == store.layers("shapes", LITE)
    for variant, entry in spec["variants"].items():
        for name in entry["files"]:
            answer = client.get(f"/private/shapes/{LITE}/{variant}/{name}?v={fingerprint}")
            assert answer.status_code == 200, (variant, name)
            assert "immutable" in answer.headers["Cache-Control"]
            answer.close()
    # The cache is long only for the current fingerprint.
    assert "max-age=300" in client.get(f"/private/shapes/{LITE}/export.json?v=old").headers["Cache-Control"]

    layer = store.layers("shapes", LITE)[-1]
    answer = client.get(f"/private/shapes/{LITE}/{layer}/features.f32?v={fingerprint}")
    features = np.frombuffer(answer.data, dtype="<f4").reshape(store.features("shapes", LITE, layer).shape)
    np.testing.assert_array_equal(features, store.features("shapes", LITE, layer))
    monkeypatch.setattr(private, "LOCAL_SEARCH_MAX_IMAGES", 10)  # a layer the page would not fetch is not served
    assert client.get(f"/private/shapes/{LITE}/{layer}/features.f32").status_code == 404
    labels = json.loads(client.get("/private/shapes/labels.json").data)["labels"]
    assert labels == [str(x) for x in store.labels("shapes")]
    assert json.loads(client.get("/private/shapes-flat/labels.json").data)["labels"] is None

    for path in (
        "/private/shapes-flat/pixels/export.json",  # no export
        f"/private/shapes/{LITE}/float32/../../../index.json",
        f"/private/shapes/{LITE}/float32/..%2F..%2Findex.json",
        f"/private/shapes/{LITE}/float32/export.json",  # not a variant's file name
        f"/private/shapes/{LITE}/int4/model.json",  # not a variant
        f"/private/shapes/{LITE}/nolayer/features.f32",
        f"/private/shapes/{LITE}/{layer}/features.npy",
        "/private/..%2Fshapes/labels.json",
        "/private/nodataset/labels.json",
        "/private/shapes/nomodel/export.json",
    ):
        answer = client.get(path)
        # 404, or Dash's page for a path the routes do not match (a client normalises "..": /private/index.json)
        assert answer.status_code == 404 or (answer.mimetype == "text/html" and b"schema_version" not in answer.data)


def test_the_store_reads_the_export_and_names_a_missing_or_broken_one(private_artifacts, tmp_path):
    root = tmp_path / "artifacts"
    shutil.copytree(private_artifacts, root)
    clear_caches()
    store = Store(root)
    spec = store.tfjs_export("shapes", LITE)
    assert spec == read_export_spec(art.tfjs_dir(root, "shapes", LITE)) and store.tfjs_export("shapes", LITE) is spec
    assert list(spec.layers) == store.layers("shapes", LITE)
    assert store.tfjs_file("shapes", LITE, "export.json") == art.tfjs_export_path(root, "shapes", LITE)
    model_json = store.tfjs_file("shapes", LITE, "model.json", variant="uint8")
    assert model_json == art.tfjs_variant_dir(root, "shapes", LITE, "uint8") / "model.json"
    for name, variant in (("export.json", "uint8"), ("model.json", None), ("..", "uint8"), ("model.json", "..."),
                          ("model.json", "int4")):
        with pytest.raises(MissingArtifact):
            store.tfjs_file("shapes", LITE, name, variant=variant)
    with pytest.raises(MissingArtifact, match="tfjs/export.json does not exist"):
        store.tfjs_export("shapes-flat", PIXELS)
    art.tfjs_export_path(root, "shapes", LITE).write_text(json.dumps({"format": 1, "scale": 3}))
    with pytest.raises(BrokenArtifact, match=f"shapes/{LITE}/tfjs/export.json cannot be read"):
        store.tfjs_export("shapes", LITE)
    export, reason = private.read_export(store, "shapes", LITE)
    assert export is None and "export is unreadable" in reason and str(root) not in reason


def test_tfjs_route_says_why_when_tfjs_is_missing(private_artifacts, monkeypatch, tmp_path):
    from playground.app import create_app

    monkeypatch.setenv("SISP_TFJS_JS", str(tmp_path / "missing.js"))
    answer = create_app(private_artifacts).server.test_client().get("/private/tf.min.js")
    assert answer.status_code == 404 and b"TensorFlow.js is not installed" in answer.data
    info = private.private_info(Store(private_artifacts), "shapes", LITE, Store(private_artifacts).layers(
        "shapes", LITE)[-1])
    assert not info["available"] and "TensorFlow.js is not installed" in info["reason"]
    assert str(tmp_path) not in info["reason"] and str(tmp_path).encode() not in answer.data  # no server path


@NEEDS_TFJS
def test_private_info_says_what_the_browser_does(private_artifacts, monkeypatch):
    from playground.views.upload import render_private_line

    store = Store(private_artifacts)
    layer = store.layers("shapes", LITE)[-1]
    info = private.private_info(store, "shapes", LITE, layer)
    assert info["available"] and info["local"] and info["n_images"] == 24
    assert info["default_variant"] == private.DEFAULT_VARIANT and set(info["variants"]) == set(private.VARIANTS)
    record = store.model("shapes", LITE).tfjs  # the sizes are the index's
    assert record is None or info["variants"] == dict(record.variant_bytes)
    assert info["dim"] == store.features("shapes", LITE, layer).shape[1]
    line = render_private_line(info, True, "float16")
    assert "stays in this browser" in line and "nothing about your image is sent" in line
    assert f"{info['variants']['float16'] / 1e6:.1f} MB" in line

    monkeypatch.setattr(private, "LOCAL_SEARCH_MAX_IMAGES", 10)
    info = private.private_info(store, "shapes", LITE, layer)
    assert not info["local"] and "only its feature vector" in render_private_line(info, True, "uint8")

    pixels = private.private_info(store, "shapes-flat", PIXELS, "pixels_8x8")
    assert not pixels["available"] and pixels["reason"] == NO_EXPORT
    assert "Private mode is unavailable here" in render_private_line(pixels, True, None)
    assert "Private mode is off" in render_private_line(info, False, "float16")


@NEEDS_TFJS
def test_private_info_gives_the_distance_reference_and_keeps_other_metrics_on_the_server(private_artifacts,
                                                                                         monkeypatch):
    """A local search gets the collection's distance reference (its cards say "closer than N %" as the server's
    do); a registered metric the browser does not compute (browser=False) is ranked by the server."""
    import dataclasses

    from playground.ranking import distance_reference
    from precompute import similarity

    store = Store(private_artifacts)
    layer = store.layers("shapes", LITE)[-1]
    info = private.private_info(store, "shapes", LITE, layer, "cosine")
    assert info["local"] and info["reference"] == distance_reference(store, "shapes", LITE, layer,
                                                                     "cosine").for_browser()
    assert len(info["reference"]["closer"]) == 101 and info["reference"]["weak_above"] > 0
    assert private.private_info(store, "shapes", LITE, layer)["reference"] is None  # no metric: nothing to place

    monkeypatch.setitem(similarity.METRICS, "cosine", dataclasses.replace(similarity.METRICS["cosine"], browser=False))
    info = private.private_info(store, "shapes", LITE, layer, "cosine")
    assert info["available"] and not info["local"] and info["reference"] is None


def test_browser_feature_vector_is_ranked_like_an_upload(private_artifacts):
    from dash.exceptions import PreventUpdate

    from playground.ranking import feature_results
    from playground.views.upload import render_private_results
    from tests.helpers import find_class, text_of

    store = Store(private_artifacts)
    layer = store.layers("shapes", LITE)[-1]
    query = store.features("shapes", LITE, layer)[5]
    panel = render_private_results(store, {"features": query.tolist(), "dataset": "shapes", "model": LITE,
                                           "layer": layer, "metric": "cosine", "k": 6})
    cards = find_class(panel, "result-card")
    expected = feature_results(store, "shapes", LITE, layer, "cosine", query[None], 6)
    assert [int(card.to_plotly_json()["props"]["data-image-id"]) for card in cards] == [r.image_id for r in expected]
    bad = render_private_results(store, {"features": [1.0, 2.0], "dataset": "shapes", "model": LITE, "layer": layer,
                                         "metric": "cosine", "k": 6})
    assert "cannot be used" in text_of(bad)
    with pytest.raises(PreventUpdate):
        render_private_results(store, None)


def test_no_server_callback_receives_the_uploads_contents(tmp_path):
    from playground.app import create_app

    app = create_app(tmp_path)
    readers = [key for key, spec in app.callback_map.items()
               if {"id": ids.UPLOAD, "property": "contents"} in spec["inputs"] + spec["state"]]
    # One reader, assets/private_upload.js' onUpload, clientside: it decides whether the contents go anywhere. None
    # would mean the upload's id or property was renamed and this test no longer looks at it.
    assert len(readers) == 1, readers
    assert "callback" not in app.callback_map[readers[0]], readers  # no server function behind it


# ------------------------------------------------------------------------------------------------ Chromium
def _pieces(data: bytes, size: int = 48, count: int = 24) -> tuple[list[bytes], list[str]]:
    """Pieces of the file's bytes and of its base64 (every alignment of the 3-byte groups), spread over the file."""
    step = max(1, (len(data) - size) // count)
    raw = [data[i:i + size] for i in range(0, len(data) - size, step)][:count]
    encoded = []
    for shift in range(3):
        text = base64.b64encode(data[shift:]).decode("ascii")
        encoded += [text[i:i + size] for i in range(8, len(text) - size, max(1, (len(text) - size) // count))][:count]
    for variant in list(encoded):  # URL-safe and URL-encoded forms
        encoded.append(variant.replace("+", "-").replace("/", "_"))
        encoded.append(variant.replace("+", "%2B").replace("/", "%2F"))
    return raw, encoded


def assert_image_never_sent(browser: BrowserSession, data: bytes) -> int:
    """No request (DevTools log or server) carries a piece of ``data`` or of its base64; the number checked."""
    raw, encoded = _pieces(data)
    sent = browser.network()
    assert sent, "the DevTools network log is empty"
    for request in sent:
        text = request["url"] + (request["postData"] or "")
        assert not request["url"].startswith("data:"), request["url"][:80]
        assert not any(piece in text for piece in encoded), request["url"][:200]
    for _method, path, body in browser.requests:
        assert not any(piece in body for piece in raw), path
        text = path + body.decode("latin-1")
        assert not any(piece in text for piece in encoded), path
    return len(sent)


def _open_upload(browser: BrowserSession, model: str, layer: str, k: int = 10) -> None:
    browser.open(f"/upload?dataset=shapes&model={model}&layer={layer}&metric=cosine&k={k}")
    browser.wait_for(f"return document.querySelector('#{ids.PRIVATE_LINE}')?.textContent.length > 0")


def _choose_variant(browser: BrowserSession, variant: str) -> None:
    browser.driver.execute_script(f"window.dash_clientside.set_props('{ids.PRIVATE_VARIANT}', {{value: '{variant}'}});")
    browser.wait_for(f"return document.querySelector('#{ids.PRIVATE_LINE}').textContent.includes('({variant})')")


def _upload(browser: BrowserSession, path: Path) -> None:
    browser.driver.find_element("css selector", "#upload input[type=file]").send_keys(str(path))


def _result_ids(browser: BrowserSession, ranked_by: str) -> list[int]:
    script = (f"return Array.from(document.querySelectorAll('.private-results[data-ranked-by={ranked_by}] "
              ".result-card')).map(e => Number(e.dataset.imageId));")
    return browser.driver.execute_script(script)


# PNG: a JPEG decodes at a reduced scale in Python when the model needs far fewer pixels (PIL's draft mode, at
# this fixture's 64 px input), which a browser cannot do; at 224 px the photos decode whole (bench/private_upload).
@browser_test
@NEEDS_TFJS
@pytest.mark.parametrize("photo, model, layer", [("chelsea", PIXELS, "pixels_16x16"), ("coffee", LITE, None)])
def test_private_mode_searches_in_the_browser_and_sends_nothing_of_the_image(
    private_artifacts, tmp_path, photo, model, layer, screenshot_dir
):
    from playground.app import create_app
    from playground.views.upload import render_private_results
    from tests.helpers import find_class, text_of

    store = Store(private_artifacts)
    layer = layer or store.layers("shapes", model)[-1]
    data = photo_bytes(photo, "PNG")
    path = tmp_path / f"{photo}.png"
    path.write_bytes(data)
    with BrowserSession(create_app(private_artifacts)) as browser:
        _open_upload(browser, model, layer)
        assert "stays in this browser" in browser.driver.find_element("id", ids.PRIVATE_LINE).text
        _choose_variant(browser, "float32")
        browser.network()  # what the page loaded so far
        _upload(browser, path)
        browser.wait_for("return document.querySelectorAll('.private-results[data-ranked-by=browser] "
                         ".result-card').length === 10", timeout=180)
        got = _result_ids(browser, "browser")
        report = browser.driver.find_element("css selector", ".private-report")
        assert report.get_attribute("data-mode") == "local" and report.get_attribute("data-variant") == "float32"
        assert f"backend {report.get_attribute('data-backend')}" in report.text  # which backend ran, and why
        assert report.get_attribute("data-backend-why") in report.text
        assert "nothing about your image was sent" in report.text
        assert "this image" in browser.driver.find_element("css selector", ".private-timings").text
        features = np.asarray(browser.driver.execute_script("return window.sispPrivateLast.features;"), np.float32)
        # The cards place each distance on the collection's own scale, and a far best result is called weak, in
        # the server's words (issue #24; tests/test_card_parity.py compares the renderers in full).
        closer = browser.driver.execute_script(
            "return Array.from(document.querySelectorAll('.private-results[data-ranked-by=browser] .result-card'))"
            ".map(card => card.querySelector('.closer-than')?.textContent);")
        weak = [e.text for e in browser.driver.find_elements("css selector", f"#{ids.UPLOAD_STATUS} .weak-match")]
        browser.driver.save_screenshot(str(screenshot_dir / f"upload-private-{photo}.png"))
        assert_image_never_sent(browser, data)
        # Nor anything that depends on it: no feature vector, no result ids (the results' buttons stay clientside).
        posts = [body for _, p, body in browser.requests if p.startswith("/_dash-update-component")]
        assert not any(ids.PRIVATE_QUERY.encode() in body or ids.UPLOAD_PICK.encode() in body for body in posts)
        # Every thumbnail was fetched, not only the results': no request depends on the image.
        thumbs = {p.split("?")[0] for _, p, _ in browser.requests if p.startswith("/thumbs/shapes/")}
        assert thumbs == {f"/thumbs/shapes/{i}.jpg" for i in range(24)}
    expected = server_features(store, "shapes", model, layer, data)
    print(f"{photo} / {model} / {layer}: cosine browser vs server {cosine(features, expected):.7f}")
    assert cosine(features, expected) >= 0.999
    assert got == top_ids(store, "shapes", model, layer, "cosine", expected, 10)
    server = render_private_results(store, {"features": features.tolist(), "dataset": "shapes", "model": model,
                                            "layer": layer, "metric": "cosine", "k": 10})
    assert closer == [text_of(find_class(card, "closer-than")) for card in find_class(server, "result-card")]
    assert all(text.startswith("closer than ") for text in closer)
    assert weak == [text_of(note) for note in find_class(server, "weak-match")]



def test_without_the_wasm_backend_the_page_gets_no_wasm_urls(private_artifacts, monkeypatch, tmp_path):
    monkeypatch.setenv(npm_files.TFJS_WASM.env, str(tmp_path / "missing.js"))
    assert private.wasm_urls() is None
    if _tfjs_installed():
        info = private.private_info(Store(private_artifacts), "shapes", LITE, Store(private_artifacts).layers(
            "shapes", LITE)[-1])
        assert info["available"] and info["urls"]["wasm"] is None  # the page then tries webgl, then cpu


NEEDS_WASM = pytest.mark.skipif(private.wasm_urls() is None,
                                reason="TF.js' wasm backend is not cached (python -m precompute.npm_files)")


@browser_test
@NEEDS_TFJS
@NEEDS_WASM
def test_headless_chromium_runs_the_wasm_backend_with_the_servers_features(private_artifacts):
    """No GPU here: WebGL is software-rendered (SwiftShader), so the page picks wasm (docs/benchmarks.md,
    section 13: about 5 times faster than that WebGL, 20 times faster than cpu), loads its binary from the app,
    and its float32 and uint16 features match the server's (cosine >= 0.999, the same top-10)."""
    from playground.app import create_app

    store = Store(private_artifacts)
    layer = store.layers("shapes", LITE)[-1]
    photos = {name: photo_bytes(name, "PNG") for name in ("astronaut", "chelsea", "coffee")}
    with BrowserSession(create_app(private_artifacts)) as browser:
        _open_upload(browser, LITE, layer)
        browser.wait_for("return Boolean(window.sispPrivateUpload && window.sispPrivate)")
        urls = page_info(store, "shapes", LITE, layer, "cosine", 10, "float32")["urls"]
        browser.network()
        picked = browser.pick_backend(urls["tf"], urls["wasm"])
        assert picked["name"] == "wasm", picked
        assert "software-rendered" in picked["why"] or "no WebGL" in picked["why"], picked
        for variant in ("float32", "uint16"):
            info = page_info(store, "shapes", LITE, layer, "cosine", 10, variant)
            browser.reset_model()
            for name, data in photos.items():
                result = browser.embed(info, data, "image/png")
                assert result["backend"] == "wasm"
                features = np.asarray(result["features"], np.float32)
                expected = server_features(store, "shapes", LITE, layer, data)
                assert cosine(features, expected) >= 0.999, (variant, name)
                assert (top_ids(store, "shapes", LITE, layer, "cosine", features, 10)
                        == top_ids(store, "shapes", LITE, layer, "cosine", expected, 10)), (variant, name)
        wasm_loads = [r["url"] for r in browser.network() if r["url"].split("?")[0].endswith(".wasm")]
    assert wasm_loads and all(url.startswith(browser.url + "/private/tfjs-backend-wasm") for url in wasm_loads)


@browser_test
@NEEDS_TFJS
@NEEDS_WASM
def test_a_wasm_backend_that_fails_falls_back_to_webgl_or_cpu(private_artifacts, tmp_path, monkeypatch):
    """Broken .wasm binaries: the page says wasm failed and runs the next backend, with the same features."""
    from playground.app import create_app

    folder = tmp_path / "wasm"
    folder.mkdir()
    script = npm_files.TFJS_WASM.find(fetch=False)
    shutil.copy(script, folder / script.name)
    for name in npm_files.TFJS_WASM.companion_names:
        (folder / name).write_bytes(b"\0asm not a module")
    monkeypatch.setenv(npm_files.TFJS_WASM.env, str(folder / script.name))
    store = Store(private_artifacts)
    layer = store.layers("shapes", LITE)[-1]
    data = photo_bytes("chelsea", "PNG")
    with BrowserSession(create_app(private_artifacts)) as browser:
        _open_upload(browser, LITE, layer)
        browser.wait_for("return Boolean(window.sispPrivateUpload && window.sispPrivate)")
        info = page_info(store, "shapes", LITE, layer, "cosine", 10, "float32")
        picked = browser.pick_backend(info["urls"]["tf"], info["urls"]["wasm"])
        assert picked["name"] in ("webgl", "cpu") and "wasm failed" in picked["why"], picked
        result = browser.embed(info, data, "image/png")
    assert result["backend"] == picked["name"]
    assert cosine(result["features"], server_features(store, "shapes", LITE, layer, data)) >= 0.999


@browser_test
@NEEDS_TFJS
def test_private_mode_sends_only_the_feature_vector_for_a_big_dataset(private_artifacts, tmp_path, monkeypatch):
    from playground.app import create_app

    monkeypatch.setattr(private, "LOCAL_SEARCH_MAX_IMAGES", 10)  # shapes (24 images) counts as big
    store = Store(private_artifacts)
    layer = store.layers("shapes", LITE)[-1]
    data = photo_bytes("astronaut", "PNG")
    path = tmp_path / "astronaut.png"
    path.write_bytes(data)
    with BrowserSession(create_app(private_artifacts)) as browser:
        _open_upload(browser, LITE, layer, k=8)
        assert "only its feature vector" in browser.driver.find_element("id", ids.PRIVATE_LINE).text
        browser.network()
        _upload(browser, path)
        browser.wait_for("return document.querySelectorAll('.private-results[data-ranked-by=server] "
                         ".result-card').length === 8", timeout=180)
        got = _result_ids(browser, "server")
        report = browser.driver.find_element("css selector", ".private-report")
        assert report.get_attribute("data-mode") == "vector" and "feature vector" in report.text
        features = np.asarray(browser.driver.execute_script("return window.sispPrivateLast.features;"), np.float32)
        assert_image_never_sent(browser, data)
        vectors = [json.loads(body) for _, p, body in browser.requests
                   if p.startswith("/_dash-update-component") and ids.PRIVATE_QUERY.encode() in body]
        assert vectors, "the feature vector was not sent"

        # A file the browser cannot decode: a message, and nothing of it is sent either.
        fake = tmp_path / "not-an-image.png"
        fake.write_bytes(b"definitely not a PNG file, " * 40)
        _upload(browser, fake)
        browser.wait_for(f"return document.querySelector('#{ids.UPLOAD_STATUS} .message-error')?.textContent"
                         ".includes('not-an-image.png')")
        status = browser.driver.find_element("id", ids.UPLOAD_STATUS).text
        assert "cannot decode it as an image" in status and "))" not in status
        assert_image_never_sent(browser, fake.read_bytes())
    expected = server_features(store, "shapes", LITE, layer, data)
    assert cosine(features, expected) >= 0.999
    assert got == top_ids(store, "shapes", LITE, layer, "cosine", features, 8)



@browser_test
def test_server_fallback_says_why(private_artifacts, tmp_path):
    from playground.app import create_app

    data = photo_bytes("coffee")
    path = tmp_path / "coffee.jpg"
    path.write_bytes(data)
    with BrowserSession(create_app(private_artifacts)) as browser:
        # pixels has no export: the page says so before and after the upload, and the server computes.
        browser.open("/upload?dataset=shapes-flat&model=pixels&layer=pixels_8x8&metric=cosine&k=6")
        browser.wait_for(f"return document.querySelector('#{ids.PRIVATE_LINE}')?.textContent.length > 0")
        assert "Private mode is unavailable here" in browser.driver.find_element("id", ids.PRIVATE_LINE).text
        _upload(browser, path)
        browser.wait_for("return document.querySelectorAll('#upload-results .result-card').length === 6", 180)
        status = browser.driver.find_element("id", ids.UPLOAD_STATUS).text
        assert "Features computed on the server: private mode is unavailable here" in status
        assert NO_EXPORT in status
        assert any(base64.b64encode(data)[:400] in body for _, _, body in browser.requests)  # it was sent

        # Private mode switched off: the server computes, and the page says why.
        _open_upload(browser, LITE, Store(private_artifacts).layers("shapes", LITE)[-1], k=6)
        browser.driver.find_element("id", ids.PRIVATE_MODE).click()
        browser.wait_for(f"return document.querySelector('#{ids.PRIVATE_LINE}').textContent.includes('is off')")
        _upload(browser, path)
        browser.wait_for("return document.querySelectorAll('#upload-results .result-card').length === 6", 180)
        assert "Features computed on the server: private mode is off" in browser.driver.find_element(
            "id", ids.UPLOAD_STATUS).text



@browser_test
@NEEDS_TFJS
def test_a_tfjs_failure_falls_back_to_the_server(private_artifacts, tmp_path):
    from playground.app import create_app

    root = tmp_path / "artifacts"
    shutil.copytree(private_artifacts, root)
    clear_caches()
    layer = Store(root).layers("shapes", LITE)[-1]
    variant = private.DEFAULT_VARIANT
    for shard in (art.tfjs_dir(root, "shapes", LITE) / variant).glob("*.bin"):
        shard.unlink()  # the model cannot load in the browser
    path = tmp_path / "chelsea.png"
    path.write_bytes(photo_bytes("chelsea", "PNG"))
    with BrowserSession(create_app(root)) as browser:
        _open_upload(browser, LITE, layer, k=6)
        _upload(browser, path)
        browser.wait_for("return document.querySelectorAll('#upload-results .result-card').length === 6", 180)
        status = browser.driver.find_element("id", ids.UPLOAD_STATUS).text
        assert "Features computed on the server: TensorFlow.js failed in this browser" in status, status


@browser_test
@NEEDS_TFJS
def test_quantised_variants_stay_close_to_the_server(private_artifacts, capsys):
    """float32 within the issue's cosine 0.999; the quantised variants' cosines are reported (and sane)."""
    from playground.app import create_app

    store = Store(private_artifacts)
    layer = store.layers("shapes", LITE)[-1]
    photos = {name: photo_bytes(name, "PNG") for name in ("astronaut", "chelsea", "coffee")}
    expected = {name: server_features(store, "shapes", LITE, layer, data) for name, data in photos.items()}
    found: dict[str, list[float]] = {}
    with BrowserSession(create_app(private_artifacts)) as browser:
        _open_upload(browser, LITE, layer)
        browser.wait_for("return Boolean(window.sispPrivateUpload && window.sispPrivate)")
        for variant in private.VARIANTS:
            info = page_info(store, "shapes", LITE, layer, "cosine", 10, variant)
            browser.reset_model()
            found[variant] = [cosine(browser.embed(info, data)["features"], expected[name])
                              for name, data in photos.items()]
    with capsys.disabled():
        print("\ncosine browser vs server, shapes / " + LITE + ": " +
              ", ".join(f"{v} {min(c):.6f}" for v, c in found.items()))
    assert min(found["float32"]) >= 0.999
    assert all(min(c) >= 0.99 for c in found.values()), found

