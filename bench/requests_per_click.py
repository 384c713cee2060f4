"""Callback requests and click-to-results time per click in the playground, in headless Chromium.

Serves the app (waitress, as ``playground`` does) over an artifacts root, opens it on a dataset (the default
one, openclipart-200), and makes a fixed series of clicks: a grid thumbnail, a result, a switch of model,
layer, metric and number of results, the Embeddings tab and back, and an upload followed by a switch of
metric. For each click it reads Chrome's performance log (``goog:loggingPrefs`` ``{"performance": "ALL"}``)
and reports:

- ``requests``: ``_dash-update-component`` requests the click caused;
- ``waves``: how many rounds they came in (a request sent after another of the same click answered starts a
  new round);
- ``sent KB``: the characters of those requests' bodies (an upload's contents show up here);
- ``results ms``: from the click to the last change of the results (Search's and Upload's results, the
  map, or the view itself when a switch of view shows it; a MutationObserver), i.e. the results rendered;
- ``settled ms``: from the click to the last change of the page after the last answer (everything else
  rendered too: grid, duplicates, controls). Neither counts changes inside hidden views (the hidden map of
  Embeddings resizes itself about 200 ms after a switch away from it, with nothing to show) nor dcc.Graph's
  ``dash-graph--pending`` class, which it sets while plotly's resize waits out its 100 ms timer and which no
  style uses;
- ``callbacks``: the outputs of each request (the first output id of each callback).

    .venv/bin/python -m bench requests_per_click [--artifacts artifacts] [--dataset openclipart-200]
        [--repeat 3] [--json out.json]

Needs chromium and chromedriver (Debian: ``apt-get install chromium chromium-driver``). Timings depend on the
machine's load: the script prints ``os.getloadavg()`` beside them.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DASH_UPDATE = "_dash-update-component"
TIMEOUT_S = 60.0
# The page has settled when no callback request is in flight and nothing changed for this long.
QUIET_MS = 400
# ... and, after an answer with results, once they changed on the page (or this long after, if they did not).
RESULTS_WAIT_MS = 5000

# Counts in-flight callback requests and stamps the last answer and the last change of the page.
INSTRUMENT_JS = """
if (!window.__bench) {
  const RESULTS_OUTPUTS = /"output":"[^"]*(search-results|upload-results|umap-graph)\\./;
  window.__bench = {inflight: 0, answered: 0, lastSent: 0, lastAnswer: 0, lastMutation: 0, lastResults: 0, click: 0,
                   sent: 0, resultsAnswer: 0};
  const bench = window.__bench;
  const fetch0 = window.fetch;
  window.fetch = function (input, init) {
    const url = typeof input === "string" ? input : input.url;
    if (!url.includes("DASH_UPDATE")) { return fetch0.apply(this, arguments); }
    bench.inflight += 1;
    bench.lastSent = performance.now();
    const body = init && typeof init.body === "string" ? init.body : "";
    bench.sent += body.length;
    const forResults = RESULTS_OUTPUTS.test(body.slice(0, 5000));  // "output" comes first in Dash's body
    return fetch0.apply(this, arguments).then(function (response) {
      return response.clone().text().then(function () {
        bench.inflight -= 1; bench.answered += 1; bench.lastAnswer = performance.now();
        if (forResults && response.status === 200) { bench.resultsAnswer = bench.lastAnswer; }
        return response;
      });
    }, function (error) { bench.inflight -= 1; throw error; });
  };
  const RESULTS = "#search-results, #upload-results, #umap-graph";
  const PENDING = /\\s*\\bdash-graph--pending\\b/;
  // Changes inside a hidden view are not counted (its map resizing itself after a switch of view): what the
  // page shows changes when a view is shown (its style) and when its results are drawn.
  new MutationObserver(function (records) {
    const now = performance.now();
    for (const record of records) {
      const node = record.target.nodeType === 1 ? record.target : record.target.parentElement;
      const view = node && node.closest ? node.closest(".view") : null;
      if (view && view.style.display === "none") { continue; }
      // dcc.Graph marks its plot "dash-graph--pending" while plotly resizes it (no style, nothing drawn).
      if (record.attributeName === "class" && PENDING.test(record.oldValue || "") !==
          PENDING.test(node.getAttribute("class") || "") &&
          (record.oldValue || "").replace(PENDING, "").trim() ===
          (node.getAttribute("class") || "").replace(PENDING, "").trim()) { continue; }
      bench.lastMutation = now;
      if (node.closest(RESULTS) || node === view) { bench.lastResults = now; }
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true, attributeOldValue: true,
                            characterData: true});
}
""".replace("DASH_UPDATE", DASH_UPDATE)


# The bench's stamps, and the callbacks Dash's renderer still has to run (its redux store, as dash[testing] reads
# it): between two rounds no request is in flight while the renderer applies the first answer.
PENDING_JS = """
const callbacks = Object.assign({}, window.store.getState().callbacks);
delete callbacks.stored;
delete callbacks.completed;
return Object.assign({pending: [].concat(...Object.values(callbacks)).length}, window.__bench);
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(artifacts: Path) -> tuple[object, int]:
    """The app under waitress in a daemon thread (the settings ``playground`` serves with)."""
    from waitress import create_server

    from playground.app import create_app
    from playground.server import THREADS

    port = free_port()
    server = create_server(create_app(artifacts).server, host="127.0.0.1", port=port, threads=THREADS)
    threading.Thread(target=server.run, daemon=True).start()
    return server, port


