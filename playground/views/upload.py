"""Upload: search the dataset with your own image, featurised in the browser (private mode) or on the server.

Private mode (playground/private.py, assets/private_upload.js): a clientside callback receives dcc.Upload's
contents and, where the model has a TensorFlow.js export, embeds the image in the browser; it then searches
the dataset itself (small datasets: nothing is sent) or sends only the feature vector (``ids.PRIVATE_QUERY``),
which :func:`render_private_results` ranks. The contents reach the server only in server mode, through
``ids.UPLOAD_SERVER`` (no server callback reads dcc.Upload's contents), with the reason server mode was used.

In server mode the file's contents reach the server once: it keeps the bytes under a key that the page holds
from then on (``ids.UPLOAD_KEY``), so that a change of model, layer or metric sends the key, not the file. A
file over the limit is refused by the browser before it is read; assets/playground.js reports its size in
``UPLOAD_CHECK`` and clears the previous upload, and this view says why. A file within the limit clears the
previous upload too, then the previous messages and results at once (a clientside callback); a busy line
shows while the server computes its features.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from dash import ClientsideFunction, Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from playground import components, feedback, ids
from playground.callbacks.guards import selection_in_view
from playground.private import private_info
from playground.ranking import distance_reference, feature_results, majority_label
from playground.state import Selection
from playground.store import BrokenArtifact, MissingArtifact, Store
from playground.uploads import (
    BROWSER_MAX_BYTES,
    MAX_UPLOAD_BYTES,
    UploadError,
    decode_contents,
    display_name,
    keep_upload,
    kept_upload,
    too_big_message,
    upload_features,
    upload_preview,
)

log = logging.getLogger(__name__)

TITLE = "Upload your image"
TOO_BIG = "too_big"  # UPLOAD_CHECK's verdict for a file the browser refused
PRIVATE_ON_LABEL = "Private mode on: your image's features are computed in this browser"
PRIVATE_OFF_LABEL = "Private mode off: the server computes your image's features"


def _private_panel() -> html.Div:
    """Private mode's switch (a toggle button, on by default), the weight variant to download, and a line saying
    what will happen (:func:`private_panel` fills the variants and the line for each selection)."""
    return html.Div(
        [
            # A toggle button (aria-pressed), as the map's thumbnails: Dash 4's dcc.Checklist nests its input in
            # an option role. On while its clicks are even.
            html.Button(
                PRIVATE_ON_LABEL,
                id=ids.PRIVATE_MODE,
                n_clicks=0,
                className="toggle private-mode",
                title="On: your image never leaves this browser (TensorFlow.js). Off: the server computes its "
                "features.",
                **{"aria-pressed": "true"},
            ),
            html.Div(
                components.control("Model download", components.dropdown(ids.PRIVATE_VARIANT), "private-variant",
                                   ids.PRIVATE_VARIANT),
                id=ids.PRIVATE_VARIANT_CONTROL,
            ),
            html.Div(id=ids.PRIVATE_LINE, className="hint private-line", **{"aria-live": "polite"}),
        ],
        className="private-panel",
    )


def layout() -> html.Div:
    limit_mb = MAX_UPLOAD_BYTES // (1024 * 1024)
    return html.Div(
        [
            html.Div(
                [
                    # assets/playground.js watches the files chosen or dropped here: it reports each one's size
                    # (UPLOAD_CHECK) before dcc.Upload reads it, so a file over the limit gets a message.
                    html.Div(
                        dcc.Upload(
                            id=ids.UPLOAD,
                            children=html.Div(["Drag and drop an image here, or ", html.A("browse", className="link")]),
                            className="upload-zone",
                            multiple=False,
                            max_size=BROWSER_MAX_BYTES,
                        ),
                        className="upload-guard",
                        **{"data-max-bytes": str(MAX_UPLOAD_BYTES), "data-check-id": ids.UPLOAD_CHECK,
                           "data-upload-id": ids.UPLOAD},
                    ),
                    dcc.Store(id=ids.UPLOAD_CHECK),
                    dcc.Store(id=ids.UPLOAD_KEY),
                    dcc.Store(id=ids.UPLOAD_SERVER),
                    dcc.Store(id=ids.PRIVATE_INFO),
                    dcc.Store(id=ids.PRIVATE_QUERY),
                    _private_panel(),
                    html.P(
                        [
                            f"JPEG, PNG, WebP, GIF, BMP or TIFF, up to {limit_mb} MiB. ",
                            html.Strong("Without private mode "),
                            "the server computes the features: your image is processed in its memory and is never "
                            "written to disk or sent anywhere else.",
                        ],
                        className="hint",
                    ),
                    html.Div(
                        [html.Span(className="spinner", **{"aria-hidden": "true"}),
                         "Computing the image's features… The first search with a backbone loads its model "
                         "(a few seconds)."],
                        id=ids.UPLOAD_BUSY,
                        className="upload-busy",
                        role="status",
                    ),
                    html.Div(id=ids.UPLOAD_STATUS, **{"aria-live": "polite"}),
                ],
                className="side-panel",
            ),
            html.Div(
                [
                    html.H3("Most similar images"),
                    html.Div(id=ids.UPLOAD_RESULTS),
                ],
                className="main-panel",
            ),
        ],
        className="two-columns",
    )


def render_rejected(check: dict[str, Any]) -> Any:
    """The message for a file the browser refused (``check``: name and size from assets/playground.js)."""
    name = display_name(check.get("name")) or "your file"
    return components.message([html.Strong(f"{name}: "), too_big_message(int(check.get("size") or 0))], "error")


NO_IMAGE = "No image yet: drop one above or click browse."


def render_upload(store: Store, sel: Selection, contents: str | None, filename: str | None) -> tuple[Any, Any]:
    """(status panel, results panel) for an upload; every failure becomes a message, never a traceback."""
    if not contents:
        return components.message(NO_IMAGE, "info"), None
    filename = display_name(filename)
    try:
        data = decode_contents(contents)
    except UploadError as exc:
        return components.message([html.Strong(f"{filename or 'your image'}: "), str(exc)], "error"), None
    return render_upload_bytes(store, sel, data, filename)


def render_upload_bytes(
    store: Store, sel: Selection, data: bytes, filename: str | None, reason: str | None = None
) -> tuple[Any, Any]:
    """:func:`render_upload` of decoded bytes (a new upload, or one kept on the server); ``reason``: why the
    server computed the features (private mode was not used), said in the page."""
    name = display_name(filename) or "your image"
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
    if reason:
        status.append(html.P(f"Features computed on the server: {reason}.", className="hint server-mode"))
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
    reference = distance_reference(store, sel.dataset, sel.model, sel.layer, sel.metric)
    weak = components.match_strength_note(results, reference)
    if weak is not None:
        status.append(weak)
    grid = components.results_grid(
        sel.dataset, results, clickable=True, metric=sel.metric, pick_type=ids.UPLOAD_PICK, where="upload",
        reference=reference,
    )
    marks = feedback.context(store, sel.dataset, sel.model, sel.layer, sel.metric, None, sel.k, "upload", features)
    return status, [grid, components.scale_note(sel.metric), marks]


def render_private_line(info: dict[str, Any], mode_on: bool, variant: str | None) -> Any:
    """The line under the private-mode switch: what happens to an image dropped now, and why."""
    if not mode_on:
        return "Private mode is off: an image dropped here is sent to the server, which computes its features."
    if not info.get("available"):
        return (f"Private mode is unavailable here ({info.get('reason') or 'no export'}): an image dropped here "
                "is sent to the server, which computes its features.")
    size = (info.get("variants") or {}).get(variant or "")
    download = f"a {size / 1e6:.1f} MB model download ({variant}), once" if size else "a model download"
    if info.get("local"):
        where = ("this browser also searches the dataset itself (it downloads the layer's features and all "
                 "thumbnails once): nothing about your image is sent.")
    else:
        where = (f"only its feature vector ({info.get('dim')} numbers) is sent, and the server ranks the dataset "
                 "with it.")
    return f"Your image stays in this browser: TensorFlow.js computes its features ({download}); {where}"


def variant_options(info: dict[str, Any]) -> list[dict[str, Any]]:
    """The export's weight variants with their download sizes, for the variant dropdown."""
    return [{"label": f"{name} ({size / 1e6:.1f} MB)", "value": name}
            for name, size in (info.get("variants") or {}).items()]


