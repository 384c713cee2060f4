"""Relevance feedback in headless Chromium (issue #23), on the playground fixtures' stored features.

One page session checks the whole online flow: a deep link's marks (one malformed: a notice), the automatic
refine it makes, marks by keyboard and mouse with their ARIA state, Refine (Rocchio, and the TF.js head), Undo,
Reset, marked cards that keep their mark when they move, the browser's ranking against the Python engine's, and
Chromium's DevTools network log during all the marks and refines: no request at all after the once-per-layer
download of the features, labels and thumbnails (which is the same whatever is marked), so none carries the
marks, the query id or the features; the server's own request log agrees.
"""

from __future__ import annotations

import shutil
import time
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from bench.private_upload import BrowserSession
from playground.app import create_app
from playground.store import Store, clear_caches
from precompute import feedback

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:selenium.*"),
    pytest.mark.skipif(
        shutil.which("chromedriver") is None or shutil.which("chromium") is None,
        reason="needs chromium and chromedriver (apt-get install chromium chromium-driver)",
    ),
]

DATASET, MODEL, METRIC, QUERY, K = "shapes", "pixels", "cosine", 3, 10


def _poll(condition, timeout: float = 60.0, what: str = "condition"):
    end = time.time() + timeout
    while time.time() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not met in {timeout} s")


def _cards(driver) -> list[dict]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#search-results .result-card')).map(e => "
        "({id: +e.dataset.imageId, mark: e.dataset.mark || '', rank: e.querySelector('.rank').textContent}));"
    )


def _bar(driver, attribute: str) -> str | None:
    return driver.execute_script(
        f"const b = document.querySelector('#search-results .feedback-bar'); return b && b.getAttribute('{attribute}');"
    )


def _button(driver, image_id: int, kind: str):
    return driver.find_element(
        "css selector", f'#search-results .result-card[data-image-id="{image_id}"] .fb-mark[data-kind="{kind}"]'
    )


def _status(driver) -> str:
    return driver.execute_script("return document.querySelector('#search-results .feedback-status').textContent")


def _settle(browser: BrowserSession, quiet: float = 1.0, timeout: float = 60.0) -> None:
    """Wait until the page's own callbacks are done (no component loading, no request for ``quiet`` seconds) and
    empty the network log: what a test then reads is what its own clicks sent. Under load a figure's callback from
    the page load could otherwise still be on its way when the log is emptied (seen once in a full run)."""
    end, last = time.time() + timeout, time.time()
    while time.time() < end:
        busy = browser.driver.execute_script("return !!document.querySelector('[data-dash-is-loading=\"true\"]')")
        if busy or browser.network():
            last = time.time()
        elif time.time() - last >= quiet:
            return
        time.sleep(0.1)
    raise TimeoutError(f"the page still sent requests after {timeout:.0f} s")


def _network(browser: BrowserSession) -> list[dict]:
    """The network log since the last call, less the page's own object URLs (thumbnails already downloaded,
    shown from memory: ``blob:``), which never leave the browser."""
    return [r for r in browser.network() if not r["url"].startswith(("blob:", "data:"))]


def _stored(root, model: str = MODEL, layer: str | None = None) -> tuple[Store, str, np.ndarray, np.ndarray, list[int]]:
    """The store over ``root`` (caches cleared), the layer (default: the model's last), its features, the labels
    and QUERY's first K results as the server ranks them."""
    clear_caches()
    store = Store(root)
    layer = layer or store.layers(DATASET, model)[-1]
    features = np.asarray(store.features(DATASET, model, layer), dtype=np.float32)
    labels = np.asarray(store.labels(DATASET)).astype(str)
    first = [int(i) for i in store.neighbors(DATASET, model, layer, METRIC)[0][QUERY, :K]]
    return store, layer, features, labels, first