def start_driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1100"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def drain(driver) -> list[dict]:
    """The performance log's Network events since the last call."""
    events = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"].startswith("Network."):
            events.append(message)
    return events


def callback_requests(events: list[dict]) -> list[dict]:
    """``[{"sent", "done", "status", "outputs"}]`` of the callback requests among ``events`` (seconds)."""
    requests: dict[str, dict] = {}
    for event in events:
        params = event["params"]
        if event["method"] == "Network.requestWillBeSent" and DASH_UPDATE in params["request"]["url"]:
            body = params["request"].get("postData") or ""
            try:
                outputs = json.loads(body).get("output", "?")
            except ValueError:
                outputs = "?"
            first = outputs.split("...")[0].lstrip(".").split("@")[0] if isinstance(outputs, str) else "?"
            requests[params["requestId"]] = {
                "sent": params["timestamp"], "done": None, "status": None, "outputs": first,
            }
        elif event["method"] == "Network.responseReceived" and params["requestId"] in requests:
            requests[params["requestId"]]["status"] = params["response"]["status"]
        elif event["method"] in ("Network.loadingFinished", "Network.loadingFailed") and (
                params["requestId"] in requests):
            requests[params["requestId"]]["done"] = params["timestamp"]
    return sorted(requests.values(), key=lambda r: r["sent"])


def waves(requests: list[dict]) -> int:
    """Rounds of requests: the longest chain of requests each sent after an answer that could have caused it
    (a 200 with outputs; a 204, PreventUpdate, causes nothing). A request sent before any such answer of the
    click is in round 1; one sent after a round-n answer, in round n + 1."""
    rounds: list[int] = []
    for i, request in enumerate(requests):
        before = [
            rounds[j] for j, other in enumerate(requests[:i])
            if other["done"] and other["done"] <= request["sent"] and other["status"] == 200
        ]
        rounds.append(1 + max(before, default=0))
    return max(rounds, default=0)


def settle(driver, answered_before: int, expect_requests: bool = True) -> tuple[float, float]:
    """Wait until no callback is pending or in flight and the page stayed still for QUIET_MS; ms from the click
    to the last change of the results (0 when they did not change) and to the last change of the page."""
    end = time.time() + TIMEOUT_S
    while time.time() < end:
        state = driver.execute_script(PENDING_JS)
        now = driver.execute_script("return performance.now();")
        # A request sent after the click has answered (a dropdown may commit its value a moment after the click).
        answered = (state["answered"] > answered_before and state["lastSent"] >= state["click"]) or not expect_requests
        # New results answered: wait for them on the page (under load the render can start after a quiet spell).
        waiting = state["resultsAnswer"] > state["click"] and state["lastResults"] < state["resultsAnswer"]
        if waiting and now - state["resultsAnswer"] < RESULTS_WAIT_MS:
            answered = False
        quiet = now - max(state["lastMutation"], state["lastAnswer"]) > QUIET_MS
        if state["inflight"] == 0 and state["pending"] == 0 and answered and quiet:
            results = max(state["lastResults"] - state["click"], 0.0)
            return results, max(state["lastMutation"], state["lastAnswer"]) - state["click"]
        time.sleep(0.05)
    raise TimeoutError("the page did not settle")


def click(driver, script: str) -> None:
    """Run ``script`` (which clicks or sets something) right after stamping the click time."""
    driver.execute_script("window.__bench.click = performance.now();" + script)