def render_private_results(store: Store, query: dict[str, Any] | None) -> Any:
    """The results panel for a feature vector computed in the browser (``ids.PRIVATE_QUERY``)."""
    if not query or not query.get("features"):
        raise PreventUpdate
    dataset, model, layer, metric = (query.get(key) for key in ("dataset", "model", "layer", "metric"))
    try:
        k = int(query.get("k") or 0)
        features = np.asarray(query["features"], dtype=np.float32)
        expected = store.features(dataset, model, layer).shape[1]
        if features.ndim != 1 or features.shape[0] != expected or not np.isfinite(features).all() or k < 1:
            raise ValueError(f"expected {expected} finite numbers and k >= 1")
        results = feature_results(store, dataset, model, layer, metric, features[None], k)
    except MissingArtifact as exc:
        return components.message(str(exc), "warning")
    except (ValueError, TypeError) as exc:
        return components.message(f"The browser's feature vector cannot be used ({exc}).", "error")
    parts: list[Any] = []
    vote = majority_label(results)
    if vote is not None and store.is_labeled(dataset):
        parts.append(html.P(
            f"Most common label among the top {len(results)}: {vote[0]} ({vote[1]} of {len(results)}).",
            className="hint",
        ))
    reference = distance_reference(store, dataset, model, layer, metric)
    weak = components.match_strength_note(results, reference)
    if weak is not None:
        parts.append(weak)
    parts.append(components.results_grid(dataset, results, clickable=True, metric=metric,
                                         pick_type=ids.UPLOAD_PICK, where="upload", reference=reference))
    parts.append(components.scale_note(metric))
    return html.Div(parts, className="private-results", **{"data-ranked-by": "server"})


