"""Embeddings: the UMAP layout of the selected model and layer, coloured by class, with the query and its results;
thumbnail tooltips, the query's neighbours beside the map and the images of a lasso or box selection (with their
class mix) above it."""

from __future__ import annotations

from collections import Counter
from typing import Any

from dash import ClientsideFunction, Dash, Input, Output, State, ctx, dcc, html, no_update

from playground import components, figures, ids, map_figure
from playground.callbacks.guards import selection_in_view, selection_or_stop
from playground.ranking import query_results
from playground.state import Selection
from playground.static_html import StaticHtml, static, to_tree
from playground.store import MissingArtifact, Store

TITLE = "Embeddings"

# Component ids of this view alone (playground/ids.py holds those that other modules and the page's scripts use).
UMAP_TOOLTIP = "umap-tooltip"
UMAP_INFO = "umap-info"
UMAP_THUMBS = "umap-thumbnails"  # dcc.Checklist: draw thumbnails instead of dots
UMAP_NEIGHBOURS = "umap-neighbours"
UMAP_SELECTION = "umap-selection"
UMAP_STATE = "umap-state"  # dcc.Store {"key": dataset/model/layer, "ids": selected image ids, "cleared": n}

# Thumbnails shown in the selection strip; the class mix above it counts every selected image.
MAX_STRIP = 120


def layout() -> html.Div:
    return html.Div(
        [
            html.Div(
                [
                    html.P(
                        "Each point is an image, placed by UMAP from the selected layer's features. Click a point to "
                        "make it the query (the star; its top results are circled). Drag to lasso a group, or pick "
                        "box select, zoom or pan in the toolbar; double-click to clear or zoom out. UMAP keeps "
                        "neighbourhoods but distorts distances: the query's nearest results (circled) can land far "
                        "from it on the map, and gaps between groups mean little.",
                        className="hint",
                    ),
                    # A toggle button (aria-pressed): Dash 4's dcc.Checklist nests its input in an option role.
                    html.Button(
                        "Thumbnails instead of dots",
                        id=UMAP_THUMBS,
                        n_clicks=0,
                        className="toggle",
                        title="Draw each image's thumbnail on the map (datasets up to "
                        f"{map_figure.MAX_THUMBNAIL_POINTS} images)",
                        **{"aria-pressed": "false"},
                    ),
                ],
                className="umap-toolbar",
            ),
            html.Div(id=UMAP_INFO),
            dcc.Store(id=UMAP_STATE, data={"key": None, "ids": None, "cleared": 0}),
            html.Div(
                [
                    html.Div(
                        [
                            static(
                                UMAP_SELECTION,
                                html.P("Lasso or box-select points on the map to see their images and class mix "
                                       "here.", className="hint"),
                                className="selection-strip",
                                **{"aria-live": "polite"},
                            ),
                            components.graph(
                                ids.UMAP_GRAPH,
                                config={"scrollZoom": True},
                                clear_on_unhover=True,
                                responsive=True,
                                className="umap-graph fit-viewport",
                            ),
                        ],
                        className="umap-main",
                    ),
                    html.Aside(
                        StaticHtml(id=UMAP_NEIGHBOURS),
                        className="umap-side fit-viewport",
                        **{"aria-label": "Neighbours of the query"},
                    ),
                ],
                className="umap-layout",
            ),
            dcc.Tooltip(id=UMAP_TOOLTIP),
        ]
    )


def thumbnails_on(n_clicks: int | None) -> bool:
    """Whether the thumbnails toggle is on: every other press turns it on."""
    return bool(n_clicks) and n_clicks % 2 == 1


def umap_key(sel: Selection) -> str:
    """What a map shows (dataset / model / layer): zoom and selection are kept while it stays the same."""
    return f"{sel.dataset}/{sel.model}/{sel.layer}"


def render_embeddings(
    store: Store, sel: Selection, thumbnails: bool = False, revision: str | None = None,
    selection_revision: str | None = None, selected: list[int] | None = None,
) -> tuple[Any, Any]:
    """(figure, info) for the selection: a UMAP scatter or an empty figure saying what is missing.

    ``thumbnails`` draws each image's thumbnail under its dot (datasets of at most
    ``map_figure.MAX_THUMBNAIL_POINTS`` images; a note says so beyond); ``revision`` and ``selection_revision``
    keep zoom and selection while they stay the same, and ``selected`` image ids are drawn selected (see
    ``map_figure.umap_figure``).
    """
    if sel.dataset is None or sel.model is None:
        return figures.empty_figure("No model computed for this dataset."), None
    try:
        coords = store.umap(sel.dataset, sel.model, sel.layer)
    except MissingArtifact as exc:
        return figures.empty_figure("UMAP layout not computed"), components.message(str(exc), "warning")
    info = None
    try:
        results = [
            r.image_id for r in query_results(store, sel.dataset, sel.model, sel.layer, sel.metric, sel.query, sel.k)
        ]
    except MissingArtifact as exc:
        results, info = [], components.message(f"Results not highlighted: {exc}", "warning")
    urls = None
    if thumbnails:
        if len(coords) <= map_figure.MAX_THUMBNAIL_POINTS:
            urls = [components.thumb_url(sel.dataset, i) for i in range(len(coords))]
        else:
            info = components.message(
                f"Thumbnails are drawn for up to {map_figure.MAX_THUMBNAIL_POINTS} images; this dataset has "
                f"{len(coords):,}, so the map shows dots.",
                "info",
            )
    title = f"{sel.model} / {sel.layer}"
    figure = map_figure.umap_figure(
        coords, store.labels(sel.dataset), sel.query, results, title, urls, revision, selection_revision, selected
    )
    return figure, info


