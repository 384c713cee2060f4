"""Search: pick a query among the dataset's images (a paged grid) and see the query panel with its scores, the
ranked results with duplicate badges, and the dataset's duplicate pairs.

The grid, the query panel, the results and the duplicates are each one component (``StaticHtml``): a click
redraws a few components instead of a few hundred (``playground/static_html.py``).
"""

from __future__ import annotations

import contextlib
from typing import Any

from dash import ClientsideFunction, Dash, Input, Output, State, ctx, dcc, html, no_update

from playground import components, duplicate_tables, feedback, ids
from playground.adapted import SEEN_LABELS_NOTE, is_head_model
from playground.callbacks.guards import selection_in_view, selection_with_dataset
from playground.ranking import distance_reference, query_results, query_scores
from playground.state import Selection
from playground.static_html import StaticHtml, static, to_tree
from playground.store import BrokenArtifact, MissingArtifact, Store
from precompute import artifacts as art
from precompute.schema import DatasetDuplicates, LayerDuplicates

TITLE = "Search"

# Component ids of this view alone (playground/ids.py holds those that other modules and the page's scripts use).
GRID_PREV = "grid-prev"
GRID_NEXT = "grid-next"
GRID_PAGE_LABEL = "grid-page-label"
GRID_CLASS = "grid-class-filter"
DUPLICATES = "duplicates-panel"  # html.Details: the dataset's duplicate pairs

PAGE_SIZE = 48
# Pairs listed in the duplicates panel; the counts above the list cover them all.
MAX_PAIRS_SHOWN = 60


def layout() -> html.Div:
    return html.Div(
        [
            html.Div(
                [
                    html.H3("Pick a query"),
                    html.Div(
                        [
                            html.Label("Filter the grid by class", htmlFor=GRID_CLASS, className="visually-hidden"),
                            dcc.Dropdown(
                                id=GRID_CLASS, placeholder="all classes", clearable=True, className="grid-filter"
                            ),
                            html.Button(
                                "◀", id=GRID_PREV, n_clicks=0, className="page-button", title="previous page",
                                **{"aria-label": "previous page"},
                            ),
                            html.Span(id=GRID_PAGE_LABEL, className="page-label", **{"aria-live": "polite"}),
                            html.Button(
                                "▶", id=GRID_NEXT, n_clicks=0, className="page-button", title="next page",
                                **{"aria-label": "next page"},
                            ),
                        ],
                        className="grid-controls",
                    ),
                    StaticHtml(id=ids.GRID, className="image-grid fit-viewport-max"),
                ],
                className="side-panel",
            ),
            html.Div(
                [
                    html.H3("Query"),
                    dcc.Loading(StaticHtml(id=ids.QUERY_PANEL, className="query-panel"), type="dot"),
                    html.H3("Top results"),
                    dcc.Loading(StaticHtml(id=ids.RESULTS), type="dot"),
                    static(DUPLICATES, html.Summary("Duplicates"), tag="details", className="duplicates-panel"),
                ],
                className="main-panel",
            ),
        ],
        className="two-columns search-layout",
    )


