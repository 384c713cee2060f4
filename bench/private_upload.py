"""Private mode in headless Chromium: download size, model load and per-image time per TF.js variant, vs the server.

For each weight variant of the model's TF.js export (float32, float16, uint16, uint8) this loads the model in the
app's own page (assets/private_upload.js: TensorFlow.js from /private/tf.min.js, the export from /private/...),
embeds scikit-image's photos there (the same decode, resize and preprocessing as an upload), and compares with
the server: the cosine between the browser's and the server's features (``playground.uploads.upload_features``)
and whether the top-10 of the dataset is the same (``playground.ranking.feature_results``). Prints the download
size, the model's load time (download and build, then a warm-up run), the median per-image time, the TF.js
backend that ran (wasm, webgl, cpu in turn; headless Chromium has no GPU, so webgl is software-rendered or
missing), the backend the page picks on its own and why, and the load average.

A model without an export is exported first (``precompute.tfjs_export``, into the artifacts' own
``<dataset>/<model>/tfjs``), so this also runs on artifacts computed before the export existed.

    .venv/bin/python -m bench private_upload --artifacts artifacts
    .venv/bin/python -m bench private_upload --artifacts artifacts --model efficientnet-lite0 --metric cosine
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import logging
import os
import shutil
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playground.private import DEFAULT_VARIANT, VARIANTS, private_info, read_export  # noqa: E402
from playground.store import Store  # noqa: E402
from precompute.artifacts import tfjs_dir  # noqa: E402

# scikit-image's colour photographs (skimage.data), the test images.
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCRIPT_TIMEOUT_S = 600


# ------------------------------------------------------------------------------------------------ inputs
def photo_bytes(name: str, image_format: str = "JPEG") -> bytes:
    """scikit-image's photo ``name`` written as a JPEG (quality 90) or PNG file, in memory."""
    from PIL import Image
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(getattr(data, name)()).convert("RGB").save(buffer, format=image_format, quality=90)
    return buffer.getvalue()


def export_stored_model(root: Path, dataset: str, model: str, variants: tuple[str, ...] = VARIANTS) -> Path:
    """Write the TF.js export of a computed model (as precompute does), unless it has one; its ``tfjs`` folder."""
    from precompute.models import load_feature_model
    from precompute.tfjs_export import export_feature_model

    store = Store(root)
    folder = tfjs_dir(store.root, dataset, model)
    if read_export(store, dataset, model)[0] is not None:
        return folder
    config = store.model(dataset, model).config
    layers = store.layers(dataset, model)
    feature_model = load_feature_model(config.to_dict(), layers, "keras")
    export_feature_model(feature_model.runner, layers, feature_model.preprocess, int(config.input_size), folder,
                         variants)
    return folder


# ------------------------------------------------------------------------------------------------ browser
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class BrowserSession:
    """The app on a local port and a headless Chromium that logs its network traffic (DevTools performance log).

    ``requests`` (filled by a Flask hook) holds every request the server received: (method, path with query,
    body bytes).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[tuple[str, str, bytes]] = []
        self.runner: Any = None
        self.driver: Any = None
        self.url = ""

    def __enter__(self) -> BrowserSession:
        from dash.testing.application_runners import ThreadedRunner
        from flask import request
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options

        @self.app.server.before_request
        def _record() -> None:
            self.requests.append((request.method, request.full_path, request.get_data(cache=True)))

        port = _free_port()
        self.runner = ThreadedRunner()
        self.runner.start(self.app, port=port)
        self.url = f"http://127.0.0.1:{port}"
        options = Options()
        options.binary_location = CHROMIUM
        for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--window-size=1400,1100"):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        self.driver = webdriver.Chrome(options=options)
        self.driver.set_script_timeout(SCRIPT_TIMEOUT_S)
        return self

    def __exit__(self, *exc: Any) -> None:
        with contextlib.suppress(Exception):
            self.driver.quit()
        with contextlib.suppress(Exception):
            self.runner.stop()

    def open(self, path: str) -> None:
        self.driver.get(self.url + path)

    def network(self) -> list[dict[str, Any]]:
        """Every request the page sent since the last call (``Network.requestWillBeSent``): url, method, postData."""
        sent = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                request = message["params"]["request"]
                sent.append({"url": request.get("url", ""), "method": request.get("method"),
                             "postData": request.get("postData", ""), "hasPostData": request.get("hasPostData")})
        return sent

    def embed(self, info: dict[str, Any], data: bytes, mime: str = "image/jpeg") -> dict[str, Any]:
        """Features and timings of ``data`` embedded in the page (``window.sispPrivateUpload.embedBase64``)."""
        script = """
            const done = arguments[arguments.length - 1];
            window.sispPrivateUpload.embedBase64(arguments[0], arguments[1], arguments[2])
              .then(done, (e) => done({error: String(e && e.stack || e)}));
        """
        result = self.driver.execute_async_script(script, info, base64.b64encode(data).decode("ascii"), mime)
        if "error" in result:
            raise RuntimeError(f"the browser failed: {result['error']}")
        return result

    def set_backend(self, name: str, tf_url: str, wasm: dict[str, Any] | None = None) -> str:
        """Make TF.js use backend ``name`` (wasm, webgl, cpu; wasm needs ``wasm``, the page's
        ``info["urls"]["wasm"]``); the backend in use after."""
        script = """
            const done = arguments[arguments.length - 1];
            window.sispPrivateUpload.setBackend(arguments[0], arguments[1], arguments[2])
              .then(done, (e) => done('error: ' + e));
        """
        return self.driver.execute_async_script(script, name, tf_url, wasm)

    def pick_backend(self, tf_url: str, wasm: dict[str, Any] | None) -> dict[str, str]:
        """The backend the page picks on its own (``{"name", "why"}``), before any :meth:`set_backend`."""
        script = """
            const done = arguments[arguments.length - 1];
            window.sispPrivateUpload.pickBackend(arguments[0], arguments[1])
              .then(done, (e) => done({name: null, why: String(e)}));
        """
        return self.driver.execute_async_script(script, tf_url, wasm)

    def reset_model(self) -> None:
        self.driver.execute_script("window.sispPrivateUpload.resetModel();")

    def wait_for(self, script: str, timeout: float = 120.0) -> Any:
        end = time.time() + timeout
        while time.time() < end:
            value = self.driver.execute_script(script)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"not true within {timeout:.0f} s: {script}")


def page_info(store: Store, dataset: str, model: str, layer: str, metric: str, k: int, variant: str) -> dict:
    """The private info the page gets for this selection (views/upload.py's ``private_panel``)."""
    info = private_info(store, dataset, model, layer)
    if not info.get("available"):
        raise SystemExit(f"private mode is unavailable for {dataset}/{model}/{layer}: {info.get('reason')}")
    return {**info, "metric": metric, "k": k, "variant": variant}


# ------------------------------------------------------------------------------------------------ compare
def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) or 1.0))