def render_neighbours(store: Store, sel: Selection) -> Any:
    """The query and its top ``k`` results as a compact list beside the map (clicks make an image the query)."""
    if sel.dataset is None or sel.model is None:
        return None
    labels = store.labels(sel.dataset)
    label = None if labels is None else str(labels[sel.query])
    head = html.Div(
        [
            html.Div(
                [components.thumbnail(sel.dataset, sel.query, label, "medium"),
                 components.zoom_button(sel.query, "neighbours-query", label)],
                className="query-thumb",
            ),
            html.Div(
                [html.Strong(components.label_text(label) or "unlabeled"),
                 html.Div(f"query: image {sel.query}", className="muted")],
                className="query-caption",
            ),
        ],
        className="query-card compact",
    )
    try:
        results = query_results(store, sel.dataset, sel.model, sel.layer, sel.metric, sel.query, sel.k)
    except MissingArtifact as exc:
        return [html.H3("Neighbours of the query"), head, components.message(f"Not computed: {exc}", "warning")]
    summary = []
    if sel.labeled:
        same = sum(bool(r.same_class) for r in results)
        summary = [html.P(f"{same} of {len(results)} share its class.", className="hint")]
    return [
        html.H3(f"Its {len(results)} nearest ({sel.metric})"),
        head,
        *summary,
        components.neighbour_list(sel.dataset, results, sel.metric),
    ]


def selected_ids(selected_data: dict | None) -> list[int]:
    """Image ids of a lasso or box selection, in the order plotly lists them, each once (the query and result
    markers repeat images of the class traces)."""
    seen: dict[int, None] = {}
    for point in (selected_data or {}).get("points") or []:
        try:
            seen[int(point["customdata"])] = None
        except (KeyError, TypeError, ValueError):
            continue
    return list(seen)


def by_the_user(selected_data: dict | None) -> bool:
    """Whether a ``selectedData`` comes from a lasso or a box drawn by the user (it then holds ``lassoPoints``
    or ``range``); plotly also reports an empty selection of its own when a new figure replaces the old."""
    return bool(selected_data) and ("lassoPoints" in selected_data or "range" in selected_data)


def next_selection(state: dict[str, Any], key: str, trigger: Any, selected_data: dict | None) -> dict[str, Any]:
    """The selection the map holds after an event: ``{"key", "ids", "cleared"}``.

    ``ids`` is None without a selection, [] after a lasso or box over empty space (which plotly would show
    with every point faded: the map is then redrawn with nothing selected, ``cleared`` counting those), else
    the selected image ids. A double-click (plotly's deselect) clears it, and so does another map (dataset,
    model or layer); a new query or number of results keeps it. Plotly's own empty report after a redraw
    changes nothing.
    """
    state = {"key": None, "ids": None, "cleared": 0, **(state or {})}
    if trigger != ids.UMAP_GRAPH:
        return state if state["key"] == key else {**state, "key": key, "ids": None}
    if selected_data is None:
        return {**state, "ids": None}
    if not by_the_user(selected_data):
        return state
    chosen = selected_ids(selected_data)
    return {**state, "ids": chosen, "cleared": state["cleared"] + (0 if chosen else 1)}


def class_mix(labels: list[str]) -> list[tuple[str, int]]:
    """(label, count) of a selection, most frequent first, ties in first-seen order."""
    counts = Counter(labels)
    first = {label: i for i, label in reversed(list(enumerate(labels)))}
    return sorted(counts.items(), key=lambda item: (-item[1], first[item[0]]))