def test_marks_refine_undo_reset_deep_link_and_nothing_sent(playground_artifacts):
    store, layer, features, labels, first = _stored(playground_artifacts)
    same = [i for i in first if labels[i] == labels[QUERY]]
    other = [i for i in first if labels[i] != labels[QUERY]]
    assert same and other, "the fixture's top results must hold both classes"

    with BrowserSession(create_app(playground_artifacts)) as browser:
        driver = browser.driver
        search = f"?dataset={DATASET}&model={MODEL}&layer={layer}&metric={METRIC}&query={QUERY}&k={K}"
        # A deep link: one relevant and one not-relevant mark, one malformed value, one id beyond the dataset.
        browser.open(f"/search{search}#rel={same[0]},x&not={other[0]},999")
        _poll(lambda: _bar(driver, "data-round") == "1", what="the deep link's marks refine once")
        notices = driver.execute_script("return document.getElementById('notice').textContent")
        assert '"x"' in notices and "999 is not in this dataset" in notices, notices
        marks = {c["id"]: c["mark"] for c in _cards(driver)}
        assert _bar(driver, "data-method") == feedback.DEFAULT_METHOD, "the page runs the default method"
        assert QUERY not in marks and marks.get(same[0]) == "relevant"
        assert driver.execute_script("return location.hash") == f"#rel={same[0]}&not={other[0]}"
        assert _bar(driver, "data-ready") == "true"

        # Everything below happens after the once-per-layer download: the network log must stay empty.
        _settle(browser)
        served = len(browser.requests)
        _button(driver, same[0], "clear").click()  # the deep link's marks cleared by mouse
        assert _button(driver, same[0], "relevant").get_attribute("aria-pressed") == "false"
        driver.find_element("css selector", "#search-results .feedback-reset").click()  # the rest, and the ranking
        _poll(lambda: [c["id"] for c in _cards(driver)] == first, what="Reset restores the original ranking")
        _poll(lambda: all(c["mark"] == "" for c in _cards(driver)), what="marks cleared")
        assert _button(driver, same[0], "relevant").get_attribute("aria-pressed") == "false"
        shown = [c["id"] for c in _cards(driver)]
        rel = [i for i in shown if labels[i] == labels[QUERY] and i != QUERY][:3]
        nrel = [i for i in shown if labels[i] != labels[QUERY]][:2]
        _button(driver, rel[0], "relevant").send_keys("r")  # the keyboard: R on a focused card
        _button(driver, nrel[0], "not").send_keys("n")
        _button(driver, rel[1], "relevant").send_keys("\n")  # Enter on the focused button
        for i in rel[2:]:
            _button(driver, i, "relevant").click()
        for i in nrel[1:]:
            _button(driver, i, "not").click()
        assert _button(driver, rel[0], "relevant").get_attribute("aria-pressed") == "true"
        assert _button(driver, nrel[0], "not").get_attribute("aria-pressed") == "true"
        _button(driver, rel[0], "relevant").send_keys("")  # focus a mark, then Tab to the next one
        ActionChains(driver).send_keys(Keys.TAB).perform()
        focused = driver.execute_script(
            "const e = document.activeElement; return [e.className, e.matches(':focus-visible'), "
            "getComputedStyle(e).outlineStyle, getComputedStyle(e).outlineWidth];"
        )
        assert "fb-mark" in focused[0] and focused[1], focused
        assert focused[2] != "none" and focused[3] != "0px", f"the focused mark must show its focus: {focused}"

        before = [c["id"] for c in _cards(driver)]
        driver.execute_script("document.querySelector('#search-results .feedback-method').value = 'rocchio'")
        driver.find_element("css selector", "#search-results .feedback-refine").click()
        _poll(lambda: _bar(driver, "data-round") == "1", what="a refine by Rocchio")
        after = _cards(driver)
        want = feedback.refine(features[QUERY], features, rel, nrel, METRIC, K, exclude=QUERY)
        assert [c["id"] for c in after] == [int(i) for i in want.indices[0]], "the browser ranks as Python does"
        for card in after:  # marked cards keep their mark wherever they moved
            assert card["mark"] == ("relevant" if card["id"] in rel else "not" if card["id"] in nrel else "")
        sentence = _status(driver)
        assert f"{len(rel)} relevant, {len(nrel)} not:" in sentence and "now share the query's class, was" in sentence
        assert "nothing was sent" in sentence

        driver.find_element("css selector", "#search-results .feedback-undo").click()
        _poll(lambda: [c["id"] for c in _cards(driver)] == before, what="Undo restores the ranking before Refine")
        driver.find_element("css selector", "#search-results .feedback-reset").click()
        _poll(lambda: [c["id"] for c in _cards(driver)] == first, what="Reset restores the original ranking")
        assert all(c["mark"] == "" for c in _cards(driver))
        assert driver.execute_script("return location.hash") == ""

        sent = _network(browser)
        assert sent == [], f"marks and refines sent requests: {[r['url'] for r in sent]}"
        assert len(browser.requests) == served, browser.requests[served:]

        # The head: TensorFlow.js is loaded (the same files for any marks), then the fit sends nothing.
        for i in rel:
            _button(driver, i, "relevant").click()
        for i in nrel:
            _button(driver, i, "not").click()
        driver.execute_script("document.querySelector('#search-results .feedback-method').value = 'head'")
        driver.find_element("css selector", "#search-results .feedback-refine").click()
        _poll(
            lambda: _bar(driver, "data-method") == "head" and _bar(driver, "data-round") == "1",
            120,
            what="a refine by the TF.js head",
        )
        assert "a small head fitted with TensorFlow.js" in _status(driver)
        loaded = [r["url"].split("?")[0].rsplit("/", 1)[-1] for r in _network(browser)]
        assert all(name.startswith(("tf.min.js", "tf-backend-wasm", "tfjs-backend-wasm")) for name in loaded), loaded
        ids = [c["id"] for c in _cards(driver)]
        assert QUERY not in ids and sum(labels[i] == labels[QUERY] for i in ids) >= len(rel)


