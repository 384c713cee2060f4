"""Retake docs/screenshots/*.png: the four views of a running playground, in headless Chromium.

    .venv/bin/playground --no-precompute &        # serving artifacts/ on http://127.0.0.1:8050
    .venv/bin/python docs/take_screenshots.py [--url http://127.0.0.1:8050] [--query 181] [--photo coffee]
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL, LAYER, METRIC = "efficientnet-lite0", "top_conv", "cosine"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8050")
    parser.add_argument("--dataset", default="openclipart-200")
    # 137: the query whose rwp@15 (0.400) is nearest the mean of its model (0.400), not a best case.
    parser.add_argument("--query", type=int, default=137)
    parser.add_argument("--photo", default="coffee", help="the scikit-image sample photo to upload (default coffee)")
    args = parser.parse_args()

    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from skimage import data

    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--window-size=1400,1100"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    query = f"dataset={args.dataset}&model={MODEL}&layer={LAYER}&metric={METRIC}&query={args.query}&k=15"
    try:
        for view in ("search", "embeddings", "compare", "upload"):
            driver.get(f"{args.url}/{view}?{query}")
            time.sleep(4)  # callbacks and plotly rendering settle
            if view == "upload":
                photo = Path(f"/tmp/{args.photo}.jpg")
                buffer = io.BytesIO()
                Image.fromarray(getattr(data, args.photo)()).save(buffer, format="JPEG")
                photo.write_bytes(buffer.getvalue())
                driver.find_element("css selector", "#upload input[type=file]").send_keys(str(photo))
                time.sleep(6)  # the model is built once, on the first upload
            _wait_for_images(driver)
            height = driver.execute_script("return document.body.scrollHeight")
            driver.set_window_size(1400, min(max(height, 900), 1600))
            driver.save_screenshot(str(HERE / "screenshots" / f"{view}.png"))
            print(f"saved docs/screenshots/{view}.png")
    finally:
        driver.quit()


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