def render_selection(store: Store, sel: Selection, image_ids: list[int] | None) -> Any:
    """The strip above the map: how many images are selected, their class mix (a bar in the map's class
    colours and in words) and their thumbnails (clicks make an image the query). ``image_ids`` None: no
    selection; []: a selection that caught no point."""
    if sel.dataset is None or image_ids is None:
        return html.P("Lasso or box-select points on the map to see their images and class mix here.",
                      className="hint")
    image_ids = [i for i in image_ids if 0 <= i < store.n_images(sel.dataset)]
    if not image_ids:
        return html.P("No image inside that selection. Lasso or box-select some points.", className="hint")
    labels = store.labels(sel.dataset)
    parts: list[Any] = []
    if labels is not None:
        order = {label: i for i, label in enumerate(dict.fromkeys(labels.tolist()))}  # the map's trace order
        mix = class_mix([str(labels[i]) for i in image_ids])
        n = len(image_ids)
        segments = [
            html.Div(
                className="mix-segment",
                style={"width": f"{100 * count / n:.2f}%", "background": map_figure.class_style(order[label])[0]},
                title=f"{label}: {count} of {n}",
            )
            for label, count in mix
        ]
        words = ", ".join(f"{count} {label} ({count / n:.0%})" for label, count in mix)
        parts += [
            html.Div([html.Strong(f"{n} selected: "), words], className="mix-text"),
            html.Div(segments, className="mix-bar", role="img", **{"aria-label": f"class mix: {words}"}),
        ]
    else:
        parts.append(html.Div(html.Strong(f"{len(image_ids)} selected"), className="mix-text"))
    strip = [
        html.Button(
            components.thumbnail(sel.dataset, i, None if labels is None else str(labels[i]), "small"),
            id={"type": ids.IMAGE_PICK, "where": "selection", "index": i},
            className="result-pick",
            title=f"Make image {i} the query",
            n_clicks=0,
        )
        for i in image_ids[:MAX_STRIP]
    ]
    if len(image_ids) > MAX_STRIP:
        strip.append(html.Span(f"+{len(image_ids) - MAX_STRIP} more", className="muted more"))
    parts.append(html.Div(strip, className="strip"))
    return parts


def tooltip(store: Store, sel: Selection, hover_data: dict | None) -> tuple[bool, Any, Any]:
    """(show, bbox, children) of the thumbnail tooltip for a hovered point."""
    try:
        point = hover_data["points"][0]
        image_id = int(point["customdata"])
        bbox = point["bbox"]
    except (TypeError, KeyError, IndexError, ValueError):
        return False, no_update, no_update
    labels = store.labels(sel.dataset) if sel.dataset else None
    label = None if labels is None or image_id >= len(labels) else str(labels[image_id])
    children = html.Div(
        [
            components.thumbnail(sel.dataset, image_id, label),
            html.Div(f"{label or 'image'} · {image_id}", className="tooltip-label"),
        ],
        className="tooltip-card",
    )
    return True, bbox, children


def register(app: Dash, store: Store) -> None:
    # One callback for the view: a new selection redraws the map, the neighbours and the selection strip in one
    # round trip; a lasso, a box or the thumbnails toggle leaves the neighbours as they are. Neighbours and strip
    # are static HTML (``to_tree``): one component each in the browser.
    @app.callback(
        Output(ids.UMAP_GRAPH, "figure"),
        Output(UMAP_INFO, "children"),
        Output(UMAP_STATE, "data"),
        Output(UMAP_NEIGHBOURS, "tree"),
        Output(UMAP_SELECTION, "tree"),
        Input(ids.VIEW_SELECTION.format("embeddings"), "data"),
        Input(UMAP_THUMBS, "n_clicks"),
        Input(ids.UMAP_GRAPH, "selectedData"),
        State(UMAP_STATE, "data"),
    )
    def update_embeddings(selection, thumbs, selected_data, state):
        sel = selection_in_view(selection, "embeddings")
        key = umap_key(sel)
        new = next_selection(state, key, ctx.triggered_id, selected_data)
        strip = to_tree(render_selection(store, sel, new["ids"])) if new != state else no_update
        if ctx.triggered_id == ids.UMAP_GRAPH and new["cleared"] == (state or {}).get("cleared", 0):
            return no_update, no_update, new, no_update, strip  # plotly shows the selection (or its end) already
        figure, info = render_embeddings(
            store, sel, thumbnails_on(thumbs), key, f"{key}#{new['cleared']}", new["ids"] or None
        )
        neighbours = to_tree(render_neighbours(store, sel)) if ctx.triggered_id != UMAP_THUMBS else no_update
        return figure, info, new, neighbours, strip

    app.clientside_callback(
        ClientsideFunction(namespace="playground", function_name="togglePressed"),
        Output(UMAP_THUMBS, "aria-pressed"),
        Input(UMAP_THUMBS, "n_clicks"),
    )

    @app.callback(
        Output(UMAP_TOOLTIP, "show"),
        Output(UMAP_TOOLTIP, "bbox"),
        Output(UMAP_TOOLTIP, "children"),
        Input(ids.UMAP_GRAPH, "hoverData"),
        State(ids.SELECTION, "data"),
    )
    def update_tooltip(hover_data, selection):
        return tooltip(store, selection_or_stop(selection), hover_data)
