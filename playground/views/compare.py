"""Compare: models, layers and metrics on the dataset, quality beside cost. The answer first (the best
configuration, its cost, and the cheapest configuration as good as it; model size against score per family), then
what is distinguishable from the best, scores per layer with their intervals, the metric x model table, per-class
heatmap, cost beside quality. Winners are in bold; clicking a chart's point opens that model, layer and metric in
Search (through the URL, as a shared link would).

Every graph takes the offline toolbar of ``components.graph`` (no Plotly Cloud button, no logo), without the
select and lasso tools that mean nothing here, so that the toolbar stays short. The three tables are static HTML
(one component each, ``playground/static_html.py``): mounted while the view is hidden, a few hundred cells would
slow every later click's rendering."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from dash import Dash, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from playground import components, figures, ids, tables
from playground.adapted import render_adapted
from playground.callbacks.guards import selection_in_view
from playground.state import Selection, to_url
from playground.static_html import StaticHtml, to_tree
from playground.store import Store

TITLE = "Compare"

# Component ids of this view alone (playground/ids.py holds those that other modules and the page's scripts use).
COMPARE_SCORE = "compare-score"
COMPARE_HEADLINE = "compare-headline"
COMPARE_ANSWER = "compare-answer"
COMPARE_FAMILY_GRAPH = "compare-family-graph"
COMPARE_VERDICTS = "compare-verdicts"
COMPARE_LAYERS = "compare-layers-graph"
COMPARE_TABLE = "compare-table"
COMPARE_HEATMAP = "compare-heatmap"
COMPARE_COST = "compare-cost"
COMPARE_COST_GRAPH = "compare-cost-graph"
COMPARE_MESSAGE = "compare-message"
COMPARE_ADAPTED = "compare-adapted"
COMPARE_DOWNLOAD_BUTTON = "compare-download-button"
COMPARE_DOWNLOAD = "compare-download"

# The charts whose points open their configuration in Search when clicked (customdata [model, layer, metric, ...];
# the heatmap's cells by their column, "model (layer)" as tables.class_breakdown names it).
CLICKABLE_GRAPHS = (COMPARE_LAYERS, COMPARE_FAMILY_GRAPH, COMPARE_COST_GRAPH, COMPARE_HEATMAP)
_COLUMN = re.compile(r"^(?P<model>.+) \((?P<layer>[^()]+)\)$")
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
                        id=COMPARE_SCORE, value="rwp@15", clearable=False, options=[], className="score-select"
                    ),
                    html.Button("Download CSV", id=COMPARE_DOWNLOAD_BUTTON, n_clicks=0, className="button"),
                    dcc.Download(id=COMPARE_DOWNLOAD),
                    html.Span(
                        "The metric comes from the bar above; the CSV holds every model, layer and metric.",
                        className="hint",
                    ),
                ],
                className="compare-controls",
            ),
            html.Div(id=COMPARE_MESSAGE),
            html.Div(
                [
                    html.Div(id=COMPARE_ANSWER, className="answer-text"),
                    _graph(COMPARE_FAMILY_GRAPH, "answer-figure"),
                ],
                className="answer-block",
            ),
            html.Div(id=COMPARE_HEADLINE),
            html.Div(id=COMPARE_ADAPTED),  # heads trained on the labels (playground/adapted.py), if any
            _graph(COMPARE_LAYERS),
            html.H3("Each model's best layer against the best configuration"),
            html.P(
                "A paired test over the same queries: the best configuration's per-query score minus the model's, "
                "with the 95 % paired bootstrap interval of the mean difference and Wilcoxon's p-value. Not "
                "distinguishable: that interval contains 0. No correction for the several comparisons is made.",
                className="hint",
            ),
            StaticHtml(id=COMPARE_VERDICTS, className="table-wrap"),
            html.H3("Best layer score per metric and model"),
            html.P("Bold: each model's best metric (its best configuration); click any chart's point to open that "
                   "model, layer and metric in Search.", className="hint"),
            StaticHtml(id=COMPARE_TABLE, className="table-wrap"),
            html.Div(
                [
                    html.Div(_graph(COMPARE_HEATMAP), className="half"),
                    html.Div(
                        [
                            _graph(COMPARE_COST_GRAPH),
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
            StaticHtml(id=COMPARE_COST, className="table-wrap"),
        ]
    )


def _interval_of(row: pd.Series, score: str) -> str:
    low, high = tables.interval_columns(score)
    return components.format_interval(row[score], row.get(low), row.get(high))


def verdict_text(row: pd.Series) -> str:
    """What the paired test says of one row of ``tables.compare_to_best``, in words."""
    if row["verdict"] == tables.BEST:
        return "best"
    if row["verdict"] == tables.NOT_COMPARABLE:
        return "not comparable (no per-query scores shared with the best)"
    detail = (
        f"difference {components.format_interval(row['difference'], row['difference low'], row['difference high'])}"
        f", p = {row['p_value']:.2g}"
    )
    if row["verdict"] == tables.BELOW:
        return f"below the best ({detail})"
    if row["verdict"] == tables.ABOVE:
        return f"above the best on the queries both scored ({detail})"
    return f"not distinguishable from the best ({detail})"


def _count(value: float) -> str:
    """Parameters in words: 4.9M, 860k, 0."""
    if not np.isfinite(value):
        return "?"
    if value >= 1e6:
        return f"{value / 1e6:.1f}M"
    return f"{value / 1e3:.0f}k" if value >= 1e3 else f"{value:.0f}"


def share_words(ratio: float) -> str:
    """A cost ratio as words: "half the", "a third of the", "42 % of the" (before "FLOPs" / "parameters")."""
    for value, words in ((1 / 2, "half the"), (1 / 3, "a third of the"), (1 / 4, "a quarter of the"),
                         (2 / 3, "two thirds of the"), (3 / 4, "three quarters of the")):
        if abs(ratio - value) <= 0.02:
            return words
    return f"{100 * ratio:.0f} % of the"


def _cost_phrase(row: pd.Series, best: pd.Series) -> str:
    """How ``row``'s cost compares with the best's: "at half the FLOPs (0.38 vs 0.77 GFLOPs) and ..."."""
    flops, best_flops = row["layer GFLOPs"], best["layer GFLOPs"]
    params, best_params = row["layer parameters"], best["layer parameters"]
    if pd.isna(flops) or pd.isna(best_flops) or best_flops <= 0:
        return "(its cost is not stored)"
    if flops == 0:
        return f"with no network at all (0 GFLOPs against {best_flops:.2f})"
    text = f"at {share_words(flops / best_flops)} FLOPs ({flops:.2f} vs {best_flops:.2f} GFLOPs)"
    if pd.notna(params) and pd.notna(best_params) and best_params > 0:
        text += f" and {share_words(params / best_params)} parameters ({_count(params)} vs {_count(best_params)})"
    return text


def percent_of(value: float, best: float) -> str:
    """``value`` as a share of ``best``: "97 %"; one decimal just below 100 % ("99.6 %"), never a rounded 100."""
    share = 100 * value / best
    return f"{share:.1f} %" if 99.5 <= share < 100 else f"{share:.0f} %"


def _name(row: pd.Series) -> str:
    return f"{row['model']} / {row['layer']} / {row['metric']}"


# One visible sentence per score, under the answer (the tooltips hold the formulas).
SCORE_SENTENCES = {
    "rwp@15": "rwp@15 (rank-weighted precision at 15): the share of the 15 nearest images that share the query's "
    "class, with the first ranks counting most; 1 means all 15 do, and chance is the class's share of the "
    "collection.",
}


def trade_off_line(result: tables.Answer) -> str | None:
    """The trade-off in one line: the cheapest configuration that comes near the best, as shares of the best's
    score and FLOPs, with the paired difference: "efficientnet-lite0 / top_conv: 93 % of the best rwp@15 at
    45 % of its GFLOPs (best minus it, paired over the same queries: 0.030 [0.010, 0.050])". None when nothing
    cheaper comes within ``tables.TRADE_OFF_SHARE`` of the best."""
    best, score = result.best, result.score
    row = result.near
    if row is None and result.cheapest is not None and result.cheapest.get("verdict") != tables.BEST:
        row = result.cheapest
    if row is None:
        row = result.trade_off  # the cheapest within TRADE_OFF_SHARE of the best, when nothing nearer is cheaper
    if row is None:
        return None
    flops, best_flops = row["layer GFLOPs"], best["layer GFLOPs"]
    cost = (f"{percent_of(flops, best_flops)} of its GFLOPs" if pd.notna(flops) and pd.notna(best_flops)
            and best_flops > 0 else "an unknown cost")
    difference = components.format_interval(row["difference"], row["difference low"], row["difference high"])
    return (f"{row['model']} / {row['layer']}: {percent_of(row[score], best[score])} of the best {score} at "
            f"{cost} (best minus it, paired over the same queries: {difference}).")


def render_answer(result: tables.Answer | None) -> Any:
    """The answer block at the top of Compare: best configuration, its cost, the cheapest one as good as it."""
    if result is None:
        return None
    score, best = result.score, result.best
    multiple = result.multiple_of_random
    random = f", {multiple:.1f}x a random ranking ({result.baseline:.3f})" if multiple is not None else ""
    lines = [
        html.P(
            [html.Strong("Best: "), f"{_name(best)}, {score} {_interval_of(best, score)}{random}."],
            className="answer-best",
        )
    ]
    trade_off = trade_off_line(result)
    if trade_off:
        lines.append(html.P([html.Strong("Trade-off: "), trade_off], className="answer-trade-off"))
    explained = SCORE_SENTENCES.get(score)
    if explained:
        lines.append(html.P(explained, className="answer-score"))
    cost = result.model_cost
    parts = []
    if pd.notna(best["layer GFLOPs"]):
        parts.append(f"{best['layer GFLOPs']:.2f} GFLOPs per image and {_count(best['layer parameters'])} "
                     f"parameters up to {best['layer']}")
    if cost.ms_per_image is not None:
        parts.append(f"{cost.ms_per_image:.1f} ms/image for {best['model']}'s pass "
                     f"({cost.layers_in_pass if cost.layers_in_pass is not None else '?'} layers at once, "
                     "as precompute measured it)")
    if parts:
        lines.append(html.P([html.Strong("Its cost: "), "; ".join(parts) + "."]))
    cheapest = result.cheapest
    if cheapest["verdict"] == tables.BEST:
        ruled_out = f", {result.n_ruled_out} more clearly below by their intervals" if result.n_ruled_out else ""
        text = (f"every configuration that costs less falls below the best (paired test over the same queries: "
                f"{result.n_tested} tested{ruled_out}): the best is also the cheapest way to its score.")
    else:
        test = components.format_interval(cheapest["difference"], cheapest["difference low"],
                                          cheapest["difference high"])
        text = (f"{_name(cheapest)} reaches {percent_of(cheapest[score], best[score])} of the best "
                f"({cheapest[score]:.3f}) "
                f"{_cost_phrase(cheapest, best)}; the paired test cannot tell it from the best "
                f"(difference {test}, p = {cheapest['p_value']:.2g}).")
    lines.append(html.P([html.Strong("As good, cheaper: "), text], className="answer-cheapest"))
    near = result.near
    if near is not None:
        test = components.format_interval(near["difference"], near["difference low"], near["difference high"])
        lines.append(html.P([
            html.Strong(f"Within {100 * (1 - result.share):.0f} % of the best: "),
            f"{_name(near)} reaches {percent_of(near[score], best[score])} ({near[score]:.3f}) "
            f"{_cost_phrase(near, best)}, though the paired test puts it below the best (difference {test})."
            if near["verdict"] == tables.BELOW else
            f"{_name(near)} reaches {percent_of(near[score], best[score])} ({near[score]:.3f}) "
            f"{_cost_phrase(near, best)}.",
        ]))
    lines.append(html.P(
        "Over every model, layer and metric. Cost: FLOPs per image of the network up to the layer, then its "
        "parameters. Cheaper configurations are tested against the best one by one, cheapest first (95 % paired "
        "bootstrap over the same queries; no correction for the several tests), except those whose mean lies "
        "further below the best's than both intervals are wide together. The figure: each model's best score (any "
        "layer and metric) against the parameters of the network it runs; the Lite variants form one curve.",
        className="hint",
    ))
    return html.Div(lines, className="answer")


def render_verdicts(best: pd.Series | None, verdicts: pd.DataFrame, metric: str, score: str) -> tuple[Any, Any]:
    """The headline sentence and the per-model table of ``tables.compare_to_best``'s result."""
    if best is None or verdicts.empty:
        return None, None
    name = f"{best['model']} / {best['layer']} / {best['metric']}"
    low, _ = tables.interval_columns(score)
    stored = low in best.index and pd.notna(best[low])
    interval = " (95 % bootstrap interval over queries)" if stored else " (no interval stored: rerun precompute)"
    same = [f"{r.model} ({r.layer})" for r in verdicts.itertuples() if r.verdict == tables.NOT_DISTINGUISHABLE]
    below = [r.model for r in verdicts.itertuples() if r.verdict == tables.BELOW]
    sentence = f"Best by {score}: {name}, {_interval_of(best, score)}{interval}."
    if (verdicts["verdict"] == tables.BEST).all():
        sentence += " It is the only model."
    else:
        sentence += f" Not distinguishable from it: {', '.join(same) or 'no other model'}."
        if below:
            sentence += f" Below it: {', '.join(below)}."
    headline = html.P(sentence.strip(), className="headline")
    table = pd.DataFrame(
        {
            "model": verdicts["model"],
            f"best layer ({metric})": verdicts["layer"],
            f"{score} [95 % interval]": [_interval_of(row, score) for _, row in verdicts.iterrows()],
            "against the best": [verdict_text(row) for _, row in verdicts.iterrows()],
        }
    )
    winner = [i for i, verdict in enumerate(verdicts["verdict"]) if verdict == tables.BEST]
    cells = {(i, column) for i in winner for column in ("model", f"best layer ({metric})", f"{score} [95 % interval]")}
    return headline, bold_cells(
        components.frame_table(table, class_name="data-table verdict-table", numeric={f"{score} [95 % interval]"}),
        cells,
    )


