"""End-to-end tests of the playground in headless Chromium (dash[testing]'s ``dash_duo``).

Each test saves screenshots of what it checked under test-artifacts/screenshots/.
"""

from __future__ import annotations

import shutil

import pytest

from tests.playground_fixtures import photo_png

pytestmark = [
    pytest.mark.browser,
    # selenium 4.2 (the newest dash[testing] allows) calls urllib3 APIs that warn on every request.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:selenium.*"),
    pytest.mark.skipif(
        shutil.which("chromedriver") is None or shutil.which("chromium") is None,
        reason="needs chromium and chromedriver (apt-get install chromium chromium-driver)",
    ),
]

PIXELS, LITE = "pixels", "efficientnet-lite0-random"
TIMEOUT = 30


def result_attribute(dash_duo, attribute: str, scope: str = "") -> list[str]:
    """One data attribute of every result card, read in one script call (no stale elements mid-render)."""
    script = f"return Array.from(document.querySelectorAll('{scope} .result-card')).map(e => e.dataset.{attribute});"
    return dash_duo.driver.execute_script(script)


def result_ids(dash_duo) -> list[str]:
    return result_attribute(dash_duo, "imageId")


def wait_for_results(dash_duo, count: int, different_from: list[str] | None = None) -> list[str]:
    def ready() -> bool:
        ids = result_ids(dash_duo)
        return len(ids) == count and (different_from is None or ids != different_from)

    _poll(ready)
    return result_ids(dash_duo)


def _poll(condition, timeout: float = TIMEOUT) -> None:
    import time

    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def start(dash_duo, artifacts, path: str) -> None:
    from playground.app import create_app

    dash_duo.start_server(create_app(artifacts))
    dash_duo.driver.set_window_size(1400, 1100)
    dash_duo.driver.get(dash_duo.server_url + path)
    dash_duo.wait_for_element("#query-panel", timeout=TIMEOUT)


def test_search_shows_ranked_results_and_model_switch_changes_them(dash_duo, playground_artifacts, screenshot_dir):
    start(
        dash_duo,
        playground_artifacts,
        "/search?dataset=shapes&model=pixels&layer=pixels_8x8&metric=cosine&query=3&k=10",
    )
    first = wait_for_results(dash_duo, 10)
    assert "3" not in first
    marks = result_attribute(dash_duo, "same")
    assert set(marks) <= {"true", "false"} and "true" in marks
    dash_duo.wait_for_text_to_equal(".query-caption strong", "circle", timeout=TIMEOUT)
    assert dash_duo.find_element(".scores-table")  # the query's scores beside the baseline
    dash_duo.driver.save_screenshot(str(screenshot_dir / "search.png"))

    dash_duo.select_dcc_dropdown("#model-select", value=LITE)
    switched = wait_for_results(dash_duo, 10, different_from=first)
    assert switched != first
    _poll(lambda: "model=efficientnet-lite0-random" in dash_duo.driver.current_url)
    assert "query=3" in dash_duo.driver.current_url

    # Clicking a grid thumbnail makes it the query (and the URL follows).
    dash_duo.find_element("#image-grid button:nth-child(12)").click()
    _poll(lambda: "query=11" in dash_duo.driver.current_url)
    dash_duo.wait_for_text_to_equal(".query-caption strong", "square", timeout=TIMEOUT)
    dash_duo.driver.save_screenshot(str(screenshot_dir / "search-after-switch.png"))


def test_upload_real_photo_and_non_image(dash_duo, playground_artifacts, screenshot_dir, tmp_path):
    start(dash_duo, playground_artifacts, f"/upload?dataset=shapes&model={LITE}&metric=cosine&k=8")
    dash_duo.wait_for_contains_text("#upload-status", "No image yet", timeout=TIMEOUT)
    photo = tmp_path / "chelsea.png"
    photo.write_bytes(photo_png())
    dash_duo.find_element("#upload input[type=file]").send_keys(str(photo))
    wait_for_results(dash_duo, 8)
    dash_duo.wait_for_contains_text("#upload-status", "chelsea.png", timeout=TIMEOUT)
    assert "never written to disk" in dash_duo.find_element("#view-upload").text
    dash_duo.driver.save_screenshot(str(screenshot_dir / "upload.png"))

    fake = tmp_path / "not-an-image.png"
    fake.write_bytes(b"definitely not a PNG file\n" * 10)
    dash_duo.find_element("#upload input[type=file]").send_keys(str(fake))
    dash_duo.wait_for_element(".message-error", timeout=TIMEOUT)
    text = dash_duo.find_element(".message-error").text
    assert "not-an-image.png" in text and "cannot be used as an image" in text
    assert "Traceback" not in dash_duo.find_element("body").text
    assert not dash_duo.find_elements("#upload-results .result-card")
    dash_duo.driver.save_screenshot(str(screenshot_dir / "upload-error.png"))