def private_mode_state(on: bool) -> tuple[str, str, dict[str, str]]:
    """(the switch's label, its class, the model-download control's style) for private mode on or off: off is
    said in words, not only by the check glyph, and the download choice that no longer applies is hidden."""
    if on:
        return PRIVATE_ON_LABEL, "toggle private-mode", {}
    return PRIVATE_OFF_LABEL, "toggle private-mode off", {"display": "none"}


def private_mode_on(clicks: int | None) -> bool:
    """Private mode's toggle button is on until pressed, and after every second press."""
    return not (clicks or 0) % 2


def private_panel(store: Store, sel: Selection, mode: bool, variant: str | None) -> tuple[Any, ...]:
    """(private info for the page, variant options, variant, the line saying what happens) of a selection."""
    info = private_info(store, sel.dataset, sel.model, sel.layer, sel.metric)
    info.update(metric=sel.metric, k=sel.k, labeled=sel.labeled, mode_on=bool(mode),
                thumb_route=components.THUMB_ROUTE,
                ids={"view_image": ids.VIEW_IMAGE, "pick": ids.UPLOAD_PICK, "busy": ids.UPLOAD_BUSY})
    if variant not in (info.get("variants") or {}):
        variant = info.get("default_variant")
    info["variant"] = variant
    return info, variant_options(info), variant, render_private_line(info, bool(mode), variant)


def upload_outputs(
    store: Store, sel: Selection, upload: dict[str, Any] | None, check: dict[str, Any] | None, kept: Any
) -> tuple[Any, Any, Any, Any]:
    """(status, results, kept key, upload store) after a new file for the server, a size check or a selection."""
    upload = upload if isinstance(upload, dict) else {}
    contents, filename, reason = upload.get("contents"), display_name(upload.get("filename")), upload.get("reason")
    refused = bool(check) and check.get("verdict") == TOO_BIG
    new_file = ctx.triggered_id == ids.UPLOAD_SERVER
    if not refused and (ctx.triggered_id == ids.UPLOAD_CHECK or (new_file and not contents)):
        raise PreventUpdate  # a file within the limit: the clientside callback cleared the page, contents follow
    if refused and (ctx.triggered_id == ids.UPLOAD_CHECK or not contents):
        return render_rejected(check), None, None, no_update
    if contents:  # a new file: sent once, kept on the server from now on
        try:
            data = decode_contents(contents)
        except UploadError as exc:
            message = components.message([html.Strong(f"{filename or 'your image'}: "), str(exc)], "error")
            return message, None, None, None
        # The reason it went to the server is kept with it: every later rendering (another backbone) says it again.
        kept = {"key": keep_upload(data), "name": filename, "reason": reason}
        return (*render_upload_bytes(store, sel, data, filename, reason), kept, None)
    if isinstance(kept, dict) and kept.get("private"):
        raise PreventUpdate  # the browser holds the image and searches again (assets/private_upload.js)
    if not kept:
        return components.message(NO_IMAGE, "info"), None, no_update, no_update
    data = kept_upload(kept.get("key"))
    if data is None:
        text = f"{kept.get('name') or 'Your image'} is no longer kept on the server; drop it again."
        return components.message(text, "info"), None, None, no_update
    return (*render_upload_bytes(store, sel, data, kept.get("name"), kept.get("reason")), no_update, no_update)


