"""Private mode of the Upload view: the browser embeds the image with TensorFlow.js, the server never sees it.

What the server does for it (issue #16, contract point 4), and nothing else:

- serves TensorFlow.js (``GET /private/tf.min.js``, from :data:`precompute.npm_files.TFJS`, never a CDN; the
  page loads it lazily, only when private mode is used: 1.5 MB that no other page needs);
- serves TF.js' WebAssembly backend (``GET /private/tf-backend-wasm.min.js`` and the ``.wasm`` binaries it loads,
  ``/private/tfjs-backend-wasm*.wasm`` as ``application/wasm``, from :data:`precompute.npm_files.TFJS_WASM`): the
  page loads it only when it picks that backend (see ``pickBackend`` in assets/private_upload.js);
- serves a model's TF.js export (``GET /private/<dataset>/<model>/export.json`` and
  ``/private/<dataset>/<model>/<variant>/<file>``: ``model.json`` and its weight shards);
- serves a layer's stored features as raw little-endian float32, n x dim row-major
  (``GET /private/<dataset>/<model>/<layer>/features.f32``) and the dataset's labels
  (``GET /private/<dataset>/labels.json``), so that the browser can search a small dataset itself;
- tells the page, per selection, whether private mode is possible and how (:func:`private_info`).

Every route checks its names like the thumbnail route (``precompute.artifacts.check_name``, then the index),
answers 404 for anything else, and is cached for a year when the URL carries the dataset's current fingerprint
(``?v=``): a recomputed dataset gets a new fingerprint, hence new URLs.

The browser side is ``assets/private_upload.js`` (the glue) over ``assets/private_search.js``
(``window.sispPrivate``: decoding, the PIL-identical resize, preprocessing, exact search) and
``assets/private_cards.js`` (``window.sispCards``: the result cards, as ``playground.components`` draws them).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from flask import Response, abort, request, send_file

from playground.ranking import distance_reference
from playground.store import BrokenArtifact, MissingArtifact, Store
from precompute.artifacts import check_name
from precompute.npm_files import TFJS, TFJS_WASM, NpmFileUnavailable
from precompute.schema_export import EXPORT_FILE
from precompute.similarity import METRICS, parse_metric
from precompute.tfjs_export import VARIANTS

log = logging.getLogger(__name__)

PRIVATE_ROUTE = "/private"
# uint16: half the float32 download, and the closest to float32 of the half-size variants. Measured on
# openclipart-200 / efficientnet-lite0 / top_conv with six scikit-image photos (docs/benchmarks.md, section 13):
# uint16 cosine 0.999998 to the server's features and the same top-10 for 6 of 6 photos; float16 (the same
# 6.9 MB) 0.999988 and 4 of 6 (near-tied neighbours swap); uint8 (3.5 MB) 0.67 and 0 of 6: one 8-bit affine
# range per tensor cannot hold this network's depthwise kernels.
DEFAULT_VARIANT = "uint16"
# The browser searches the dataset itself (downloads the layer's features once) up to this many images and
# this many bytes of features; above, it sends the feature vector and the server ranks.
LOCAL_SEARCH_MAX_IMAGES = 5000
LOCAL_SEARCH_MAX_BYTES = 64 * 1024 * 1024
CACHE_FOREVER = 365 * 24 * 3600
CACHE_SHORT = 300
_FILE_NAME = re.compile(r"^(model\.json|group\d{1,4}-shard\d{1,4}of\d{1,4}\.bin)$")
_MIMETYPES = {".json": "application/json", ".bin": "application/octet-stream"}


@dataclass(frozen=True)
class ExportInfo:
    """A model's TF.js export as the page needs it: its layers and each variant's download size in bytes."""

    layers: list[str]
    output_dims: list[int]
    input_size: int
    variants: dict[str, int] = field(default_factory=dict)


def read_export(store: Store, dataset: str, model: str) -> tuple[ExportInfo | None, str | None]:
    """(the model's export, None), or (None, why there is none).

    The sizes and the reason a model has none come from the index (``ModelEntry.tfjs``); the layers and the
    input size from export.json (``Store.tfjs_export``), which the browser reads too, so it must exist. An index
    written before exports existed has no record: then export.json's own sizes are used.
    """
    record = store.model(dataset, model).tfjs
    if record is not None and not record.variant_bytes:
        return None, record.reason or f"{model} has no TensorFlow.js export"
    try:
        spec = store.tfjs_export(dataset, model)
    except BrokenArtifact as exc:
        return None, f"{model}'s TensorFlow.js export is unreadable ({exc})"
    except MissingArtifact:
        return None, f"{model} has no TensorFlow.js export (precompute writes it: --tfjs)"
    sizes = record.variant_bytes if record is not None else {name: files.bytes for name, files in spec.variants.items()}
    variants = {name: int(sizes[name]) for name in VARIANTS if name in sizes and name in spec.variants}
    info = ExportInfo(list(spec.layers), list(spec.output_dims), spec.input_size, variants)
    if not info.variants:
        return None, f"{model}'s TensorFlow.js export lists no variant"
    return info, None


def searchable_in_browser(n_images: int, dim: int) -> bool:
    """Whether the browser searches a layer of ``n_images`` x ``dim`` itself (else it sends the feature vector)."""
    return n_images <= LOCAL_SEARCH_MAX_IMAGES and n_images * dim * 4 <= LOCAL_SEARCH_MAX_BYTES


def tfjs_problem() -> str | None:
    """Why TensorFlow.js cannot be served (None when it can)."""
    try:
        TFJS.find(fetch=False)
    except NpmFileUnavailable as exc:
        log.warning("private mode unavailable: %s", exc)  # the page gets no server path
        return "TensorFlow.js is not installed on the server (python -m precompute.npm_files fetches it)"
    return None


def wasm_urls() -> dict[str, Any] | None:
    """The wasm backend's script and binaries for the page, or None when they are not installed (then the page
    uses TF.js' WebGL or CPU backend)."""
    try:
        TFJS_WASM.find(fetch=False)
        for name in TFJS_WASM.companion_names:
            TFJS_WASM.find_companion(name, fetch=False)
    except NpmFileUnavailable as exc:
        log.info("no wasm backend for private mode: %s", exc)
        return None
    return {
        "script": _url(Path(TFJS_WASM.member).name, version=TFJS_WASM.version),
        "files": {name: _url(name, version=TFJS_WASM.version) for name in TFJS_WASM.companion_names},
    }


def _url(*parts: str, version: str | None) -> str:
    path = PRIVATE_ROUTE + "/" + "/".join(quote(p, safe="") for p in parts)
    return f"{path}?v={quote(version)}" if version else path


def private_info(store: Store, dataset: str | None, model: str | None, layer: str | None,
                 metric: str | None = None) -> dict[str, Any]:
    """What the page needs for private mode with this selection (JSON for a dcc.Store).

    ``available`` is False with a ``reason`` when the browser cannot embed the image (no export, a layer the
    export lacks, TensorFlow.js missing); ``local`` says whether the browser searches itself (a small dataset,
    a metric that assets/private_search.js computes) or sends the feature vector for the server to rank. With
    ``metric``, a local search also gets the collection's distance reference (``reference``:
    ``ranking.DistanceReference.for_browser``), so that its cards say what the server's say.
    """
    info: dict[str, Any] = {"dataset": dataset, "model": model, "layer": layer, "available": False}
    if dataset is None or model is None or layer is None:
        return {**info, "reason": "no model is selected"}
    try:
        export, reason = read_export(store, dataset, model)
        n_images = store.n_images(dataset)
        fingerprint = store.dataset(dataset).fingerprint or ""
        store.layer(dataset, model, layer)
    except (MissingArtifact, ValueError) as exc:
        return {**info, "reason": str(exc)}
    if export is None:
        return {**info, "reason": reason}
    if layer not in export.layers:
        return {**info, "reason": f"{model}'s TensorFlow.js export has no layer {layer}"}
    problem = tfjs_problem()
    if problem:
        return {**info, "reason": problem}
    position = export.layers.index(layer)
    dim = export.output_dims[position]
    local = searchable_in_browser(n_images, dim) and (metric is None or _computed_in_browser(metric))
    variants = dict(export.variants)
    return {
        **info,
        "reference": _browser_reference(store, dataset, model, layer, metric) if local and metric else None,
        "available": True,
        "reason": None,
        "layer_index": position,
        "dim": dim,
        "n_images": n_images,
        "labeled": store.is_labeled(dataset),
        "local": local,
        "variants": variants,
        "default_variant": DEFAULT_VARIANT if DEFAULT_VARIANT in variants else next(iter(variants)),
        "urls": {
            "tf": _url("tf.min.js", version=TFJS.version),
            "wasm": wasm_urls(),
            "export": _url(dataset, model, EXPORT_FILE, version=fingerprint),
            "model": {name: _url(dataset, model, name, "model.json", version=fingerprint) for name in variants},
            "features": _url(dataset, model, layer, "features.f32", version=fingerprint),
            "labels": _url(dataset, "labels.json", version=fingerprint),
        },
    }


def _computed_in_browser(metric: str) -> bool:
    """Whether assets/private_search.js computes ``metric`` (the registry's ``browser``; unknown names: no)."""
    try:
        return METRICS[parse_metric(metric)[0]].browser
    except ValueError:
        return False


def _browser_reference(store: Store, dataset: str, model: str, layer: str, metric: str) -> dict[str, Any] | None:
    try:
        return distance_reference(store, dataset, model, layer, metric).for_browser()
    except MissingArtifact:  # the metric was not computed: the browser's search says so
        return None


# ---------------------------------------------------------------------------------------------- routes
def _cached(response: Response, fingerprint: str | None) -> Response:
    """Long cache when the URL names the current version (``?v=``), short otherwise."""
    current = bool(fingerprint) and request.args.get("v") == fingerprint
    response.headers["Cache-Control"] = f"public, max-age={CACHE_FOREVER if current else CACHE_SHORT}" + (
        ", immutable" if current else "")
    if fingerprint and "ETag" not in response.headers:  # send_file sets its own (and answers If-None-Match)
        response.headers["ETag"] = f'"{fingerprint}"'
    return response


def add_private_routes(app: Any, store: Store) -> None:
    """Register the private mode's routes on the app's Flask server (see the module docstring)."""

    def fingerprint_of(dataset: str, model: str | None = None, layer: str | None = None) -> str:
        try:
            check_name(dataset, "dataset name")
            entry = store.dataset(dataset)
            if model is not None:
                check_name(model, "model name")
                store.model(dataset, model)
            if layer is not None:
                check_name(layer, "layer name")
                store.layer(dataset, model, layer)
        except (ValueError, MissingArtifact):
            abort(404)
        return entry.fingerprint or ""

    @app.server.route(f"{PRIVATE_ROUTE}/tf.min.js")
    def private_tfjs() -> Response:
        try:
            path = TFJS.find(fetch=False)
        except NpmFileUnavailable as exc:
            log.warning("private mode: %s", exc)
            return Response("404 Not Found: TensorFlow.js is not installed on this server "
                            "(python -m precompute.npm_files fetches it).\n", status=404, mimetype="text/plain")
        response = send_file(path, mimetype="text/javascript", max_age=0, conditional=True)
        return _cached(response, TFJS.version)

    @app.server.route(f"{PRIVATE_ROUTE}/<name>")
    def private_tfjs_wasm(name: str) -> Response:
        script = Path(TFJS_WASM.member).name
        if name != script and name not in TFJS_WASM.companion_names:
            abort(404)
        try:
            path = TFJS_WASM.find(fetch=False) if name == script else TFJS_WASM.find_companion(name, fetch=False)
        except NpmFileUnavailable as exc:
            log.warning("private mode: %s", exc)
            return Response("404 Not Found: TensorFlow.js' wasm backend is not installed on this server "
                            "(python -m precompute.npm_files fetches it).\n", status=404, mimetype="text/plain")
        # application/wasm: browsers compile a .wasm response while it streams only with this type
        mimetype = "text/javascript" if name == script else "application/wasm"
        response = send_file(path, mimetype=mimetype, max_age=0, conditional=True)
        return _cached(response, TFJS_WASM.version)

    @app.server.route(f"{PRIVATE_ROUTE}/<dataset>/labels.json")
    def private_labels(dataset: str) -> Response:
        fingerprint = fingerprint_of(dataset)
        labels = store.labels(dataset)
        body = json.dumps({"labels": None if labels is None else [str(x) for x in labels]})
        return _cached(Response(body, mimetype="application/json"), fingerprint)

    @app.server.route(f"{PRIVATE_ROUTE}/<dataset>/<model>/{EXPORT_FILE}")
    def private_export(dataset: str, model: str) -> Response:
        fingerprint = fingerprint_of(dataset, model)
        try:
            path = store.tfjs_file(dataset, model, EXPORT_FILE)
        except MissingArtifact:
            abort(404)
        return _cached(send_file(path, mimetype="application/json", max_age=0), fingerprint)

    @app.server.route(f"{PRIVATE_ROUTE}/<dataset>/<model>/<part>/<name>")
    def private_file(dataset: str, model: str, part: str, name: str) -> Response:
        if part in VARIANTS:
            if not _FILE_NAME.match(name):
                abort(404)
            fingerprint = fingerprint_of(dataset, model)
            try:
                path = store.tfjs_file(dataset, model, name, variant=part)
            except MissingArtifact:
                abort(404)
            mimetype = _MIMETYPES[Path(name).suffix]
            return _cached(send_file(path, mimetype=mimetype, max_age=0), fingerprint)
        if name != "features.f32":
            abort(404)
        fingerprint = fingerprint_of(dataset, model, part)
        try:
            features = store.features(dataset, model, part)
        except MissingArtifact:
            abort(404)
        if not searchable_in_browser(*features.shape):
            abort(404)  # only what the page would fetch: a layer small enough to search in the browser
        body = np.ascontiguousarray(features, dtype="<f4").tobytes()
        response = Response(body, mimetype="application/octet-stream")
        response.headers["X-Shape"] = f"{features.shape[0]},{features.shape[1]}"
        return _cached(response, fingerprint)