def bold_cells(table: html.Table, cells: set[tuple[int, str]]) -> html.Table:
    """Write the cells ``(row position, column name)`` of a ``components.frame_table`` in bold (class ``winner``).

    Returns the same table, changed in place.
    """
    if not cells:
        return table
    header, body = table.children
    columns = [str(th.children) for th in header.children.children]
    for (position, column) in cells:
        if column not in columns or position >= len(body.children):
            continue
        td = body.children[position].children[columns.index(column)]
        td.className = f"{getattr(td, 'className', None) or ''} winner".strip()
        td.children = html.Strong(td.children)
    return table


def _pivot_winners(pivot: pd.DataFrame) -> set[tuple[int, str]]:
    """Winners of a metric x model table (numbers, before intervals are merged into text): each model's best
    metric, its column's highest value (the dataset's best configuration is the highest of them)."""
    cells = set()
    values = pivot.apply(pd.to_numeric, errors="coerce")
    for model in values.columns:
        column = values[model].reset_index(drop=True)
        if column.notna().any():
            cells.add((int(column.idxmax()), str(model)))
    return cells


def search_target(click_data: dict | None, selection: dict | None) -> tuple[str, str] | None:
    """``(pathname, search)`` of the Search view for the chart point clicked in Compare, or None.

    The point's ``customdata`` starts with [model, layer, metric] (``figures._click_data``; an empty metric
    keeps the selection's). A heatmap cell has none in Dash's click data (its point number is a pair, which
    ``dcc.Graph`` leaves out): its column, ``model (layer)``, names it, under the selection's metric. Dataset,
    query and k stay as they are. The URL is then resolved like any link, so a name the artifacts lack gets the
    usual notice.
    """
    sel = Selection.from_dict(selection)
    points = (click_data or {}).get("points") or []
    if sel.dataset is None or not points:
        return None
    custom = points[0].get("customdata")
    column = _COLUMN.match(str(points[0].get("x", "")))
    if custom is None and column:
        custom = [column["model"], column["layer"], ""]
    if not isinstance(custom, list | tuple) or len(custom) < 2 or not custom[0] or not custom[1]:
        return None  # a point of no configuration (the random ranking's column, a baseline line)
    metric = custom[2] if len(custom) > 2 and custom[2] else sel.metric
    target = Selection(view="search", dataset=sel.dataset, model=str(custom[0]), layer=str(custom[1]),
                       metric=metric, query=sel.query, k=sel.k)
    return to_url(target)


