"""The controller: URL, controls and picked images in, one resolved selection out (and back into the URL).

One request per click: an image picked anywhere reaches it straight from the browser (``ids.QUERY_CLICK``, a
clientside callback that drops the zero clicks of re-rendered buttons), and it writes the selection into the
shown view's own store (``ids.VIEW_SELECTION``), so that only that view's callback runs next. It writes the URL
that is also its input: Dash never re-fires a callback on its own outputs, and a URL it wrote equals the one
it would resolve (bench/requests_per_click.py counts one controller request per click).
"""

from __future__ import annotations

import time
from typing import Any

from dash import ALL, ClientsideFunction, Dash, Input, Output, State, ctx, html, no_update
from dash.exceptions import PreventUpdate

from playground import components, ids
from playground.state import VIEWS, Selection, default_query, parse_url, resolve_selection, stored_depth, to_url
from playground.store import MissingArtifact, Store

_CONTROL_KEYS = {
    ids.DATASET: "dataset",
    ids.MODEL: "model",
    ids.LAYER: "layer",
    ids.METRIC: "metric",
    ids.TOP_K: "k",
}


# What picks a query among Dash components: upload results (buttons), a point of the map, the viewer's "Search
# with this image". They reach the controller through one clientside callback. The buttons of the static panels
# (grid, results, duplicate pairs, neighbours, selection strip) write the same store from assets/static_html.js.
PICK_INPUTS = (
    Input({"type": ids.UPLOAD_PICK, "index": ALL}, "n_clicks"),
    Input(ids.UMAP_GRAPH, "clickData"),
    Input(ids.VIEWER_SEARCH, "n_clicks"),
)


def click_request(trigger: Any, triggered: list[dict], click_data: dict | None, viewer_image: int | None) -> dict:
    """What a click asks for: ``{"id": image id, "at": time}``, with ``"view": "search"`` when the click should
    also open Search (an upload result, the viewer's button). PreventUpdate for a re-render's zero clicks."""
    if trigger is None or not triggered or not triggered[0].get("value"):
        raise PreventUpdate
    view = None
    if trigger == ids.UMAP_GRAPH:
        try:
            image_id = int(click_data["points"][0]["customdata"])
        except (TypeError, KeyError, IndexError, ValueError):
            raise PreventUpdate from None
    elif trigger == ids.VIEWER_SEARCH:
        if viewer_image is None:
            raise PreventUpdate
        image_id, view = int(viewer_image), "search"
    else:
        image_id = int(trigger["index"])
        if trigger.get("type") == ids.UPLOAD_PICK:
            view = "search"
    return {"id": image_id, "at": time.time(), **({"view": view} if view else {})}


def request_from(
    trigger: str | None, pathname: str | None, search: str | None, controls: dict[str, Any], query_request: dict | None
) -> tuple[dict[str, Any], bool]:
    """What the trigger asks for, and whether it comes from the URL (first load, back/forward)."""
    if trigger in (None, ids.URL):
        return parse_url(pathname, search), True
    if trigger == ids.QUERY_CLICK:
        if not query_request:
            return {}, False
        request = {"query": query_request["id"]}
        if query_request.get("view"):  # e.g. an upload result opens as the query in Search
            request["view"] = query_request["view"]
        return request, False
    key = _CONTROL_KEYS.get(trigger)
    value = controls.get(key)
    if value is None and key == "k":  # the number box holds no number (emptied, or "2.5e" typed): say so
        return {"k": ""}, False
    return ({key: value} if value is not None else {}), False


def control_options(store: Store, sel: Selection) -> dict[str, list[dict[str, Any]]]:
    """Options of the dataset, model, layer and metric dropdowns for a selection."""
    if sel.dataset is None:
        return {"dataset": [], "model": [], "layer": [], "metric": []}
    datasets = [{"label": f"{name} ({store.n_images(name)} images)", "value": name} for name in store.datasets()]
    models = [
        {"label": name, "value": name, "title": store.model(sel.dataset, name).description}
        for name in store.models(sel.dataset)
    ]
    layers = []
    if sel.model:
        for name in store.layers(sel.dataset, sel.model):
            entry = store.layer(sel.dataset, sel.model, name)
            layers.append({"label": f"{name} ({entry.dim}-d)", "value": name})
    metrics = []
    computed = set(store.metrics(sel.dataset, sel.model, sel.layer)) if sel.model and sel.layer else set()
    for name in store.all_metrics(sel.dataset):
        metrics.append({"label": name if name in computed else f"{name} (not computed)", "value": name})
    return {"dataset": datasets, "model": models, "layer": layers, "metric": metrics}


def model_info(store: Store, sel: Selection) -> Any:
    if not sel.model:
        return None
    try:
        entry = store.model(sel.dataset, sel.model)
    except MissingArtifact:
        return None
    weights = entry.weights.description if entry.weights else ""
    depth = stored_depth(store, sel)
    note = ""
    if depth and sel.k > depth:
        note = f" Rankings stored to depth {depth}; deeper results are ranked on the fly."
    text = f"{entry.description or sel.model}. Weights: {weights}.{note}"
    # Clamped to two lines by the stylesheet; the whole text is its tooltip and is read by screen readers.
    return html.Span(text, title=text, className="model-info-text")


