"""Compare: models, layers and metrics on the dataset, quality beside cost."""

from dash import dash_table, dcc, html

from playground import ids


def layout() -> html.Div:
    return html.Div(
        [
            html.Div(
                [
                    html.Label("Score", className="control-label"),
                    dcc.Dropdown(
                        id=ids.COMPARE_SCORE, value="rwp@15", clearable=False, options=[], className="score-select"
                    ),
                    html.Button("Download CSV", id=ids.COMPARE_DOWNLOAD_BUTTON, n_clicks=0, className="button"),
                    dcc.Download(id=ids.COMPARE_DOWNLOAD),
                ],
                className="compare-controls",
            ),
            html.Div(id=ids.COMPARE_MESSAGE),
            dcc.Graph(id=ids.COMPARE_LAYERS, config={"displaylogo": False}),
            html.H3("Best layer score per metric and model"),
            dash_table.DataTable(
                id=ids.COMPARE_TABLE,
                style_cell={"fontFamily": "inherit", "padding": "4px 8px"},
                style_header={"fontWeight": "600"},
                sort_action="native",
            ),
            html.Div(
                [
                    html.Div(dcc.Graph(id=ids.COMPARE_HEATMAP, config={"displaylogo": False}), className="half"),
                    html.Div(
                        [
                            html.H3("Cost beside quality"),
                            dash_table.DataTable(
                                id=ids.COMPARE_COST,
                                sort_action="native",
                                style_cell={"fontFamily": "inherit", "padding": "4px 8px"},
                                style_header={"fontWeight": "600"},
                            ),
                            dcc.Graph(id=ids.COMPARE_COST_GRAPH, config={"displaylogo": False}),
                        ],
                        className="half",
                    ),
                ],
                className="two-halves",
            ),
        ]
    )