def render_compare(store: Store, sel: Selection, score: str | None) -> dict[str, Any]:
    """Everything the compare view shows, keyed by what it fills.

    Each derived table (the summary, each model's best layer, ...) is built once per render and handed to what
    needs it; the figures are pure functions of those tables.
    """
    out: dict[str, Any] = {"message": None, "score_options": [], "score": score, "headline": None, "verdicts": None,
                           "answer": None}
    if sel.dataset is None:
        empty = figures.empty_figure("No dataset.")
        return out | {"layers": empty, "table": None, "heatmap": empty, "cost": None, "cost_figure": empty,
                      "family": empty}
    summary = tables.summary_table(store, sel.dataset)
    names = tables.score_names(summary)
    out["score_options"] = [{"label": n, "value": n} for n in names]
    if score not in names:
        score = "rwp@15" if "rwp@15" in names else (names[0] if names else None)
    out["score"] = score
    metric = sel.metric
    messages = []
    if not sel.labeled:
        messages.append(components.message("This dataset has no labels: scores are not available, costs are.", "info"))
    if summary.empty:
        messages.append(components.message("No model was computed for this dataset yet.", "warning"))
    baseline = store.baseline_summary(sel.dataset).get(score) if score else None
    best = tables.best_layers(summary, metric, score) if score and score in summary.columns else None
    if score:
        rows = tables.layer_scores(summary, metric, score)
        bars = " · bars: 95 % interval" if tables.interval_columns(score)[0] in rows.columns else ""
        out["layers"] = figures.layer_scores_figure(
            rows, score, baseline,
            figures.caption(f"{score} per layer ({metric})",
                            f"each model's layers shallow → deep · ★ best layer{bars} · dashed: random ranking · "
                            "click a point to open it in Search"),
            metric=metric,
        )
        best_row, verdicts = tables.compare_to_best(store, sel.dataset, metric, score, summary=summary,
                                                    best_per_model=best)
        out["headline"], out["verdicts"] = render_verdicts(best_row, verdicts, metric, score)
        models = list(dict.fromkeys(summary["model"]))
        pivot = tables.metric_model_table(summary, score, intervals=True)
        numbers = pivot[[model for model in models if model in pivot.columns]]  # without the interval bounds
        pivot, merged = components.with_intervals(pivot, models)
        label = f"metric \\ model ({score}, best layer)"
        pivot = pivot.reset_index().rename(columns={"metric": label})
        if baseline is not None:
            pivot["random"] = baseline
        winners = _pivot_winners(numbers) if not numbers.empty else set()
        out["table"] = bold_cells(components.frame_table(pivot, numeric=merged), winners)
        targets = {} if best is None else {
            f"{model} ({row['layer']})": (model, row["layer"], metric) for model, row in best.iterrows()
        }
        out["heatmap"] = figures.class_heatmap(
            tables.class_breakdown(store, sel.dataset, metric, score, summary=summary, best=best), score, targets
        )
        out["answer"] = render_answer(tables.answer(store, sel.dataset, score, summary=summary))
        out["family"] = figures.family_figure(tables.family_table(store, sel.dataset, score, summary=summary),
                                              score, baseline)
    else:
        out["layers"] = figures.empty_figure("No scores (unlabeled dataset).")
        out["table"] = None
        out["heatmap"] = figures.empty_figure("No per-class scores (unlabeled dataset).")
        out["family"] = figures.empty_figure("No scores to set against model size (unlabeled dataset).")
    cost = tables.cost_table(store, sel.dataset, metric, score or "", summary=summary, best=best)
    shown, merged = components.with_intervals(cost, [f"best {score}"])
    timings = [c for c in ("ms/image", "images/s") if c in shown.columns]
    shown = shown.assign(**{c: shown[c].map(tables.significant) for c in timings})
    merged = [*merged, *timings]
    cost_winner = set()
    if score and f"best {score}" in cost.columns and cost[f"best {score}"].notna().any():
        position = int(cost[f"best {score}"].astype(float).reset_index(drop=True).idxmax())
        cost_winner = {(position, "model"), (position, f"best {score}")}
    out["cost"] = bold_cells(components.frame_table(shown, numeric=merged), cost_winner)
    out["cost_figure"] = (
        figures.cost_quality_figure(cost, f"best {score}", metric=metric)
        if score
        else figures.empty_figure("No scores to set against cost.")
    )
    out["message"] = messages or None
    return out