def register(app: Dash, store: Store) -> None:
    # One round trip per selection: the upload's results and private mode's panel for it. The file's contents are
    # an input once, and only in server mode (ids.UPLOAD_SERVER, written by the clientside callback below): the
    # callback keeps the bytes on the server, gives the page their key (ids.UPLOAD_KEY) and empties the store, so
    # that a later selection sends the key only. After a private upload the key is {"private": true}: the browser
    # holds the image and searches again itself.
    @app.callback(
        Output(ids.UPLOAD_STATUS, "children"),
        Output(ids.UPLOAD_RESULTS, "children"),
        Output(ids.UPLOAD_KEY, "data"),
        Output(ids.UPLOAD_SERVER, "data"),
        Output(ids.PRIVATE_INFO, "data"),
        Output(ids.PRIVATE_VARIANT, "options"),
        Output(ids.PRIVATE_VARIANT, "value"),
        Output(ids.PRIVATE_LINE, "children"),
        Input(ids.UPLOAD_SERVER, "data"),
        Input(ids.UPLOAD_CHECK, "data"),
        Input(ids.VIEW_SELECTION.format("upload"), "data"),
        Input(ids.PRIVATE_MODE, "n_clicks"),
        Input(ids.PRIVATE_VARIANT, "value"),
        State(ids.UPLOAD_KEY, "data"),
        running=[(Output(ids.UPLOAD_BUSY, "className"), "upload-busy active", "upload-busy")],
    )
    def update_upload(upload, check, selection, mode_clicks, variant, kept):
        sel = selection_in_view(selection, "upload")
        panel: tuple[Any, ...] = (no_update,) * 4
        if ctx.triggered_id in (None, ids.VIEW_SELECTION.format("upload"), ids.PRIVATE_MODE, ids.PRIVATE_VARIANT):
            panel = private_panel(store, sel, private_mode_on(mode_clicks), variant)
        if ctx.triggered_id in (ids.PRIVATE_MODE, ids.PRIVATE_VARIANT):
            return (no_update,) * 4 + panel  # the browser searches again with a private upload (private_upload.js)
        try:
            return upload_outputs(store, sel, upload, check, kept) + panel
        except PreventUpdate:
            if ctx.triggered_id in (ids.UPLOAD_SERVER, ids.UPLOAD_CHECK):
                raise
            return (no_update,) * 4 + panel

    # A new file within the limit: the old messages and results go at once, and a line says it is being read.
    app.clientside_callback(
        ClientsideFunction(namespace="playground", function_name="uploadPending"),
        Output(ids.UPLOAD_STATUS, "children", allow_duplicate=True),
        Output(ids.UPLOAD_RESULTS, "children", allow_duplicate=True),
        Input(ids.UPLOAD_CHECK, "data"),
        prevent_initial_call=True,
    )

    # dcc.Upload's contents go to this clientside callback only: in private mode they never leave the browser.
    app.clientside_callback(
        ClientsideFunction(namespace="privateUpload", function_name="onUpload"),
        Output(ids.UPLOAD_SERVER, "data", allow_duplicate=True),
        Output(ids.PRIVATE_QUERY, "data"),
        Output(ids.UPLOAD_STATUS, "children", allow_duplicate=True),
        Output(ids.UPLOAD_RESULTS, "children", allow_duplicate=True),
        Output(ids.UPLOAD_KEY, "data", allow_duplicate=True),
        Output(ids.UPLOAD, "contents"),
        Input(ids.UPLOAD, "contents"),
        Input(ids.PRIVATE_INFO, "data"),
        State(ids.UPLOAD, "filename"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        ClientsideFunction(namespace="privateUpload", function_name="modePressed"),
        Output(ids.PRIVATE_MODE, "aria-pressed"),
        Input(ids.PRIVATE_MODE, "n_clicks"),
    )

    @app.callback(
        Output(ids.PRIVATE_MODE, "children"),
        Output(ids.PRIVATE_MODE, "className"),
        Output(ids.PRIVATE_VARIANT_CONTROL, "style"),
        Input(ids.PRIVATE_MODE, "n_clicks"),
        prevent_initial_call=True,
    )
    def show_private_mode(clicks):
        return private_mode_state(private_mode_on(clicks))

    # A feature vector from the browser (a dataset too big to search there): the server ranks, the page renders.
    @app.callback(
        Output(ids.UPLOAD_RESULTS, "children", allow_duplicate=True),
        Input(ids.PRIVATE_QUERY, "data"),
        prevent_initial_call=True,
    )
    def rank_private_query(query):
        return render_private_results(store, query)
