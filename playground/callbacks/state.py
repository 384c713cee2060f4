"""The controller: URL and controls in, one resolved selection out (and back into the URL)."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, State, ctx, html, no_update

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


def request_from(
    trigger: str | None, pathname: str | None, search: str | None, controls: dict[str, Any], query_request: dict | None
) -> tuple[dict[str, Any], bool]:
    """What the trigger asks for, and whether it comes from the URL (first load, back/forward)."""
    if trigger in (None, ids.URL):
        return parse_url(pathname, search), True
    if trigger == ids.QUERY_REQUEST:
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


def register(app: Dash, store: Store) -> None:
    view_styles = [Output(ids.VIEW_DIV.format(view), "style") for view in VIEWS]
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
        Input(ids.QUERY_REQUEST, "data"),
        State(ids.SELECTION, "data"),
    )
    def sync(pathname, search, dataset, model, layer, metric, k, query_request, previous):
        controls = {"dataset": dataset, "model": model, "layer": layer, "metric": metric, "k": k}
        trigger = ctx.triggered_id if previous else None
        sel = update_selection(store, trigger, pathname, search, controls, query_request, previous)
        options = control_options(store, sel)
        new_path, new_search = to_url(sel)
        notice = [components.message(text, "warning") for text in sel.notices] or None
        return (
            new_path if new_path != pathname else no_update,
            new_search if new_search != (search or "") else no_update,
            options["dataset"],
            sel.dataset,
            options["model"],
            sel.model,
            options["layer"],
            sel.layer,
            options["metric"],
            sel.metric,
            sel.k,
            sel.to_dict(),
            notice,
            new_path + new_search,
            model_info(store, sel),
            *[{"display": "block" if v == sel.view else "none"} for v in VIEWS],
            *[value for link in tab_links(sel) for value in link],
        )