def test_a_dataset_too_big_for_the_browser_sends_only_the_refined_vector(playground_artifacts, monkeypatch):
    """Above the browser's limit the page computes Rocchio from the shown results' rows and sends the vector."""
    import json

    from playground import private

    monkeypatch.setattr(private, "LOCAL_SEARCH_MAX_IMAGES", 5)
    store, layer, features, labels, first = _stored(playground_artifacts)
    with BrowserSession(create_app(playground_artifacts)) as browser:
        driver = browser.driver
        browser.open(f"/search?dataset={DATASET}&model={MODEL}&layer={layer}&metric={METRIC}&query={QUERY}&k={K}")
        _poll(lambda: _bar(driver, "data-view") == "search", what="the feedback bar")
        options = driver.execute_script(
            "return Array.from(document.querySelectorAll('#search-results .feedback-method option')).map(o => o.value)"
        )
        assert options == ["rocchio"], "the head needs every image's features: not offered here"
        _settle(browser)
        rel = [i for i in first if labels[i] == labels[QUERY]][:2]
        nrel = [i for i in first if labels[i] != labels[QUERY]][:2]
        for i in rel:
            _button(driver, i, "relevant").click()
        for i in nrel:
            _button(driver, i, "not").click()
        _poll(lambda: _bar(driver, "data-ready") == "true", what="the shown results' rows")
        driver.find_element("css selector", "#search-results .feedback-refine").click()
        _poll(lambda: _bar(driver, "data-round") == "1", what="a refine through the server")
        want = feedback.refine(features[QUERY], features, rel, nrel, METRIC, K, exclude=QUERY)
        assert [c["id"] for c in _cards(driver)] == [int(i) for i in want.indices[0]]
        assert "only the refined query vector" in _status(driver)
        sent = _network(browser)
        posts = [r for r in sent if r["method"] == "POST"]
        assert len(posts) == 1 and posts[0]["url"].endswith("/feedback/rank"), [r["url"] for r in sent]
        body = json.loads(posts[0]["postData"])
        assert set(body) == {"dataset", "model", "layer", "metric", "k", "exclude", "vector"}
        assert body["exclude"] == QUERY  # the query the server is already ranking, and no mark
        for request in sent:  # rows of result lists only: the first list (and the query), then the refined one
            if "/rows?" in request["url"]:
                ids = {int(v) for v in request["url"].split("ids=")[1].split(",")}
                assert ids <= set(first) | {QUERY} | {int(i) for i in want.indices[0]}, ids