def render_query_panel(store: Store, sel: Selection) -> Any:
    """The query thumbnail (with a full-size button), its label and its scores against the layer mean and the
    random baseline."""
    if sel.dataset is None:
        return components.message("No dataset to search yet.", "warning")
    labels = store.labels(sel.dataset)
    label = None if labels is None else str(labels[sel.query])
    path = store.manifest(sel.dataset)["path"].iloc[sel.query]
    parts: list[Any] = [
        html.Div(
            [
                html.Div(
                    [components.thumbnail(sel.dataset, sel.query, label, "large"),
                     components.zoom_button(sel.query, "query", label)],
                    className="query-thumb",
                ),
                html.Div(
                    [html.Strong(components.label_text(label) or "unlabeled"),
                     html.Div(f"image {sel.query}: {path}", className="muted path"),
                     components.label_issue_badge(
                         duplicate_tables.label_issues_by_id(store, sel.dataset).get(sel.query))],
                    className="query-caption",
                ),
            ],
            className="query-card",
        )
    ]
    if sel.model and is_head_model(store, sel.dataset, sel.model):
        parts.append(components.message(SEEN_LABELS_NOTE, "info"))
    if not sel.labeled:
        parts.append(components.message("This dataset has no labels, so there are no scores to show.", "info"))
        return parts
    try:
        table = query_scores(store, sel.dataset, sel.model, sel.layer, sel.metric, sel.query, k=sel.k)
    except MissingArtifact as exc:
        parts.append(components.message(str(exc), "warning"))
        return parts
    if table is not None:
        parts.append(
            html.Div(
                [
                    html.H4("Scores of this query"),
                    components.scores_table(table),
                    html.P(
                        "query: this image's ranking; class mean / mean: over the queries of its class / all "
                        "queries; random: a random ranking's expected score. Hover a score for its definition.",
                        className="hint",
                    ),
                ],
                className="query-scores",
            )
        )
    return parts


def render_results(store: Store, sel: Selection) -> Any:
    """The top-k results as clickable cards, or a message saying what is missing."""
    if sel.dataset is None or sel.model is None:
        return components.message("Nothing to show: no model was computed for this dataset.", "warning")
    try:
        results = query_results(store, sel.dataset, sel.model, sel.layer, sel.metric, sel.query, sel.k)
    except MissingArtifact as exc:  # BrokenArtifact included: its message says what is wrong with the file
        return components.message(str(exc) if isinstance(exc, BrokenArtifact) else f"Not computed: {exc}", "warning")
    summary = []
    thumbs_problem = store.thumbs_problem(sel.dataset)
    if thumbs_problem:
        summary.append(components.message(thumbs_problem, "error"))
    if sel.labeled:
        same = sum(bool(r.same_class) for r in results)
        summary.append(html.P(f"{same} of {len(results)} results share the query's class (precision@{len(results)} "
                              f"{same / max(len(results), 1):.2f}, beside the mean in the query's scores).",
                              className="hint"))
    duplicates = _query_duplicates(store, sel)
    n_badged = sum(r.image_id in duplicates for r in results)
    if n_badged:
        summary.append(
            html.P(
                f"{n_badged} of them {'forms' if n_badged == 1 else 'form'} a duplicate pair with the query "
                "(badged): free hits, or guaranteed misses across classes. See Duplicates below.",
                className="hint",
            )
        )
    reference = distance_reference(store, sel.dataset, sel.model, sel.layer, sel.metric)
    grid = components.results_grid(sel.dataset, results, clickable=True, duplicates=duplicates, metric=sel.metric,
                                   issues=duplicate_tables.label_issues_by_id(store, sel.dataset), reference=reference)
    weak = components.match_strength_note(results, reference)
    marks = feedback.context(store, sel.dataset, sel.model, sel.layer, sel.metric, sel.query, sel.k, "search")
    return summary + ([weak] if weak else []) + [grid, components.scale_note(sel.metric), marks]


def _query_duplicates(store: Store, sel: Selection) -> dict[int, list[dict[str, Any]]]:
    """The query's duplicate partners, for badges; none when duplicates were not computed or their file is gone
    (the duplicates panel says which)."""
    try:
        pairs = duplicate_tables.duplicate_pairs(store, sel.dataset, sel.model, sel.layer, involving=sel.query)
    except (MissingArtifact, art.ArtifactError):
        return {}
    return duplicate_tables.duplicates_of(pairs, sel.query)


def render_duplicates(store: Store, sel: Selection) -> list[Any]:
    """Children of the duplicates panel (an html.Details): a summary line with the counts, the labels confident
    learning finds probably wrong (first, with the suggested label), why duplicates matter, the thresholds, and
    the pairs with thumbnails, pairs whose labels differ first."""
    if sel.dataset is None:
        return [html.Summary("Duplicates")]
    issues_part = _label_issues_part(store, sel)
    parts = _duplicates_part(store, sel)
    if issues_part is None:
        return parts
    summary, *body = parts
    return [html.Summary(f"{summary.children}; {issues_part[0]}"), *issues_part[1:], *body]