def test_embeddings_and_compare_views(dash_duo, playground_artifacts, screenshot_dir):
    start(dash_duo, playground_artifacts, f"/embeddings?dataset=shapes&model={LITE}&metric=cosine&query=2&k=5")
    dash_duo.wait_for_element("#umap-graph .main-svg", timeout=TIMEOUT)
    dash_duo.wait_for_contains_text("#umap-graph", "triangle", timeout=TIMEOUT)  # the legend: coloured by class
    dash_duo.wait_for_contains_text("#umap-graph", "query", timeout=TIMEOUT)
    dash_duo.driver.save_screenshot(str(screenshot_dir / "embeddings.png"))

    # Clicking a point makes it the query: plotly's click event on the first "square" point (image 8).
    dash_duo.driver.execute_script(
        "document.querySelector('#umap-graph .js-plotly-plot')"
        ".emit('plotly_click', {points: [{curveNumber: 1, pointNumber: 0}]});"
    )
    _poll(lambda: "query=8" in dash_duo.driver.current_url)
    # Hovering a point shows its thumbnail and label in a tooltip.
    dash_duo.driver.execute_script(
        "document.querySelector('#umap-graph .js-plotly-plot').emit('plotly_hover', {points: [{curveNumber: 2, "
        "pointNumber: 0, bbox: {x0: 300, x1: 310, y0: 300, y1: 310}}]});"
    )
    dash_duo.wait_for_contains_text("#umap-tooltip", "triangle · 16", timeout=TIMEOUT)
    assert dash_duo.find_element("#umap-tooltip img").get_attribute("src").endswith("/thumbs/shapes/16.jpg")

    dash_duo.find_element("#view-tabs .tab:nth-child(4)").click()
    _poll(lambda: "/compare" in dash_duo.driver.current_url)
    dash_duo.wait_for_contains_text("#compare-table", "cosine", timeout=TIMEOUT)
    dash_duo.wait_for_contains_text("#compare-cost", LITE, timeout=TIMEOUT)
    dash_duo.wait_for_contains_text("#compare-layers-graph", "random", timeout=TIMEOUT)
    dash_duo.driver.save_screenshot(str(screenshot_dir / "compare.png"))

    # A deep link to an unlabeled dataset: search works, scores are hidden.
    dash_duo.driver.get(dash_duo.server_url + "/search?dataset=shapes-flat&query=1&k=3")
    wait_for_results(dash_duo, 3)
    dash_duo.wait_for_contains_text("#query-panel", "no labels", timeout=TIMEOUT)


def test_duplicate_badges_panel_and_compare_headline(dash_duo, artifacts_copy, screenshot_dir):
    from tests.test_playground_logic import add_trust_entries

    pair = add_trust_entries(artifacts_copy)  # duplicates among query 0's results, and real intervals
    start(dash_duo, artifacts_copy, "/search?dataset=shapes&model=pixels&layer=pixels_8x8&metric=cosine&query=0&k=10")
    wait_for_results(dash_duo, 10)
    _poll(lambda: "exact" in result_attribute(dash_duo, "duplicate"))
    kinds = dict(zip(result_ids(dash_duo), result_attribute(dash_duo, "duplicate"), strict=True))
    assert kinds[str(pair["first"])] == "exact" and kinds[str(pair["other"])] == "near"
    card = dash_duo.find_element(f".result-card[data-image-id='{pair['other']}']")
    assert "likely label mistake" in card.text

    # The duplicates panel opens on a click; its first pair crosses classes; a thumbnail there becomes the query.
    dash_duo.wait_for_contains_text("#duplicates-panel summary", "1 likely label mistake", timeout=TIMEOUT)
    dash_duo.find_element("#duplicates-panel summary").click()
    first_pair = dash_duo.find_element("#duplicates-panel .duplicate-pair")
    assert "cross" in first_pair.get_attribute("class") and "likely label mistake" in first_pair.text
    dash_duo.driver.save_screenshot(str(screenshot_dir / "search-duplicates.png"))
    first_pair.find_elements("css selector", "button")[1].click()
    _poll(lambda: f"query={pair['other']}" in dash_duo.driver.current_url)
    assert dash_duo.find_element("#duplicates-panel").get_attribute("open")  # still open after the re-render

    dash_duo.find_element("#view-tabs .tab:nth-child(4)").click()
    dash_duo.wait_for_contains_text("#compare-headline", "Best by rwp@15:", timeout=TIMEOUT)
    assert "95 % bootstrap interval" in dash_duo.find_element("#compare-headline").text
    # The answer on top: best configuration, its cost, the cheapest as good; the family figure beside it.
    dash_duo.wait_for_contains_text("#compare-answer", "As good, cheaper:", timeout=TIMEOUT)
    assert "Best:" in dash_duo.find_element("#compare-answer").text
    assert dash_duo.find_elements("#compare-family-graph .scatterlayer .trace")
    dash_duo.wait_for_contains_text("#compare-verdicts", "best", timeout=TIMEOUT)
    verdicts = dash_duo.find_element("#compare-verdicts").text
    assert "below the best (difference" in verdicts or "not distinguishable from the best" in verdicts
    dash_duo.driver.save_screenshot(str(screenshot_dir / "compare-intervals.png"))
