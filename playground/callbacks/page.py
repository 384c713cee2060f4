"""Page-wide pieces: the full-size image viewer (a dialog over any view) and the first-visit hint."""

from __future__ import annotations

from typing import Any

from dash import ALL, ClientsideFunction, Dash, Input, Output, State, html
from dash.exceptions import PreventUpdate

from playground import components, ids
from playground.images import MAX_SIDE
from playground.state import Selection
from playground.store import Store

HIDDEN, SHOWN = {"display": "none"}, {"display": "flex"}


def viewer_request(trigger: Any, triggered: list[dict]) -> int | None:
    """The image the viewer should show after a click: a ⤢ button's image, or None (close, or "search with")."""
    if trigger in (ids.VIEWER_CLOSE, ids.VIEWER_SEARCH):
        return None
    if not isinstance(trigger, dict) or not triggered or not triggered[0].get("value"):
        raise PreventUpdate  # a re-render's fresh buttons (zero clicks)
    return int(trigger["index"])


def render_viewer(store: Store, sel: Selection, image_id: int | None) -> tuple[dict[str, str], Any]:
    """(style, children) of the viewer: hidden without an image, else the image at up to MAX_SIDE px with its
    label, id and file, and a link that opens it in a new tab."""
    if image_id is None or sel.dataset is None or not 0 <= int(image_id) < store.n_images(sel.dataset):
        return HIDDEN, None
    labels = store.labels(sel.dataset)
    label = None if labels is None else str(labels[image_id])
    row = store.manifest(sel.dataset).iloc[int(image_id)]
    path, width, height = row["path"], int(row["width"]), int(row["height"])
    size = f"{width}×{height} px" + (f", shown at most {MAX_SIDE} px" if max(width, height) > MAX_SIDE else "")
    url = components.image_url(sel.dataset, image_id)
    alt = f"image {image_id}" + (f" ({label})" if label else "")
    children = [
        html.Img(src=url, alt=alt, className="viewer-image"),
        html.Div(
            [
                html.Strong(components.label_text(label) or "unlabeled"),
                html.Span(f" image {image_id}: {path}", className="muted"),
                " · ",
                html.A("open in a new tab", href=url, target="_blank", rel="noopener", className="link"),
                html.Span(f" ({size})", className="muted"),
            ],
            className="viewer-caption",
        ),
    ]
    return SHOWN, children


def register(app: Dash, store: Store) -> None:
    # A ⤢, close or search click: the zero clicks of freshly rendered ⤢ buttons stay in the browser.
    app.clientside_callback(
        ClientsideFunction(namespace="playground", function_name="clicked"),
        Output(ids.VIEWER_CLICK, "data"),
        Input({"type": ids.VIEW_IMAGE, "where": ALL, "index": ALL}, "n_clicks"),
        Input(ids.VIEWER_CLOSE, "n_clicks"),
        Input(ids.VIEWER_SEARCH, "n_clicks"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output(ids.VIEWER_IMAGE, "data"),
        Output(ids.VIEWER, "style"),
        Output(ids.VIEWER_BODY, "children"),
        Input(ids.VIEWER_CLICK, "data"),
        State(ids.SELECTION, "data"),
        prevent_initial_call=True,
    )
    def show_viewer(click, selection):
        click = click or {}
        image_id = viewer_request(click.get("trigger"), [{"value": click.get("value")}])
        return (image_id, *render_viewer(store, Selection.from_dict(selection), image_id))

    # The first-visit hint: shown until "Got it" (remembered in the browser's local storage).
    app.clientside_callback(
        ClientsideFunction(namespace="playground", function_name="hintStyle"),
        Output(ids.HINT, "style"),
        Input(ids.HINT_SEEN, "data"),
    )
    app.clientside_callback(
        ClientsideFunction(namespace="playground", function_name="hintSeen"),
        Output(ids.HINT_SEEN, "data"),
        Input(ids.HINT_CLOSE, "n_clicks"),
        prevent_initial_call=True,
    )
