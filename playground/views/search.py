"""Search: pick a query among the dataset's images and see its ranked results and scores.

The grid, the query panel, the results and the duplicates are each one component (``StaticHtml``): a click
redraws a few components instead of a few hundred (``playground/static_html.py``).
"""

from dash import dcc, html

from playground import ids
from playground.static_html import StaticHtml, static


def layout() -> html.Div:
    return html.Div(
        [
            html.Div(
                [
                    html.H3("Pick a query"),
                    html.Div(
                        [
                            html.Label("Filter the grid by class", htmlFor=ids.GRID_CLASS, className="visually-hidden"),
                            dcc.Dropdown(
                                id=ids.GRID_CLASS, placeholder="all classes", clearable=True, className="grid-filter"
                            ),
                            html.Button(
                                "◀", id=ids.GRID_PREV, n_clicks=0, className="page-button", title="previous page",
                                **{"aria-label": "previous page"},
                            ),
                            html.Span(id=ids.GRID_PAGE_LABEL, className="page-label", **{"aria-live": "polite"}),
                            html.Button(
                                "▶", id=ids.GRID_NEXT, n_clicks=0, className="page-button", title="next page",
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
                    static(ids.DUPLICATES, html.Summary("Duplicates"), tag="details", className="duplicates-panel"),
                ],
                className="main-panel",
            ),
        ],
        className="two-columns search-layout",
    )