def _label_issues_part(store: Store, sel: Selection) -> list[Any] | None:
    """(summary text, children...) of the label checks, None when they were not run (unlabeled, older runs)."""
    entry = store.dataset(sel.dataset).label_issues
    if entry is None:
        return None
    try:
        issues = store.label_issues(sel.dataset)
    except MissingArtifact as exc:
        return ["label checks unreadable", components.message(str(exc), "warning")]
    n = len(issues)
    text = f"{n} label{'s' if n != 1 else ''} probably wrong"
    evidence = ", ".join(entry.evidence) or "?"
    children: list[Any] = [
        html.H4(f"Labels probably wrong: {n}"),
        html.P(
            f"Confident learning (cleanlab): a linear classifier (shrinkage LDA) on the features of {evidence}, "
            "cross-validated so that no image's own label is used to judge it, gives each image's classes a "
            "probability; an image is "
            "flagged when its given label gets little of it. Pairs of look-alikes with different labels (below) "
            "are weaker evidence and are not flagged.",
            className="hint",
        ),
    ]
    if n:
        rows = [components.label_issue_row(sel.dataset, i, issue, sel.query)
                for i, issue in enumerate(issues.head(MAX_PAIRS_SHOWN).to_dict("records"))]
        children.append(html.Div(rows, className="duplicate-list label-issues"))
    else:
        children.append(html.P("No label looks wrong.", className="muted"))
    children.append(html.H4("Duplicate pairs"))
    return [text, *children]


def _duplicates_part(store: Store, sel: Selection) -> list[Any]:
    dataset_entry = store.dataset(sel.dataset).duplicates
    layer_entry = None
    if sel.model and sel.layer:
        with contextlib.suppress(MissingArtifact):  # a layer not computed: no feature pairs to describe
            layer_entry = store.layer(sel.dataset, sel.model, sel.layer).duplicates
    if dataset_entry is None and layer_entry is None:
        return [
            html.Summary("Duplicates: not looked for in these artifacts"),
            components.message("Run precompute again to find exact, near- and feature duplicates.", "info"),
        ]
    try:
        pairs = duplicate_tables.duplicate_pairs(store, sel.dataset, sel.model, sel.layer)
    except (MissingArtifact, art.ArtifactError) as exc:
        return [html.Summary("Duplicates: unreadable"), components.message(str(exc), "warning")]
    groups = duplicate_tables.group_pairs(pairs)
    n_cross = sum(group[0]["cross_class"] for group in groups)
    counts = ", ".join(f"{(pairs['kind'] == kind).sum()} {kind}" for kind in duplicate_tables.DUPLICATE_KINDS)
    summary = f"Duplicates: {len(groups)} pair{'s' if len(groups) != 1 else ''} ({counts})"
    if not groups:
        summary = "Duplicates: none found"
    elif sel.labeled:
        summary += f"; {n_cross} with labels that differ"
    body: list[Any] = [
        html.P(
            "Why they matter: a duplicate is its twin's free top-1 hit when both share a class, and a guaranteed "
            "miss when they do not, so duplicates inflate (or deflate) the scores; the scores are still computed "
            "over the dataset as given.",
            className="hint",
        ),
        html.Ul(_thresholds(dataset_entry, layer_entry, sel), className="hint"),
    ]
    if not groups:
        body.append(html.P("No duplicate pair found.", className="muted"))
    else:
        rows = [
            components.duplicate_pair(sel.dataset, number, group, sel.query)
            for number, group in enumerate(groups[:MAX_PAIRS_SHOWN])
        ]
        body.append(html.Div(rows, className="duplicate-list"))
        if len(groups) > MAX_PAIRS_SHOWN:
            body.append(html.P(f"… and {len(groups) - MAX_PAIRS_SHOWN} more pairs, not shown.", className="muted"))
    return [html.Summary(summary), *body]


