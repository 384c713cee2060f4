"""A first visit of the playground in headless Chromium: bytes transferred and time to the rendered results.

Serves the app (``playground --no-precompute`` in a child process: waitress, as the main command serves it) or
uses a running one (``--url``), then opens ``/search?dataset=...`` ``--repeat`` times, each time in a new Chromium
with an empty profile (nothing cached), and reports per visit:

- ``KB``: bytes on the wire (Chrome's ``Network.loadingFinished`` ``encodedDataLength``: compressed bodies and
  headers) of every request from the navigation until the page settled (results shown, no request in flight for
  ``QUIET_S``), and the 8 largest resources with their ``Content-Encoding``;
- ``results ms``: from the navigation's start (``performance.timeOrigin``) to the first result card of the Search
  view in the page (a MutationObserver installed before any of the page's scripts runs:
  ``Page.addScriptToEvaluateOnNewDocument``); ``grid ms`` likewise for the query grid's thumbnails;
- whether Plotly (``plotly.min.js``) was fetched; console errors (``SEVERE`` entries of the browser's log).

With ``--later-views`` each visit then clicks the Embeddings tab and the Compare tab and waits until each view has
drawn its Plotly figure (an SVG or WebGL plot inside the view): the KB and ms each view added. Every request must
go to the served address (a CDN request is counted and fails the run): the later views work offline.

    .venv/bin/python -m bench first_visit --serve artifacts [--repeat 3] [--later-views] [--json out.json]
    .venv/bin/python -m bench first_visit --serve artifacts --checkout /tmp/base   # another source tree's app
    .venv/bin/python -m bench first_visit --url http://127.0.0.1:8050

Needs chromium and chromedriver (Debian: ``apt-get install chromium chromium-driver``). Timings depend on the
machine's load: the script prints ``os.getloadavg()`` beside them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench.load_app import stop_server

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 60.0
QUIET_S = 1.0  # the page has settled when no request was in flight for this long
# Stamps the first result card and the first grid thumbnail, from the navigation's start (performance.now()).
STAMP_JS = """
window.__firstVisit = {results: null, grid: null};
new MutationObserver(function () {
  const stamps = window.__firstVisit;
  if (stamps.results === null && document.querySelector("#search-results .result-card")) {
    stamps.results = performance.now();
  }
  if (stamps.grid === null && document.querySelector("#image-grid .grid-item img")) {
    stamps.grid = performance.now();
  }
}).observe(document, {subtree: true, childList: true});
"""
# A view's Plotly figures have been drawn with data: every plot in the shown view holds a trace with points as
# plotly drew it (``_fullData``, ``_length``; a heatmap has none); an empty figure, drawn while a view is hidden or
# before its data came, has no such trace.
VIEW_DRAWN_JS = """
const view = document.getElementById(arguments[0]);
if (!view || view.style.display === "none") { return false; }
const plots = Array.from(view.querySelectorAll(".js-plotly-plot"));
return plots.length > 0 && plots.every(function (plot) {
  return (plot._fullData || []).some(function (trace) { return trace._length > 0 || trace.type === "heatmap"; });
});
"""


@dataclass
class Visit:
    """One visit: what came over the wire and when the results were on the page."""

    kb: float
    results_ms: float | None
    grid_ms: float | None
    dom_content_loaded_ms: float
    requests: int
    plotly: bool
    offsite: list[str]
    failed: list[str]
    console_errors: list[str]
    largest: list[tuple[str, float, str]]  # (path, KB, Content-Encoding)
    footer: str = ""  # the page footer's text (it names the artifacts folder)
    statuses: dict[str, int] = field(default_factory=dict)  # path -> HTTP status
    later: dict[str, dict[str, float]] = field(default_factory=dict)  # view -> {"kb", "ms"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(artifacts: str, port: int, checkout: Path | None = None) -> subprocess.Popen:
    """``python -m playground --no-precompute`` over ``artifacts`` from this checkout (or ``checkout``)."""
    source = (checkout or REPO).resolve()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")])))
    command = [
        sys.executable,
        "-m",
        "playground",
        "--no-precompute",
        "--artifacts",
        str(Path(artifacts).resolve()),
        "--port",
        str(port),
    ]
    return subprocess.Popen(command, cwd=source, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_until_up(host: str, port: int, seconds: float, server: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if server is not None and server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode} before answering")
        try:
            connection = http.client.HTTPConnection(host, port, timeout=5)
            connection.request("GET", "/")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"no answer from {host}:{port} within {seconds:.0f} s")


def start_driver():
    """A new headless Chromium with an empty profile (selenium gives each driver a fresh one): a cold cache."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--window-size=1400,1100",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


