"""Trust, round 3 (issue #24) in headless Chromium: results on the first screen at 1000 px with their absolute
closeness, private mode off said in words, the map's legend under it; axe-core still finds nothing serious."""

from __future__ import annotations

import pytest

from tests.test_playground_browser import TIMEOUT, _poll, assert_accessible, start, wait_for_results

LITE = "efficientnet-lite0-random"

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::DeprecationWarning:selenium.*")]


def test_results_on_the_first_screen_at_1000_px_with_closeness(dash_duo, playground_artifacts, axe_script):
    start(dash_duo, playground_artifacts, f"/search?dataset=shapes&model={LITE}&layer=top_conv&metric=cosine&query=3"
          "&k=3")
    dash_duo.driver.set_window_size(1000, 1000)
    wait_for_results(dash_duo, 3)
    driver = dash_duo.driver
    top = driver.execute_script(
        "return document.querySelector('#search-results .result-card').getBoundingClientRect().top")
    assert top < driver.execute_script("return window.innerHeight"), "no result on the first screen at 1000 px"
    card = dash_duo.find_element("#search-results .result-card")
    assert "closer than" in card.text and "% of pairs" in card.text
    # The scores follow the number of results: precision@3 first.
    dash_duo.wait_for_contains_text(".scores-table", "precision@3", timeout=TIMEOUT)
    assert "(precision@3" in dash_duo.find_element("#search-results").text
    assert_accessible(dash_duo, axe_script, "search at 1000 px")


def test_private_mode_off_changes_the_words_and_hides_the_download(dash_duo, playground_artifacts, axe_script):
    start(dash_duo, playground_artifacts, f"/upload?dataset=shapes&model={LITE}&metric=cosine&k=8")
    switch = dash_duo.find_element("#private-mode")
    assert switch.text.startswith("Private mode on")
    switch.click()
    _poll(lambda: dash_duo.find_element("#private-mode").text.startswith("Private mode off"))
    assert "browser" not in dash_duo.find_element("#private-mode").text
    _poll(lambda: not dash_duo.find_element("#private-variant-control").is_displayed())
    assert_accessible(dash_duo, axe_script, "upload, private mode off")