def _thresholds(dataset_entry: DatasetDuplicates | None, layer_entry: LayerDuplicates | None,
                sel: Selection) -> list[html.Li]:
    """How each kind of pair was found, with the thresholds the artifacts record."""
    nan = float("nan")
    items = []
    if dataset_entry is not None:
        distance = dataset_entry.phash_max_distance
        items.append(
            html.Li(
                "exact: the same pixels; near-duplicate: perceptual hashes at most "
                f"{'?' if distance is None else distance} of 64 bits apart (whole dataset)."
            )
        )
    else:
        items.append(html.Li("exact and near-duplicates (image hashes) were not looked for in these artifacts."))
    if layer_entry is not None:
        ratio, typical, threshold = (nan if value is None else value for value in
                                     (layer_entry.ratio, layer_entry.typical_distance, layer_entry.threshold))
        items.append(
            html.Li(
                f"feature near-duplicate: {layer_entry.metric or '?'} distance in {sel.model} / {sel.layer} "
                f"below {ratio:g} × the layer's median nearest-neighbour "
                f"distance ({typical:.3g}), i.e. under {threshold:.3g}."
            )
        )
    else:
        items.append(html.Li(f"feature near-duplicates were not looked for in {sel.model} / {sel.layer}."))
    return items


def grid_page(
    store: Store, sel: Selection, class_filter: str | None, page_state: dict | None
) -> tuple[list[int], int, int]:
    """Image ids on the current grid page, the page number and the number of pages."""
    labels = store.labels(sel.dataset)
    ids_all = list(range(store.n_images(sel.dataset)))
    if class_filter and labels is not None:
        ids_all = [i for i in ids_all if labels[i] == class_filter]
    n_pages = max(1, -(-len(ids_all) // PAGE_SIZE))
    state = page_state or {}
    if state.get("dataset") == sel.dataset and state.get("class") == class_filter:
        page = int(state.get("page", 0))
    else:  # a new dataset or class: open the page that holds the query
        page = ids_all.index(sel.query) // PAGE_SIZE if sel.query in ids_all else 0
    page = min(max(page, 0), n_pages - 1)
    return ids_all[page * PAGE_SIZE : (page + 1) * PAGE_SIZE], page, n_pages


def render_grid(store: Store, sel: Selection, class_filter: str | None, page_state: dict | None) -> tuple[Any, str]:
    if sel.dataset is None:
        return [], ""
    page_ids, page, n_pages = grid_page(store, sel, class_filter, page_state)
    labels = store.labels(sel.dataset)
    items = [
        components.pick_button(sel.dataset, i, None if labels is None else str(labels[i]), i == sel.query)
        for i in page_ids
    ]
    return items, f"page {page + 1} / {n_pages}"


def class_filter(store: Store, sel: Selection, current: str | None) -> tuple[list[dict[str, str]], str | None]:
    """Options of the grid's class filter, and its value: ``current`` while the dataset holds that class."""
    classes = store.dataset(sel.dataset).classes if sel.labeled else []
    return [{"label": c, "value": c} for c in classes], current if current in classes else None


SEARCH_OUTPUTS = (
    (ids.QUERY_PANEL, "tree"),
    (ids.RESULTS, "tree"),
    (DUPLICATES, "tree"),
    (GRID_CLASS, "options"),
    (GRID_CLASS, "value"),
    (ids.GRID, "tree"),
    (GRID_PAGE_LABEL, "children"),
    (ids.GRID_SHOWN, "data"),
)


def search_outputs(
    store: Store,
    selection: dict | None,
    current_class: str | None,
    page_state: dict | None,
    shown: dict | None,
    trigger: Any = None,
) -> tuple[Any, ...]:
    """The Search view's callback: the values of ``SEARCH_OUTPUTS`` for a selection (``no_update`` where the
    browser holds them already)."""
    sel = selection_in_view(selection, "search")
    if sel.dataset is None:  # no dataset (none computed, or an unreadable index): the panels say so
        panels = render_query_panel(store, sel), render_results(store, sel), render_duplicates(store, sel)
        return (*map(to_tree, panels), [], None, [], "", None)
    by_grid = trigger in (GRID_CLASS, ids.GRID_PAGE)
    options, chosen = (no_update, current_class) if by_grid else class_filter(store, sel, current_class)
    page_ids, page, _ = grid_page(store, sel, chosen, page_state)
    grid_key = {"dataset": sel.dataset, "class": chosen, "page": page, "ids": page_ids}
    if grid_key == shown:  # the same page: the highlight of the query moves in the browser (markQuery)
        grid, label, grid_key = no_update, no_update, no_update
    else:
        grid, label = render_grid(store, sel, chosen, page_state)
        grid = to_tree(grid)
    if by_grid:
        return no_update, no_update, no_update, no_update, no_update, grid, label, grid_key
    same_dataset = bool(shown) and shown.get("dataset") == sel.dataset
    return (
        to_tree(render_query_panel(store, sel)),
        to_tree(render_results(store, sel)),
        to_tree(render_duplicates(store, sel)),
        no_update if same_dataset else options,
        no_update if chosen == current_class else chosen,
        grid,
        label,
        grid_key,
    )


def initial_search(store: Store, sel: Selection) -> dict[tuple[str, str], Any]:
    """The Search view's panels for the page's first layout, ``{(component id, property): value}``: the first
    selection's results are in the page as it arrives, without a callback round (``playground.app.serve_layout``)."""
    values = search_outputs(store, sel.to_dict(), None, None, None)
    return {key: value for key, value in zip(SEARCH_OUTPUTS, values, strict=True) if value is not no_update}


def register(app: Dash, store: Store) -> None:
    # One callback for the whole view, so that a new selection renders it in one round trip; a class filter or
    # a page turn redraws only the grid, and a new query on the page shown redraws no grid (GRID_SHOWN). The
    # panels are static HTML (``to_tree``): one component each in the browser, however many thumbnails.
    @app.callback(
        Output(ids.QUERY_PANEL, "tree"),
        Output(ids.RESULTS, "tree"),
        Output(DUPLICATES, "tree"),
        Output(GRID_CLASS, "options"),
        Output(GRID_CLASS, "value"),
        Output(ids.GRID, "tree"),
        Output(GRID_PAGE_LABEL, "children"),
        Output(ids.GRID_SHOWN, "data"),
        Input(ids.VIEW_SELECTION.format("search"), "data"),
        Input(GRID_CLASS, "value"),
        Input(ids.GRID_PAGE, "data"),
        State(ids.GRID_SHOWN, "data"),
        # Not on load: the page's layout holds the first selection's panels already (``initial_search``), or,
        # when it could not tell the URL, the controller's first answer fills the view's store, which calls this.
        prevent_initial_call=True,
    )
    def update_search(selection, current_class, page_state, shown):
        return search_outputs(store, selection, current_class, page_state, shown, ctx.triggered_id)

    # The query's thumbnail in the grid is marked in the browser (its data-query names the query): a new query on
    # the same page sends no grid.
    app.clientside_callback(
        ClientsideFunction(namespace="playground", function_name="markQuery"),
        Output(ids.GRID, "data-query"),
        Input(ids.VIEW_SELECTION.format("search"), "data"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output(ids.GRID_PAGE, "data"),
        Input(GRID_PREV, "n_clicks"),
        Input(GRID_NEXT, "n_clicks"),
        State(ids.SELECTION, "data"),
        State(GRID_CLASS, "value"),
        State(ids.GRID_PAGE, "data"),
        prevent_initial_call=True,
    )
    def turn_page(_prev, _next, selection, current_class, page_state):
        sel = selection_with_dataset(selection)
        _, page, n_pages = grid_page(store, sel, current_class, page_state)
        step = -1 if ctx.triggered_id == GRID_PREV else 1
        return {"dataset": sel.dataset, "class": current_class, "page": min(max(page + step, 0), n_pages - 1)}