def update_selection(
    store: Store,
    trigger: str | None,
    pathname: str | None,
    search: str | None,
    controls: dict[str, Any],
    query_request: dict | None,
    previous: dict | None,
) -> Selection:
    """The selection after one trigger (the controller callback's logic).

    A dataset opened without a query (first visit, a link without one, a switch of dataset) starts on its
    :func:`~playground.state.default_query`, which also replaces a query the dataset does not hold.
    """
    request, from_url = request_from(trigger, pathname, search, controls, query_request)
    prev = None if trigger is None else Selection.from_dict(previous)
    if from_url and prev is not None:
        prev = Selection(view=prev.view)
    return resolve_selection(store, request, prev, first_query=default_query)


def tab_links(sel: Selection) -> list[tuple[str, str]]:
    """(href, className) of each view's link: the same selection in that view, the current one marked."""
    links = []
    for view in VIEWS:
        pathname, search = to_url(Selection(**{**sel.to_dict(), "view": view}))
        links.append((pathname + search, "tab tab-selected" if view == sel.view else "tab"))
    return links


def unchanged(new: Any, current: Any) -> Any:
    """``new``, or ``no_update`` when the component already holds it (nothing to send, nothing to re-render)."""
    return no_update if new == current else new


def view_selection(sel: Selection, view: str, shown: dict | None) -> Any:
    """What the controller writes into ``view``'s own store: the selection when that view is shown and its
    store holds another one, else ``no_update`` (so a tab switch back to a view re-renders nothing)."""
    if view != sel.view:
        return no_update
    new = sel.to_dict()
    same = shown is not None and {**shown, "notices": []} == {**new, "notices": []}
    return no_update if same else new


def register(app: Dash, store: Store) -> None:
    view_styles = [Output(ids.VIEW_DIV.format(view), "style") for view in VIEWS]
    view_selections = [Output(ids.VIEW_SELECTION.format(view), "data") for view in VIEWS]
    tab_outputs = [
        output
        for view in VIEWS
        for output in (Output(ids.VIEW_TAB.format(view), "href"), Output(ids.VIEW_TAB.format(view), "className"))
    ]

    @app.callback(
        Output(ids.URL, "pathname"),
        Output(ids.URL, "search"),
        Output(ids.DATASET, "options"),
        Output(ids.DATASET, "value"),
        Output(ids.MODEL, "options"),
        Output(ids.MODEL, "value"),
        Output(ids.LAYER, "options"),
        Output(ids.LAYER, "value"),
        Output(ids.METRIC, "options"),
        Output(ids.METRIC, "value"),
        Output(ids.TOP_K, "value"),
        Output(ids.SELECTION, "data"),
        *view_selections,
        Output(ids.NOTICE, "children"),
        Output(ids.SHARE_LINK, "href"),
        Output(ids.MODEL_INFO, "children"),
        *view_styles,
        *tab_outputs,
        Input(ids.URL, "pathname"),
        Input(ids.URL, "search"),
        Input(ids.DATASET, "value"),
        Input(ids.MODEL, "value"),
        Input(ids.LAYER, "value"),
        Input(ids.METRIC, "value"),
        Input(ids.TOP_K, "value"),
        Input(ids.QUERY_CLICK, "data"),
        State(ids.SELECTION, "data"),
        State(ids.VIEWER_IMAGE, "data"),
        *[State(ids.VIEW_SELECTION.format(view), "data") for view in VIEWS],
    )
    def sync(pathname, search, dataset, model, layer, metric, k, click, previous, viewer_image, *shown):
        controls = {"dataset": dataset, "model": model, "layer": layer, "metric": metric, "k": k}
        trigger = ctx.triggered_id if previous else None
        picked = None
        if trigger == ids.QUERY_CLICK:  # PreventUpdate for a click that picks nothing
            click = click or {}
            value = click.get("value")
            picked = click_request(click.get("trigger"), [{"value": value}], value, viewer_image)
        sel = update_selection(store, trigger, pathname, search, controls, picked, previous)
        # Only what changed is sent: the dropdowns' options follow dataset, model and layer.
        before = Selection.from_dict(previous) if previous and trigger is not None else None
        same_options = before is not None and (before.dataset, before.model, before.layer) == (
            sel.dataset, sel.model, sel.layer)
        if same_options:
            options = dict.fromkeys(("dataset", "model", "layer", "metric"), no_update)
        else:
            options = control_options(store, sel)
        new_path, new_search = to_url(sel)
        notice = [components.message(text, "warning") for text in sel.notices] or None
        same_view = before is not None and before.view == sel.view
        return (
            unchanged(new_path, pathname),
            unchanged(new_search, search or ""),
            options["dataset"],
            unchanged(sel.dataset, dataset),
            options["model"],
            unchanged(sel.model, model),
            options["layer"],
            unchanged(sel.layer, layer),
            options["metric"],
            unchanged(sel.metric, metric),
            unchanged(sel.k, k),
            sel.to_dict(),
            *[view_selection(sel, view, held) for view, held in zip(VIEWS, shown, strict=True)],
            notice,
            new_path + new_search,
            model_info(store, sel),
            *[no_update if same_view else {"display": "block" if v == sel.view else "none"} for v in VIEWS],
            *[value for link in tab_links(sel) for value in link],
        )

    # A picked image: the zero clicks of freshly rendered buttons stay in the browser.
    app.clientside_callback(
        ClientsideFunction(namespace="playground", function_name="clicked"),
        Output(ids.QUERY_CLICK, "data"),
        *PICK_INPUTS,
        prevent_initial_call=True,
    )
