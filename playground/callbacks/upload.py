"""Upload view: decode in memory, extract with the selected model and layer, search the dataset."""

from __future__ import annotations

import logging
from typing import Any

from dash import Dash, Input, Output, State, html

from playground import components, ids
from playground.callbacks.guards import selection_in_view
from playground.ranking import feature_results, majority_label
from playground.state import Selection
from playground.store import BrokenArtifact, MissingArtifact, Store
from playground.uploads import UploadError, decode_contents, preview_data_url, upload_features

log = logging.getLogger(__name__)


def render_upload(store: Store, sel: Selection, contents: str | None, filename: str | None) -> tuple[Any, Any]:
    """(status panel, results panel) for an upload; every failure becomes a message, never a traceback."""
    if not contents:
        return components.message("No image yet: drop one above or click browse.", "info"), None
    name = filename or "your image"
    if sel.dataset is None or sel.model is None:
        return components.message(
            "No model was computed for this dataset, so there is nothing to search.", "warning"
        ), None
    try:
        data = decode_contents(contents)
        features = upload_features(store, sel.dataset, sel.model, sel.layer, data)
        results = feature_results(store, sel.dataset, sel.model, sel.layer, sel.metric, features, sel.k)
        preview = preview_data_url(data)
    except UploadError as exc:
        return components.message([html.Strong(f"{name}: "), str(exc)], "error"), None
    except MissingArtifact as exc:  # BrokenArtifact included: its message says what is wrong with the file
        text = str(exc) if isinstance(exc, BrokenArtifact) else f"Not computed: {exc}"
        return components.message(text, "warning"), None
    except Exception as exc:  # the page gets a message (no server path), the log gets the traceback
        log.exception("feature extraction failed for an upload")
        reason = f"{type(exc).__name__}: {store.public_text(str(exc))}"
        return components.message(f"{name}: feature extraction failed ({reason}).", "error"), None
    status: list[Any] = [
        html.Div(
            [
                html.Img(src=preview, alt=name, className="thumb large"),
                html.Div(
                    [
                        html.Strong(name),
                        html.Div(
                            f"{len(data) / 1024:.0f} KB, searched with {sel.model} / {sel.layer} / {sel.metric}",
                            className="muted",
                        ),
                    ],
                    className="query-caption",
                ),
            ],
            className="query-card upload-preview",
        ),
    ]
    vote = majority_label(results)
    if vote is not None and sel.labeled:
        status.append(
            html.P(
                f"Most common label among the top {len(results)}: {vote[0]} ({vote[1]} of {len(results)}).",
                className="hint",
            )
        )
    return status, components.results_grid(sel.dataset, results, clickable=False)


def register(app: Dash, store: Store) -> None:
    @app.callback(
        Output(ids.UPLOAD_STATUS, "children"),
        Output(ids.UPLOAD_RESULTS, "children"),
        Input(ids.UPLOAD, "contents"),
        Input(ids.SELECTION, "data"),
        State(ids.UPLOAD, "filename"),
    )
    def update_upload(contents, selection, filename):
        sel = selection_in_view(selection, "upload")
        return render_upload(store, sel, contents, filename)