def register(app: Dash, store: Store) -> None:
    @app.callback(
        Output(COMPARE_SCORE, "options"),
        Output(COMPARE_SCORE, "value"),
        Output(COMPARE_MESSAGE, "children"),
        Output(COMPARE_ANSWER, "children"),
        Output(COMPARE_FAMILY_GRAPH, "figure"),
        Output(COMPARE_HEADLINE, "children"),
        Output(COMPARE_LAYERS, "figure"),
        Output(COMPARE_VERDICTS, "tree"),
        Output(COMPARE_TABLE, "tree"),
        Output(COMPARE_HEATMAP, "figure"),
        Output(COMPARE_COST, "tree"),
        Output(COMPARE_COST_GRAPH, "figure"),
        Output(COMPARE_ADAPTED, "children"),
        Input(ids.VIEW_SELECTION.format("compare"), "data"),
        Input(COMPARE_SCORE, "value"),
    )
    def update_compare(selection, score):
        sel = selection_in_view(selection, "compare")
        out = render_compare(store, sel, score)
        return (
            out["score_options"],
            out["score"],
            out["message"],
            out["answer"],
            out["family"],
            out["headline"],
            out["layers"],
            to_tree(out["verdicts"]),
            to_tree(out["table"]),
            out["heatmap"],
            to_tree(out["cost"]),
            out["cost_figure"],
            render_adapted(store, sel.dataset) if sel.labeled else None,
        )

    @app.callback(
        Output(ids.URL, "pathname", allow_duplicate=True),
        Output(ids.URL, "search", allow_duplicate=True),
        *[Input(graph, "clickData") for graph in CLICKABLE_GRAPHS],
        State(ids.SELECTION, "data"),
        prevent_initial_call=True,
    )
    def open_in_search(*args):
        """A click on a chart's point opens that model / layer / metric in Search (the controller resolves the
        URL as it resolves any link: back returns to Compare)."""
        clicks = dict(zip(CLICKABLE_GRAPHS, args[:-1], strict=True))
        target = search_target(clicks.get(ctx.triggered_id), args[-1])
        if target is None:
            raise PreventUpdate
        return target

    @app.callback(
        Output(COMPARE_DOWNLOAD, "data"),
        Input(COMPARE_DOWNLOAD_BUTTON, "n_clicks"),
        State(ids.SELECTION, "data"),
        prevent_initial_call=True,
    )
    def download_csv(n_clicks, selection):
        sel = Selection.from_dict(selection)
        if not n_clicks or sel.dataset is None:
            raise PreventUpdate
        table = tables.summary_table(store, sel.dataset)
        return dcc.send_data_frame(table.to_csv, f"{sel.dataset}-comparison.csv", index=False)
