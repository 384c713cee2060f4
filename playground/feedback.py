"""Relevance feedback in the page (issue #23): what the browser needs to refine a result list by itself.

The results panel of Search (and of a server-computed upload) carries one hidden element, :func:`context`, with
the selection and the URLs the browser reads once (the layer's features, the labels, TensorFlow.js); the marks,
the refines and their rankings then stay in the browser (``assets/feedback.js``, the maths, and
``assets/feedback_ui.js``, the marks on the cards, Refine, Undo, Reset and the deep link's fragment). Nothing
here adds a request per click: the context rides in the panel the click renders anyway.

Above :data:`playground.private.LOCAL_SEARCH_MAX_IMAGES` images (or its byte limit) the browser does not hold the
layer's features (``"local": False``). Then, as private mode's vector path, the browser computes the Rocchio query
itself and sends only that vector (``POST /feedback/rank``); to compute it, it fetches the features of the results
it is shown (``GET /feedback/<dataset>/<model>/<layer>/rows?ids=...``: ids the server has just ranked, so the
request says nothing the server does not know), never of the marks alone.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

import numpy as np
from dash import html
from flask import Response, abort, jsonify, request

from playground import components, ids
from playground.private import _url, read_export, searchable_in_browser, wasm_urls
from playground.store import MissingArtifact, Store
from precompute.artifacts import check_name
from precompute.feedback import DEFAULT_METHOD, HEAD, HYBRID, ROCCHIO, RocchioParams
from precompute.npm_files import TFJS

CONTEXT_CLASS = "feedback-context"
FEEDBACK_ROUTE = "/feedback"
MAX_ROWS = 200  # rows per request: a result list is at most 50


def _weights(params: RocchioParams) -> dict[str, float]:
    return {"alpha": params.alpha, "beta": params.beta, "gamma": params.gamma}


def context_data(
    store: Store,
    dataset: str,
    model: str,
    layer: str,
    metric: str,
    query: int | None,
    k: int,
    view: str,
    query_vector: np.ndarray | None = None,
) -> dict[str, Any]:
    """The feedback context of a result list as JSON-ready data (see the module docstring).

    ``query`` is the query's image id (Search), None for an upload, whose vector the browser has already (private
    mode) or gets here as ``query_vector`` (features computed on the server).
    """
    data: dict[str, Any] = {
        "view": view,
        "dataset": dataset,
        "model": model,
        "layer": layer,
        "metric": metric,
        "query": query,
        "k": int(k),
        "rocchio": _weights(ROCCHIO),
        "head": dict(HEAD),
        "default_method": DEFAULT_METHOD,
    }
    try:
        n_images, dim = store.features(dataset, model, layer).shape
        fingerprint = store.dataset(dataset).fingerprint or ""
    except MissingArtifact as exc:
        return {**data, "available": False, "reason": str(exc)}
    data.update(n_images=int(n_images), dim=int(dim), labeled=store.is_labeled(dataset), fingerprint=fingerprint)
    local = searchable_in_browser(n_images, dim)
    data["local"] = local
    if query_vector is not None:
        vector = np.ascontiguousarray(query_vector, dtype="<f4").reshape(-1)
        data["query_vector"] = base64.b64encode(vector.tobytes()).decode("ascii")
    data.update(
        available=True,
        reason=None,
        thumb_route=components.THUMB_ROUTE,
        ids={"view_image": ids.VIEW_IMAGE, "pick": ids.UPLOAD_PICK if view == "upload" else ids.RESULT_PICK},
        urls={
            "rows": f"{FEEDBACK_ROUTE}/{quote(dataset)}/{quote(model)}/{quote(layer)}/rows",
            "rank": f"{FEEDBACK_ROUTE}/rank",
            "features": _url(dataset, model, layer, "features.f32", version=fingerprint),
            "labels": _url(dataset, "labels.json", version=fingerprint),
            "tf": _url("tf.min.js", version=TFJS.version),
            "wasm": wasm_urls(),
        },
    )
    hybrid = _hybrid(store, dataset, model, layer, fingerprint, view) if local else None
    if hybrid:
        data["hybrid"] = hybrid
    return data


HEAD_SUFFIX = "+head"


def _hybrid(store: Store, dataset: str, model: str, layer: str, fingerprint: str, view: str) -> dict[str, Any] | None:
    """Where the server trained a head for this layer (``<model>+head``, precompute --train-head) and exported it
    to TF.js: the export's model.json (float32 weights where there are) and the name of the head's Dense layer,
    and the base layer's features, which the head maps. None when there is no such head.

    Viewing the base model, the refine fine-tunes its head; viewing ``<model>+head`` in Search, the same (its
    features are the head's outputs, so the base's features are fetched too). An upload viewed on the head model
    has only the head's vector in the browser, so it gets no hybrid refine.
    """
    base = model[: -len(HEAD_SUFFIX)] if model.endswith(HEAD_SUFFIX) else model
    head_model = base + HEAD_SUFFIX
    if view == "upload" and model == head_model:
        return None
    try:
        if head_model not in store.models(dataset) or layer not in store.layers(dataset, head_model):
            return None
        export, _reason = read_export(store, dataset, head_model)
        spec = store.tfjs_export(dataset, head_model)
        dense = ((spec.head or {}).get("layers") or {}).get(layer)
        n_images, dim = store.features(dataset, base, layer).shape
    except (MissingArtifact, OSError, ValueError, KeyError, TypeError):
        return None
    if export is None or not dense or not searchable_in_browser(n_images, dim):
        return None
    variant = "float32" if "float32" in export.variants else next(iter(export.variants))
    return {
        "model": head_model,
        "base": base,
        "dense": dense["dense"],
        "units": int(dense["units"]),
        "variant": variant,
        "model_url": _url(dataset, head_model, variant, "model.json", version=fingerprint),
        "features": _url(dataset, base, layer, "features.f32", version=fingerprint),
        "dim": int(dim),
        "settings": dict(HYBRID),
    }


def context(
    store: Store,
    dataset: str,
    model: str,
    layer: str,
    metric: str,
    query: int | None,
    k: int,
    view: str,
    query_vector: np.ndarray | None = None,
) -> html.Div:
    """The hidden element that ``assets/feedback_ui.js`` reads beside a result list."""
    data = context_data(store, dataset, model, layer, metric, query, k, view, query_vector)
    return html.Div(hidden=True, className=CONTEXT_CLASS, **{"data-feedback": json.dumps(data, sort_keys=True)})


# ---------------------------------------------------------------------------------------------- routes
def add_feedback_routes(app: Any, store: Store) -> None:
    """The vector path of a dataset too big for the browser (see the module docstring)."""

    def layer_features(dataset: str, model: str, layer: str) -> np.ndarray:
        try:
            for name, what in ((dataset, "dataset"), (model, "model"), (layer, "layer")):
                check_name(name, f"{what} name")
            return store.features(dataset, model, layer)
        except (ValueError, MissingArtifact):
            abort(404)

    @app.server.route(f"{FEEDBACK_ROUTE}/<dataset>/<model>/<layer>/rows")
    def feedback_rows(dataset: str, model: str, layer: str) -> Response:
        features = layer_features(dataset, model, layer)
        try:
            ids = [int(v) for v in request.args.get("ids", "").split(",") if v != ""]
        except ValueError:
            abort(400)
        if not ids or len(ids) > MAX_ROWS or min(ids) < 0 or max(ids) >= len(features):
            abort(400)
        rows = np.ascontiguousarray(features[ids], dtype="<f4")
        labels = store.labels(dataset)
        return jsonify(
            {
                "ids": ids,
                "dim": int(features.shape[1]),
                "rows": base64.b64encode(rows.tobytes()).decode("ascii"),
                "labels": None if labels is None else [str(labels[i]) for i in ids],
            }
        )

    @app.server.route(f"{FEEDBACK_ROUTE}/rank", methods=["POST"])
    def feedback_rank() -> Response:
        from precompute.similarity import search_exact

        body = request.get_json(silent=True) or {}
        try:
            dataset, model, layer, metric = (str(body[key]) for key in ("dataset", "model", "layer", "metric"))
            k = int(body["k"])
            exclude = body.get("exclude")
            vector = np.frombuffer(base64.b64decode(body["vector"]), dtype="<f4")
        except (KeyError, TypeError, ValueError):
            abort(400)
        features = layer_features(dataset, model, layer)
        if vector.shape != (features.shape[1],) or not np.isfinite(vector).all() or not 1 <= k <= 50:
            abort(400)
        if metric not in store.metrics(dataset, model, layer):
            abort(400)
        skip = None if exclude is None else np.array([int(exclude)])
        ranking = search_exact(vector, features, metric, top_n=min(k, len(features) - (skip is not None)), exclude=skip)
        ids = [int(i) for i in ranking.indices[0] if i >= 0]
        labels = store.labels(dataset)
        return jsonify(
            {
                "ids": ids,
                "distances": [float(d) for d in ranking.distances[0][: len(ids)]],
                "labels": None if labels is None else [str(labels[i]) for i in ids],
            }
        )