def server_features(store: Store, dataset: str, model: str, layer: str, data: bytes) -> np.ndarray:
    from playground.uploads import upload_features

    return np.asarray(upload_features(store, dataset, model, layer, data), np.float32).reshape(-1)


def top_ids(store: Store, dataset: str, model: str, layer: str, metric: str, features: np.ndarray, k: int) -> list:
    from playground.ranking import feature_results

    return [r.image_id for r in feature_results(store, dataset, model, layer, metric, features[None], k)]


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    from playground.app import create_app
    from playground.state import DEFAULT_DATASET

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", default=os.environ.get("SISP_ARTIFACTS", "artifacts"))
    parser.add_argument("--dataset", default=DEFAULT_DATASET)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--layer", default=None, help="default: the model's last layer")
    parser.add_argument("--metric", default="cosine")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--photos", default=",".join(PHOTOS))
    parser.add_argument("--backends", default="wasm,webgl,cpu", help="TF.js backends to time, in turn")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise

    root = Path(args.artifacts)
    export_stored_model(root, args.dataset, args.model)
    store = Store(root)
    layer = args.layer or store.layers(args.dataset, args.model)[-1]
    photos = {name: photo_bytes(name) for name in args.photos.split(",")}
    server = {name: server_features(store, args.dataset, args.model, layer, data) for name, data in photos.items()}
    print(f"{args.dataset} / {args.model} / {layer} / {args.metric}, top-{args.k}; {len(photos)} photos "
          f"(skimage.data, JPEG); load average before: {load_average()}")
    header = (f"{'backend':<8} {'variant':<8} {'download':>9} {'load':>8} {'warm-up':>8} {'per image':>10} "
              f"{'of it model':>11} {'min cos':>9} {'top-k same':>11} {'mean shared':>11}")
    print(header)
    with BrowserSession(create_app(root)) as browser:
        browser.open("/upload")
        browser.wait_for("return Boolean(window.sispPrivateUpload && window.sispPrivate)")
        urls = page_info(store, args.dataset, args.model, layer, args.metric, args.k, DEFAULT_VARIANT)["urls"]
        picked = browser.pick_backend(urls["tf"], urls["wasm"])
        print(f"the page picks {picked['name']}: {picked['why']}", flush=True)
        for backend, variant in [(b, v) for b in args.backends.split(",") for v in args.variants.split(",")]:
            info = page_info(store, args.dataset, args.model, layer, args.metric, args.k, variant)
            used = browser.set_backend(backend, info["urls"]["tf"], info["urls"]["wasm"])
            if used != backend:
                print(f"{backend:<8} unavailable in this browser ({used})")
                continue
            browser.reset_model()
            times, infer, cosines, same, overlap = [], [], [], 0, []
            first = None
            for name, data in photos.items():
                result = browser.embed(info, data)
                first = first or result
                t = result["timings"]
                times.append(t["decodeMs"] + t["inferMs"])
                infer.append(t["inferMs"])
                got = np.asarray(result["features"], np.float32)
                cosines.append(cosine(got, server[name]))
                ours = top_ids(store, args.dataset, args.model, layer, args.metric, got, args.k)
                theirs = top_ids(store, args.dataset, args.model, layer, args.metric, server[name], args.k)
                same += ours == theirs
                overlap.append(len(set(ours) & set(theirs)))
            t = first["timings"]
            print(f"{backend:<8} {variant:<8} {info['variants'][variant] / 1e6:>7.1f}MB {t['loadMs'] / 1000:>7.2f}s "
                  f"{t['warmupMs'] / 1000:>7.2f}s {statistics.median(times):>8.0f}ms "
                  f"{statistics.median(infer):>9.0f}ms "
                  f"{min(cosines):>9.6f} {same:>5} of {len(photos)} {statistics.mean(overlap):>10.1f}", flush=True)
    print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