class Network:
    """Chrome's Network events from the performance log: requests, their sizes, statuses and what is in flight."""

    def __init__(self) -> None:
        self.requests: dict[str, dict] = {}

    def read(self, driver) -> None:
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            method, params = message["method"], message.get("params", {})
            request_id = params.get("requestId")
            if method == "Network.requestWillBeSent":
                self.requests.setdefault(
                    request_id,
                    {"url": params["request"]["url"], "done": False, "bytes": 0, "status": None, "encoding": ""},
                )
            elif request_id in self.requests:
                request = self.requests[request_id]
                if method == "Network.responseReceived":
                    response = params["response"]
                    request["status"] = response["status"]
                    headers = {key.lower(): value for key, value in response.get("headers", {}).items()}
                    request["encoding"] = headers.get("content-encoding", "")
                elif method == "Network.loadingFinished":
                    request["done"], request["bytes"] = True, params["encodedDataLength"]
                elif method == "Network.loadingFailed":
                    request["done"], request["failed"] = True, params.get("errorText", "failed")

    def in_flight(self) -> int:
        return sum(not request["done"] for request in self.requests.values())

    def total_bytes(self) -> int:
        return sum(request["bytes"] for request in self.requests.values())


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def settle(driver, network: Network, ready, seconds: float = TIMEOUT_S) -> float:
    """Wait until ``ready()`` and no request was in flight for QUIET_S; seconds waited."""
    start = time.monotonic()
    quiet_since = None
    while time.monotonic() - start < seconds:
        network.read(driver)
        if ready() and network.in_flight() == 0:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= QUIET_S:
                return time.monotonic() - start
        else:
            quiet_since = None
        time.sleep(0.05)
    raise TimeoutError(f"the page did not settle within {seconds:.0f} s")


def visit(base: str, dataset: str | None = None, later_views: bool = False) -> Visit:
    """One first visit of ``base``'s Search view in a new Chromium (see the module docstring)."""
    driver = start_driver()
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": STAMP_JS})
        network = Network()
        network.read(driver)
        network.requests.clear()
        url = f"{base}/search" + (f"?dataset={dataset}" if dataset else "")
        driver.get(url)
        settle(driver, network, lambda: driver.execute_script("return window.__firstVisit.results !== null;"))
        stamps = driver.execute_script("return window.__firstVisit;")
        footer = driver.execute_script("const f = document.querySelector('footer'); return f ? f.innerText : '';")
        timing = driver.execute_script("return performance.getEntriesByType('navigation')[0].toJSON();")
        first_bytes = network.total_bytes()
        first = list(network.requests.values())
        later: dict[str, dict[str, float]] = {}
        if later_views:
            for view in ("embeddings", "compare"):
                before, start = network.total_bytes(), time.monotonic()
                driver.execute_script(f"document.getElementById('view-tab-{view}').click();")
                settle(driver, network, lambda view=view: driver.execute_script(VIEW_DRAWN_JS, f"view-{view}"))
                later[view] = {
                    "kb": (network.total_bytes() - before) / 1024,
                    "ms": (time.monotonic() - start - QUIET_S) * 1000,
                }
        host = urlsplit(base).netloc
        everything = list(network.requests.values())
        console = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        largest = sorted(first, key=lambda r: r["bytes"], reverse=True)[:8]
        return Visit(
            kb=first_bytes / 1024,
            results_ms=stamps["results"],
            grid_ms=stamps["grid"],
            dom_content_loaded_ms=timing["domContentLoadedEventEnd"],
            requests=len(first),
            plotly=any(urlsplit(r["url"]).path.endswith("plotly.min.js") for r in first),
            offsite=[r["url"] for r in everything if r["url"].startswith("http") and urlsplit(r["url"]).netloc != host],
            # net::ERR_ABORTED: a callback request Dash's renderer cancelled itself (a newer one superseded it).
            failed=[
                f"{_path(r['url'])}: {r['failed']}"
                for r in everything
                if r.get("failed") and r["failed"] != "net::ERR_ABORTED"
            ],
            console_errors=console,
            largest=[(_path(r["url"])[:90], r["bytes"] / 1024, r["encoding"] or "-") for r in largest],
            footer=footer,
            statuses={_path(r["url"]): r["status"] for r in everything if r["status"] is not None},
            later=later,
        )
    finally:
        driver.quit()


