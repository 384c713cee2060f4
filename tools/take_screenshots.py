"""Retake docs/screenshots/*.png: the four views of a running playground, in headless Chromium, at 1400 px
(``<view>.png``) and at 1000 px (``<view>-1000.png``), and Compare's per-class and cost charts
(``compare-charts.png``, ``compare-charts-1000.png``).

    .venv/bin/playground --no-precompute &        # serving artifacts/ on http://127.0.0.1:8050
    .venv/bin/python -m tools.take_screenshots [--url http://127.0.0.1:8050] [--query 137] [--photo coffee]

The first screenshot (search at 1400 px) shows the first-visit hint, which is then dismissed. The embeddings
view is shown with a lasso selection, the upload view with the results of a scikit-image sample photo.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
MODEL, LAYER, METRIC = "efficientnet-lite0", "top_conv", "cosine"
WIDTHS = {1400: "", 1000: "-1000"}
VIEWS = ("search", "embeddings", "compare", "upload")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.take_screenshots", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8050")
    parser.add_argument("--dataset", default="openclipart-200")
    # 137: the dataset's default query (its rwp@15, 0.400, is nearest the mean of the default model, 0.400).
    parser.add_argument("--query", type=int, default=137)
    parser.add_argument("--photo", default="coffee", help="the scikit-image sample photo to upload (default coffee)")
    parser.add_argument("--settle", type=float, default=4.0,
                        help="seconds to wait for callbacks and charts per view (default 4; more on a loaded machine)")
    args = parser.parse_args()

    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from skimage import data

    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    query = f"dataset={args.dataset}&model={MODEL}&layer={LAYER}&metric={METRIC}&query={args.query}&k=15"
    photo = Path(f"/tmp/{args.photo}.jpg")
    buffer = io.BytesIO()
    Image.fromarray(getattr(data, args.photo)()).save(buffer, format="JPEG")
    photo.write_bytes(buffer.getvalue())
    try:
        for width, suffix in WIDTHS.items():
            for view in VIEWS:
                driver.set_window_size(width, 1000)
                driver.get(f"{args.url}/{view}?{query}")
                time.sleep(args.settle)  # callbacks and plotly rendering settle
                if view == "embeddings":
                    _lasso(driver)
                if view == "upload":
                    driver.find_element("css selector", "#upload input[type=file]").send_keys(str(photo))
                    # The first upload loads the model (private mode: TensorFlow.js in the page, then a warm-up).
                    end = time.time() + 90
                    while time.time() < end and not driver.find_elements("css selector",
                                                                          "#upload-results .result-card"):
                        time.sleep(0.5)
                _wait_for_images(driver)
                if view != "embeddings":  # the map fits the window; the other views are shown whole
                    height = driver.execute_script("return document.body.scrollHeight")
                    driver.set_window_size(width, min(max(height, 1000), 1800))
                    time.sleep(1)
                name = f"{view}{suffix}.png"
                driver.save_screenshot(str(SCREENSHOTS / name))
                print(f"saved docs/screenshots/{name}")
                if view == "compare":  # the per-class and cost charts, below the 1800 px of the page shot
                    charts = driver.find_element("css selector", "#view-compare .two-halves")
                    driver.execute_script("arguments[0].scrollIntoView()", charts)
                    time.sleep(1)
                    charts.screenshot(str(SCREENSHOTS / f"compare-charts{suffix}.png"))
                    print(f"saved docs/screenshots/compare-charts{suffix}.png")
                hint = driver.find_elements("css selector", "#first-visit-hint-close")
                if hint and hint[0].is_displayed():
                    hint[0].click()  # shown once, on the first screenshot
    finally:
        driver.quit()


def _lasso(driver) -> None:
    """Lasso the left third of the map, so that the strip above it shows a selection."""
    from tests.helpers import drag_lasso

    area = driver.find_element("css selector", "#umap-graph .nsewdrag")
    drag_lasso(driver, area, [(0.02, 0.25), (0.3, 0.25), (0.3, 0.85), (0.02, 0.85)])
    time.sleep(2)


def _wait_for_images(driver, timeout: float = 20.0) -> None:
    """Scroll through the page (thumbnails load lazily) until every image has loaded."""
    deadline = time.monotonic() + timeout
    script = "return [...document.images].every(img => img.complete && img.naturalWidth > 0)"
    while time.monotonic() < deadline:
        driver.execute_script("document.querySelectorAll('img').forEach(img => img.loading = 'eager')")
        if driver.execute_script(script):
            return
        time.sleep(0.5)
    print("warning: some images had not loaded when the screenshot was taken")


if __name__ == "__main__":
    main()
