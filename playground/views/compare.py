"""Compare: models, layers and metrics on the dataset, quality beside cost."""

from dash import dcc, html

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
                    html.Span(
                        "The metric comes from the bar above; the CSV holds every model, layer and metric.",
                        className="hint",
                    ),
                ],
                className="compare-controls",
            ),
            html.Div(id=ids.COMPARE_MESSAGE),
            html.Div(
                [
                    html.Div(id=ids.COMPARE_ANSWER, className="answer-text"),
                    dcc.Graph(id=ids.COMPARE_FAMILY_GRAPH, config={"displaylogo": False}, className="answer-figure"),
                ],
                className="answer-block",
            ),
            html.Div(id=ids.COMPARE_HEADLINE),
            dcc.Graph(id=ids.COMPARE_LAYERS, config={"displaylogo": False}),
            html.H3("Each model's best layer against the best configuration"),
            html.P(
                "A paired test over the same queries: the best configuration's per-query score minus the model's, "
                "with the 95 % paired bootstrap interval of the mean difference and Wilcoxon's p-value. Not "
                "distinguishable: that interval contains 0. No correction for the several comparisons is made.",
                className="hint",
            ),
            html.Div(id=ids.COMPARE_VERDICTS, className="table-wrap"),
            html.H3("Best layer score per metric and model"),
            html.Div(id=ids.COMPARE_TABLE, className="table-wrap"),
            html.Div(
                [
                    html.Div(dcc.Graph(id=ids.COMPARE_HEATMAP, config={"displaylogo": False}), className="half"),
                    html.Div(dcc.Graph(id=ids.COMPARE_COST_GRAPH, config={"displaylogo": False}), className="half"),
                ],
                className="two-halves",
            ),
            html.H3("Cost beside quality"),
            html.P(
                "Parameters and GFLOPs of the whole feature model; model MB: the size of what ran (float32 weights, "
                "or the LiteRT file of a -float16 / -int8 variant); extraction time as measured by the precompute run "
                "on its machine, with the runtime that ran it.",
                className="hint",
            ),
            html.Div(id=ids.COMPARE_COST, className="table-wrap"),
        ]
    )