def report(visits: list[Visit]) -> None:
    load = os.getloadavg()
    print(f"{len(visits)} first visits; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        f"{'visit':>5s} {'KB':>8s} {'requests':>8s} {'results ms':>10s} {'grid ms':>8s} {'DOMContentLoaded':>16s} "
        f"{'plotly':>6s}  later views (KB, ms)"
    )
    for number, v in enumerate(visits, 1):
        later = ", ".join(f"{view} {d['kb']:.0f} KB {d['ms']:.0f} ms" for view, d in v.later.items())
        results = f"{v.results_ms:.0f}" if v.results_ms is not None else "-"
        grid = f"{v.grid_ms:.0f}" if v.grid_ms is not None else "-"
        print(
            f"{number:5d} {v.kb:8.0f} {v.requests:8d} {results:>10s} {grid:>8s} {v.dom_content_loaded_ms:16.0f} "
            f"{'yes' if v.plotly else 'no':>6s}  {later}"
        )
    results = [v.results_ms for v in visits if v.results_ms is not None]
    print(
        f"median: {statistics.median(v.kb for v in visits):.0f} KB, results after "
        f"{statistics.median(results):.0f} ms (max {max(results):.0f})"
    )
    print("largest resources of the first visit (KB on the wire, Content-Encoding):")
    for path, kb, encoding in visits[0].largest:
        print(f"  {kb:8.1f}  {encoding:7s} {path}")
    for v in visits:
        for problem in [
            *(f"offsite request: {u}" for u in v.offsite),
            *(f"failed: {f}" for f in v.failed),
            *(f"console error: {c}" for c in v.console_errors),
        ]:
            print(f"  {problem}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8050 (loopback only)")
    where.add_argument("--serve", metavar="ARTIFACTS", help="start `playground --no-precompute` over ARTIFACTS")
    parser.add_argument(
        "--checkout",
        type=Path,
        help="with --serve: the source tree whose app to serve (default: "
        "this one), e.g. an older commit unpacked with `git archive`",
    )
    parser.add_argument("--dataset", default=None, help="dataset to open (default: the app's default)")
    parser.add_argument("--repeat", type=int, default=3, help="first visits, each in a new browser (default 3)")
    parser.add_argument("--later-views", action="store_true", help="then open Embeddings and Compare")
    parser.add_argument("--json", help="also write every visit to this file")
    args = parser.parse_args(argv)

    server = None
    if args.serve:
        port = free_port()
        server = start_server(args.serve, port, args.checkout)
        host = "127.0.0.1"
    else:
        parts = urlsplit(args.url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        if host not in ("127.0.0.1", "localhost", "::1"):
            parser.error("this benchmark talks to loopback addresses only")
    try:
        wait_until_up(host, port, 120, server)
        visits = [visit(f"http://{host}:{port}", args.dataset, args.later_views) for _ in range(args.repeat)]
    finally:
        stop_server(server)
    report(visits)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"load": os.getloadavg(), "visits": [asdict(v) for v in visits]}, indent=1)
        )
    bad = any(v.offsite or v.failed or v.console_errors or v.results_ms is None for v in visits)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
