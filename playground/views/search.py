"""Search: pick a query among the dataset's images and see its ranked results and scores."""

from dash import dcc, html

from playground import ids


def layout() -> html.Div:
    return html.Div(
        [
            html.Div(
                [
                    html.H3("Query"),
                    dcc.Loading(html.Div(id=ids.QUERY_PANEL), type="dot"),
                    html.H3("Pick a query"),
                    html.Div(
                        [
                            dcc.Dropdown(
                                id=ids.GRID_CLASS, placeholder="all classes", clearable=True, className="grid-filter"
                            ),
                            html.Button(
                                "◀", id=ids.GRID_PREV, n_clicks=0, className="page-button", title="previous page"
                            ),
                            html.Span(id=ids.GRID_PAGE_LABEL, className="page-label"),
                            html.Button("▶", id=ids.GRID_NEXT, n_clicks=0, className="page-button", title="next page"),
                        ],
                        className="grid-controls",
                    ),
                    html.Div(id=ids.GRID, className="image-grid"),
                ],
                className="side-panel",
            ),
            html.Div(
                [
                    html.H3("Top results"),
                    dcc.Loading(html.Div(id=ids.RESULTS), type="dot"),
                    html.Details([html.Summary("Duplicates")], id=ids.DUPLICATES, className="duplicates-panel"),
                ],
                className="main-panel",
            ),
        ],
        className="two-columns",
    )
