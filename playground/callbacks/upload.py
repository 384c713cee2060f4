"""Upload view: decode in memory, extract with the selected model and layer, search the dataset.

The file's contents reach the server once: it keeps the bytes under a key that the page holds from then on
(``ids.UPLOAD_KEY``), so that a change of model, layer or metric sends the key, not the file. A file over the
limit is refused by the browser before it is read; assets/playground.js reports its size in
``UPLOAD_CHECK`` and clears the previous upload, and this view says why. A file within the limit clears the
previous upload too, then the previous messages and results at once (a clientside callback); a busy line
shows while the server computes its features.
"""

from __future__ import annotations

import logging
from typing import Any

from dash import ClientsideFunction, Dash, Input, Output, State, ctx, html, no_update
from dash.exceptions import PreventUpdate

from playground import components, ids
from playground.callbacks.guards import selection_in_view
from playground.ranking import feature_results, majority_label
from playground.state import Selection
from playground.store import BrokenArtifact, MissingArtifact, Store
from playground.uploads import (
    UploadError,
    decode_contents,
    keep_upload,
    kept_upload,
    too_big_message,
    upload_features,
    upload_preview,
)

log = logging.getLogger(__name__)

TOO_BIG = "too_big"  # UPLOAD_CHECK's verdict for a file the browser refused


def render_rejected(check: dict[str, Any]) -> Any:
    """The message for a file the browser refused (``check``: name and size from assets/playground.js)."""
    name = check.get("name") or "your file"
    return components.message([html.Strong(f"{name}: "), too_big_message(int(check.get("size") or 0))], "error")


NO_IMAGE = "No image yet: drop one above or click browse."


def render_upload(store: Store, sel: Selection, contents: str | None, filename: str | None) -> tuple[Any, Any]:
    """(status panel, results panel) for an upload; every failure becomes a message, never a traceback."""
    if not contents:
        return components.message(NO_IMAGE, "info"), None
    try:
        data = decode_contents(contents)
    except UploadError as exc:
        return components.message([html.Strong(f"{filename or 'your image'}: "), str(exc)], "error"), None
    return render_upload_bytes(store, sel, data, filename)


def render_upload_bytes(store: Store, sel: Selection, data: bytes, filename: str | None) -> tuple[Any, Any]:
    """:func:`render_upload` of decoded bytes (a new upload, or one kept on the server)."""
    name = filename or "your image"
    if sel.dataset is None or sel.model is None:
        return components.message(
            "No model was computed for this dataset, so there is nothing to search.", "warning"
        ), None
    try:
        features = upload_features(store, sel.dataset, sel.model, sel.layer, data)
        results = feature_results(store, sel.dataset, sel.model, sel.layer, sel.metric, features, sel.k)
        preview = upload_preview(data)
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
    # The file's contents are an input once: the callback keeps the bytes on the server, gives the page their key
    # (ids.UPLOAD_KEY) and empties dcc.Upload's contents, so that a later selection sends the key only.
    @app.callback(
        Output(ids.UPLOAD_STATUS, "children"),
        Output(ids.UPLOAD_RESULTS, "children"),
        Output(ids.UPLOAD_KEY, "data"),
        Output(ids.UPLOAD, "contents"),
        Input(ids.UPLOAD, "contents"),
        Input(ids.UPLOAD_CHECK, "data"),
        Input(ids.VIEW_SELECTION.format("upload"), "data"),
        State(ids.UPLOAD, "filename"),
        State(ids.UPLOAD_KEY, "data"),
        running=[(Output(ids.UPLOAD_BUSY, "className"), "upload-busy active", "upload-busy")],
    )
    def update_upload(contents, check, selection, filename, kept):
        sel = selection_in_view(selection, "upload")
        refused = bool(check) and check.get("verdict") == TOO_BIG
        if not refused and (ctx.triggered_id == ids.UPLOAD_CHECK or (ctx.triggered_id == ids.UPLOAD and not contents)):
            raise PreventUpdate  # a file within the limit: the clientside callback cleared the page, contents follow
        if refused and (ctx.triggered_id == ids.UPLOAD_CHECK or not contents):
            return render_rejected(check), None, None, no_update
        if contents:  # a new file: sent once, kept on the server from now on
            try:
                data = decode_contents(contents)
            except UploadError as exc:
                message = components.message([html.Strong(f"{filename or 'your image'}: "), str(exc)], "error")
                return message, None, None, None
            kept = {"key": keep_upload(data), "name": filename}
            return (*render_upload_bytes(store, sel, data, filename), kept, None)
        if not kept:
            return components.message(NO_IMAGE, "info"), None, no_update, no_update
        data = kept_upload(kept.get("key"))
        if data is None:
            text = f"{kept.get('name') or 'Your image'} is no longer kept on the server; drop it again."
            return components.message(text, "info"), None, None, no_update
        return (*render_upload_bytes(store, sel, data, kept.get("name")), no_update, no_update)

    # A new file within the limit: the old messages and results go at once, and a line says it is being read.
    app.clientside_callback(
        ClientsideFunction(namespace="playground", function_name="uploadPending"),
        Output(ids.UPLOAD_STATUS, "children", allow_duplicate=True),
        Output(ids.UPLOAD_RESULTS, "children", allow_duplicate=True),
        Input(ids.UPLOAD_CHECK, "data"),
        prevent_initial_call=True,
    )