def select_dropdown(driver, component_id: str) -> None:
    """Pick another option of a Dash 4 dcc.Dropdown (open it, click its first option not selected and computed)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    if driver.find_elements(By.CSS_SELECTOR, ".dash-dropdown-option"):  # a menu left open: close it
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    driver.find_element(By.CSS_SELECTOR, f"#{component_id}").click()
    end = time.time() + 10
    choices = []
    while time.time() < end and not choices:
        choices = [
            option for option in driver.find_elements(By.CSS_SELECTOR, ".dash-dropdown-option")
            if option.get_attribute("aria-selected") == "false" and "not computed" not in option.text
        ]
        time.sleep(0.05)
    driver.execute_script("window.__bench.click = performance.now(); arguments[0].click();", choices[0])


def measure(driver, name: str, action) -> dict:
    drain(driver)
    before = driver.execute_script("return window.__bench;")
    action()
    results_ms, ms = settle(driver, before["answered"])
    sent = driver.execute_script("return window.__bench.sent;") - before["sent"]
    requests = callback_requests(drain(driver))
    return {
        "click": name,
        "requests": len(requests),
        "waves": waves(requests),
        "sent_kb": sent / 1024,
        "ms": ms,
        "results_ms": results_ms,
        "callbacks": [r["outputs"] for r in requests],
        "timeline": [(r["outputs"], round((r["sent"] - requests[0]["sent"]) * 1000),
                      round(((r["done"] or r["sent"]) - requests[0]["sent"]) * 1000)) for r in requests],
    }


def upload_file(tmp: Path) -> Path:
    """A 1024 x 1024 noise PNG (about 3 MB, 4 MB as base64): an upload big enough to see in ``sent KB``."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    path = tmp / "noise.png"
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path


def run_once(driver, base: str, dataset: str, tmp: Path) -> list[dict]:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/search?dataset={dataset}")
    WAIT = time.time() + TIMEOUT_S
    while not driver.find_elements(By.CSS_SELECTOR, "#search-results .result-card") and time.time() < WAIT:
        time.sleep(0.1)
    driver.execute_script(INSTRUMENT_JS)
    settle(driver, 0, expect_requests=False)
    rows = []

    def by_css(selector):
        return lambda: click(driver, f"document.querySelector({json.dumps(selector)}).click();")

    rows.append(measure(driver, "query: grid thumbnail", by_css("#image-grid button:nth-child(5)")))
    rows.append(measure(driver, "query: a result", by_css("#search-results .result-pick")))
    rows.append(measure(driver, "model", lambda: select_dropdown(driver, "model-select")))
    rows.append(measure(driver, "layer", lambda: select_dropdown(driver, "layer-select")))
    rows.append(measure(driver, "metric", lambda: select_dropdown(driver, "metric-select")))
    rows.append(measure(driver, "tab: embeddings", by_css("#view-tab-embeddings")))
    rows.append(measure(driver, "tab: search", by_css("#view-tab-search")))
    # An upload, then a switch of metric: what the switch sends once an upload is on the page.
    rows.append(measure(driver, "tab: upload", by_css("#view-tab-upload")))
    path = upload_file(tmp)
    drain(driver)
    answered = driver.execute_script("return window.__bench.answered;")
    driver.execute_script("window.__bench.click = performance.now();")
    driver.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(path))
    end = time.time() + TIMEOUT_S * 3  # the first upload builds the feature model
    while not driver.find_elements(By.CSS_SELECTOR, "#upload-results .result-card") and time.time() < end:
        time.sleep(0.1)
    settle(driver, answered)
    drain(driver)
    rows.append(measure(driver, "upload: metric", lambda: select_dropdown(driver, "metric-select")))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", default=os.environ.get("SISP_ARTIFACTS", "artifacts"))
    parser.add_argument("--dataset", default="openclipart-200")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the whole series (default 3)")
    parser.add_argument("--json", help="also write every row to this file")
    args = parser.parse_args(argv)

    server, port = start_server(Path(args.artifacts))
    driver = start_driver()
    runs = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.repeat):
                runs.append(run_once(driver, f"http://127.0.0.1:{port}", args.dataset, Path(tmp)))
    finally:
        driver.quit()
        server.close()
    load = os.getloadavg()
    print(f"{args.dataset}, {args.repeat} runs; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("median (max) over the runs; requests, waves and KB: the most in any run")
    print(f"{'click':22s} {'requests':>8s} {'waves':>5s} {'sent KB':>8s} {'results ms':>12s} {'settled ms':>12s}  "
          "callbacks (first output)")
    for i, row in enumerate(runs[0]):
        same = [run[i] for run in runs]
        results = [r["results_ms"] for r in same]
        settled = [r["ms"] for r in same]
        print(f"{row['click']:22s} {max(r['requests'] for r in same):8d} {max(r['waves'] for r in same):5d} "
              f"{max(r['sent_kb'] for r in same):8.1f} {statistics.median(results):6.0f} ({max(results):4.0f}) "
              f"{statistics.median(settled):6.0f} ({max(settled):4.0f})  {', '.join(row['callbacks'])}")
    if args.json:
        Path(args.json).write_text(json.dumps({"load": load, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
