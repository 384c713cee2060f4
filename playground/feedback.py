"""Relevance feedback in the page (issue #23): what the browser needs to refine a result list by itself.

The results panel of Search (and of a server-computed upload) carries one hidden element, :func:`context`, with
the selection and the URLs the browser reads once (the layer's features, the labels, TensorFlow.js); the marks,
the refines and their rankings then stay in the browser (``assets/feedback.js``, the maths, and
``assets/feedback_ui.js``, the marks on the cards, Refine, Undo, Reset and the deep link's fragment). Nothing
here adds a request per click: the context rides in the panel the click renders anyway.

Above :data:`playground.private.LOCAL_SEARCH_MAX_IMAGES` images (or its byte limit) the browser does not hold the
layer's features, and the page says that feedback runs only on datasets the browser can search itself.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
from dash import html

from playground import components, ids
from playground.private import _url, searchable_in_browser, wasm_urls
from playground.store import MissingArtifact, Store
from precompute.feedback import DEFAULT_METHOD, HEAD, ROCCHIO, RocchioParams
from precompute.npm_files import TFJS

CONTEXT_CLASS = "feedback-context"


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
    data.update(n_images=int(n_images), dim=int(dim), labeled=store.is_labeled(dataset))
    if not searchable_in_browser(n_images, dim):
        return {
            **data,
            "available": False,
            "reason": f"refining runs in this browser, for datasets of up to 5,000 images ({dataset} has "
            f"{n_images:,} at {dim} dimensions)",
        }
    if query_vector is not None:
        vector = np.ascontiguousarray(query_vector, dtype="<f4").reshape(-1)
        data["query_vector"] = base64.b64encode(vector.tobytes()).decode("ascii")
    data.update(
        available=True,
        reason=None,
        thumb_route=components.THUMB_ROUTE,
        ids={"view_image": ids.VIEW_IMAGE, "pick": ids.UPLOAD_PICK if view == "upload" else ids.RESULT_PICK},
        urls={
            "features": _url(dataset, model, layer, "features.f32", version=fingerprint),
            "labels": _url(dataset, "labels.json", version=fingerprint),
            "tf": _url("tf.min.js", version=TFJS.version),
            "wasm": wasm_urls(),
        },
    )
    return data


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
