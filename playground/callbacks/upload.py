"""Upload view: decode in memory, extract with the selected model and layer, search the dataset.

A file over the limit is refused by the browser before it is read; assets/playground.js reports its size in
``UPLOAD_CHECK`` and clears the previous upload, and this view says why. A file within the limit clears the
previous upload too, then the previous messages and results at once (a clientside callback); a busy line
shows while the server computes its features.
"""

from __future__ import annotations

import logging
from typing import Any

from dash import ClientsideFunction, Dash, Input, Output, State, ctx, html
from dash.exceptions import PreventUpdate

from playground import components, ids
from playground.callbacks.guards import selection_in_view
from playground.ranking import feature_results, majority_label
from playground.state import Selection
from playground.store import BrokenArtifact, MissingArtifact, Store
from playground.uploads import UploadError, decode_contents, preview_data_url, too_big_message, upload_features

log = logging.getLogger(__name__)

TOO_BIG = "too_big"  # UPLOAD_CHECK's verdict for a file the browser refused


def render_rejected(check: dict[str, Any]) -> Any:
    """The message for a file the browser refused (``check``: name and size from assets/playground.js)."""
    name = check.get("name") or "your file"
    return components.message([html.Strong(f"{name}: "), too_big_message(int(check.get("size") or 0))], "error")


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
    status.append(
        html.P("Click a result to search the dataset with it, or ⤢ to see it full size.", className="hint")
    )
    grid = components.results_grid(
        sel.dataset, results, clickable=True, metric=sel.metric, pick_type=ids.UPLOAD_PICK, where="upload"
    )
    return status, [grid, components.scale_note(sel.metric)]


def register(app: Dash, store: Store) -> None:
    @app.callback(
        Output(ids.UPLOAD_STATUS, "children"),
        Output(ids.UPLOAD_RESULTS, "children"),
        Input(ids.UPLOAD, "contents"),
        Input(ids.UPLOAD_CHECK, "data"),
        Input(ids.SELECTION, "data"),
        State(ids.UPLOAD, "filename"),
        running=[(Output(ids.UPLOAD_BUSY, "className"), "upload-busy active", "upload-busy")],
    )
    def update_upload(contents, check, selection, filename):
        sel = selection_in_view(selection, "upload")
        refused = bool(check) and check.get("verdict") == TOO_BIG
        if not refused and (ctx.triggered_id == ids.UPLOAD_CHECK or (ctx.triggered_id == ids.UPLOAD and not contents)):
            raise PreventUpdate  # a file within the limit: the clientside callback cleared the page, contents follow
        if refused and (ctx.triggered_id == ids.UPLOAD_CHECK or not contents):
            return render_rejected(check), None
        return render_upload(store, sel, contents, filename)

    # A new file within the limit: the old messages and results go at once, and a line says it is being read.
    app.clientside_callback(
        ClientsideFunction(namespace="playground", function_name="uploadPending"),
        Output(ids.UPLOAD_STATUS, "children", allow_duplicate=True),
        Output(ids.UPLOAD_RESULTS, "children", allow_duplicate=True),
        Input(ids.UPLOAD_CHECK, "data"),
        prevent_initial_call=True,
    )