def test_the_hybrid_flow_loads_the_server_head_fine_tunes_it_and_sends_nothing(artifacts_copy, playground_artifacts):
    """Search on ``pixels+head`` (a head trained here on the fixture, ~6 s, with its TF.js export): the page loads
    the head from the export, fine-tunes it on the marks (the sentence says so), ranks as Python's recomputation
    from the fitted weights, updates the summary line above the results, and sends nothing about the marks."""
    from urllib.parse import quote

    from precompute.cli import main

    head_model, layer = f"{MODEL}+head", "pixels_8x8"
    folder = playground_artifacts.parent / DATASET  # the fixture's image folder (tests/playground_fixtures.py)
    args = [str(folder), "--out", str(artifacts_copy), "--no-progress", "--tfjs", "float32"]
    assert main([*args, "--train-head", f"{MODEL}/{layer}"]) == 0
    store, _, stored, labels, first = _stored(artifacts_copy, head_model, layer)
    base = np.asarray(store.features(DATASET, MODEL, layer), dtype=np.float32)
    server_same = sum(labels[i] == labels[QUERY] for i in first)
    rel = [i for i in first if labels[i] == labels[QUERY]][:3]
    nrel = [i for i in first if labels[i] != labels[QUERY]][:2] or [
        int(i) for i in np.flatnonzero(labels != labels[QUERY])[:2]
    ]
    assert rel, "the fixture's head must put some of the query's class among the first results"

    with BrowserSession(create_app(artifacts_copy)) as browser:
        driver = browser.driver
        browser.open(
            f"/search?dataset={DATASET}&model={quote(head_model)}&layer={layer}&metric={METRIC}&query={QUERY}&k={K}"
        )
        _poll(lambda: _bar(driver, "data-view") == "search", what="the feedback bar")
        summary = "#search-results p.hint[data-ranking]"
        original = driver.find_element("css selector", summary).text
        assert [c["id"] for c in _cards(driver)] == first, "the server's ranking"
        assert original.startswith(f"{server_same} of {K} results share the query's class"), original
        options = driver.execute_script(
            "return Array.from(document.querySelectorAll('#search-results .feedback-method option')).map(o => o.value)"
        )
        method = driver.execute_script("return document.querySelector('#search-results .feedback-method').value")
        assert "hybrid" in options and method == "hybrid", f"the server head is offered, and the default: {options}"

        _settle(browser)
        served = len(browser.requests)
        for i in rel:
            _button(driver, i, "relevant").click()
        for i in nrel:
            _button(driver, i, "not").click()
        _poll(lambda: _bar(driver, "data-ready") == "true", what="the once-per-layer download")
        driver.find_element("css selector", "#search-results .feedback-refine").click()
        _poll(
            lambda: _bar(driver, "data-round") == "1" or "failed" in _status(driver),
            120,
            what="a refine by the server head + fine-tune",
        )
        sentence = _status(driver)
        assert _bar(driver, "data-method") == "hybrid", sentence
        assert f"the server's head ({head_model}, from its TensorFlow.js export) fine-tuned here" in sentence
        assert "nothing was sent" in sentence

        fit = driver.execute_script(
            "const f = window.sispFeedbackUI.session('search-results').lastFit; return f && {"
            "model: f.model, serverKernel: Array.from(f.server.kernel), serverBias: Array.from(f.server.bias), "
            "kernel: Array.from(f.fitted.kernel), bias: Array.from(f.fitted.bias), "
            "direction: Array.from(f.fitted.direction), offset: f.fitted.offset, scores: Array.from(f.scores)};"
        )
        assert fit and fit["model"] == head_model
        # The head the page loaded from the export is the server's: it maps the base features to the stored ones.
        units = len(fit["serverBias"])
        server = np.asarray(fit["serverKernel"], np.float32).reshape(base.shape[1], units)
        mapped = base.astype(np.float64) @ server + np.asarray(fit["serverBias"])
        assert np.abs(mapped - stored).max() <= 1e-4 * max(np.abs(stored).max(), 1.0)
        assert not np.allclose(fit["kernel"], fit["serverKernel"]), "the fine-tune moved the head's own weights"
        # The ranking: the page's scores are Python's from the fitted weights, and both rank alike.
        python = feedback.hybrid_scores(fit["kernel"], fit["bias"], fit["direction"], fit["offset"], base)
        scores = np.asarray(fit["scores"], np.float32)
        assert np.abs(python - scores).max() <= 1e-4 * max(np.abs(scores).max(), 1.0)
        shown = [c["id"] for c in _cards(driver)]
        assert shown == [int(i) for i in feedback.rank_by_scores(scores, K, exclude=QUERY)]
        assert shown == [int(i) for i in feedback.rank_by_scores(python, K, exclude=QUERY)]

        # The line above the results describes the refined results now, and the server's ranking beside them.
        now_same = sum(labels[i] == labels[QUERY] for i in shown)
        line = driver.find_element("css selector", summary)
        assert line.get_attribute("data-ranking") == "refined"
        assert f"{now_same} of {K} results shown share the query's class" in line.text, line.text
        assert f"the server's ranking before your marks: {server_same} of {K}" in line.text
        assert f"{now_same} of {K} now share the query's class, was {server_same}" in sentence
        driver.find_element("css selector", "#search-results .feedback-reset").click()
        _poll(lambda: [c["id"] for c in _cards(driver)] == first, what="Reset restores the server's ranking")
        line = driver.find_element("css selector", summary)
        assert line.text == original and line.get_attribute("data-ranking") == "server"

        # What went out during the marks and the refine: GETs of files that are the same whatever is marked.
        sent = _network(browser)
        assert all(r["method"] == "GET" and not r.get("postData") for r in sent), sent
        paths = [r["url"].split("?")[0].split("/", 3)[-1] for r in sent]
        thumbs = [p for p in paths if p.startswith("thumbs/")]
        static = [p for p in paths if not p.startswith("thumbs/")]
        assert len(set(thumbs)) == store.dataset(DATASET).n_images, "every thumbnail, whatever is marked"
        allowed = (
            f"private/{DATASET}/{MODEL}/{layer}/features.f32",  # the base features: what the head maps
            f"private/{DATASET}/{head_model.replace('+', '%2B')}/{layer}/features.f32",
            f"private/{DATASET}/labels.json",
            f"private/{DATASET}/{head_model.replace('+', '%2B')}/float32/",  # the export: model.json, weights
            "private/tf.min.js",
            "private/tf-backend-wasm",
            "private/tfjs-backend-wasm",
        )
        assert all(p.startswith(allowed) for p in static), static
        assert any(p.endswith("float32/model.json") for p in static), f"the head came from its export: {static}"
        # No request names the query or a mark. (Parsed, not a substring test: the cache-busting "v=34a1..." once
        # read as "=3".)
        params = [(k, v) for r in sent for k, v in parse_qsl(urlsplit(r["url"]).query) if k != "v"]
        assert not any(k in ("query", "rel") or v == str(QUERY) for k, v in params), params
        assert all(method == "GET" and not body for method, _path, body in browser.requests[served:])
