"""Compare: models, layers and metrics on the dataset, quality beside cost.

Every graph takes the offline toolbar of ``components.graph`` (no Plotly Cloud button, no logo), without the
select and lasso tools that mean nothing here, so that the toolbar stays short. The three tables are static HTML
(one component each, ``playground/static_html.py``): mounted while the view is hidden, a few hundred cells would
slow every later click's rendering."""

from dash import dcc, html

from playground import components, ids
from playground.static_html import StaticHtml

# Box and lasso select do nothing in Compare (a click opens a point in Search).
_GRAPH_CONFIG = {"modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]}


def _graph(component_id: str, class_name: str | None = None) -> dcc.Graph:
    return components.graph(component_id, config=_GRAPH_CONFIG, className=class_name)


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
                    _graph(ids.COMPARE_FAMILY_GRAPH, "answer-figure"),
                ],
                className="answer-block",
            ),
            html.Div(id=ids.COMPARE_HEADLINE),
            html.Div(id=ids.COMPARE_ADAPTED),  # heads trained on the labels (playground/adapted.py), if any
            _graph(ids.COMPARE_LAYERS),
            html.H3("Each model's best layer against the best configuration"),
            html.P(
                "A paired test over the same queries: the best configuration's per-query score minus the model's, "
                "with the 95 % paired bootstrap interval of the mean difference and Wilcoxon's p-value. Not "
                "distinguishable: that interval contains 0. No correction for the several comparisons is made.",
                className="hint",
            ),
            StaticHtml(id=ids.COMPARE_VERDICTS, className="table-wrap"),
            html.H3("Best layer score per metric and model"),
            html.P("Bold: each model's best metric (its best configuration); click any chart's point to open that "
                   "model, layer and metric in Search.", className="hint"),
            StaticHtml(id=ids.COMPARE_TABLE, className="table-wrap"),
            html.Div(
                [
                    html.Div(_graph(ids.COMPARE_HEATMAP), className="half"),
                    html.Div(
                        [
                            _graph(ids.COMPARE_COST_GRAPH),
                            html.P(
                                "Marker area: the size of the model file that ran (float32 weights, or the LiteRT "
                                "file of a -float16 / -int8 variant), so a quantised variant is a smaller dot; "
                                "parameters and GFLOPs are in its tooltip and in the table below. Bold: the "
                                "model with the best score.",
                                className="hint figure-caption",
                            ),
                        ],
                        className="half",
                    ),
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
            StaticHtml(id=ids.COMPARE_COST, className="table-wrap"),
        ]
    )
