"""Compare view: the best configuration and what is distinguishable from it, scores per layer with their
intervals, the metric x model table, per-class heatmap, cost beside quality."""

from __future__ import annotations

from typing import Any

import pandas as pd
from dash import Dash, Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from playground import components, figures, ids, tables
from playground.callbacks.guards import selection_in_view
from playground.state import Selection
from playground.store import Store


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
    return headline, components.frame_table(
        table, class_name="data-table verdict-table", numeric={f"{score} [95 % interval]"}
    )


def render_compare(store: Store, sel: Selection, score: str | None) -> dict[str, Any]:
    """Everything the compare view shows, keyed by what it fills."""
    out: dict[str, Any] = {"message": None, "score_options": [], "score": score, "headline": None, "verdicts": None}
    if sel.dataset is None:
        empty = figures.empty_figure("No dataset.")
        return out | {"layers": empty, "table": None, "heatmap": empty, "cost": None, "cost_figure": empty}
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
    if score:
        rows = tables.layer_scores(summary, metric, score)
        bars = ", bars: 95 % interval" if tables.interval_columns(score)[0] in rows.columns else ""
        out["layers"] = figures.layer_scores_figure(
            rows, score, baseline, f"{score} per layer ({metric}), ★ best layer{bars}, dashed: random ranking"
        )
        out["headline"], out["verdicts"] = render_verdicts(
            *tables.compare_to_best(store, sel.dataset, metric, score), metric, score
        )
        pivot = tables.metric_model_table(summary, score, intervals=True)
        pivot, merged = components.with_intervals(pivot, list(dict.fromkeys(summary["model"])))
        pivot = pivot.reset_index().rename(columns={"metric": f"metric \\ model ({score}, best layer)"})
        if baseline is not None:
            pivot["random"] = baseline
        out["table"] = components.frame_table(pivot, numeric=merged)
        out["heatmap"] = figures.class_heatmap(tables.class_breakdown(store, sel.dataset, metric, score), score)
    else:
        out["layers"] = figures.empty_figure("No scores (unlabeled dataset).")
        out["table"] = None
        out["heatmap"] = figures.empty_figure("No per-class scores (unlabeled dataset).")
    cost = tables.cost_table(store, sel.dataset, metric, score or "")
    shown, merged = components.with_intervals(cost, [f"best {score}"])
    out["cost"] = components.frame_table(shown, numeric=merged)
    out["cost_figure"] = (
        figures.cost_quality_figure(cost, f"best {score}")
        if score
        else figures.empty_figure("No scores to set against cost.")
    )
    out["message"] = messages or None
    return out


def register(app: Dash, store: Store) -> None:
    @app.callback(
        Output(ids.COMPARE_SCORE, "options"),
        Output(ids.COMPARE_SCORE, "value"),
        Output(ids.COMPARE_MESSAGE, "children"),
        Output(ids.COMPARE_HEADLINE, "children"),
        Output(ids.COMPARE_LAYERS, "figure"),
        Output(ids.COMPARE_VERDICTS, "children"),
        Output(ids.COMPARE_TABLE, "children"),
        Output(ids.COMPARE_HEATMAP, "figure"),
        Output(ids.COMPARE_COST, "children"),
        Output(ids.COMPARE_COST_GRAPH, "figure"),
        Input(ids.SELECTION, "data"),
        Input(ids.COMPARE_SCORE, "value"),
    )
    def update_compare(selection, score):
        sel = selection_in_view(selection, "compare")
        out = render_compare(store, sel, score)
        return (
            out["score_options"],
            out["score"],
            out["message"],
            out["headline"],
            out["layers"],
            out["verdicts"],
            out["table"],
            out["heatmap"],
            out["cost"],
            out["cost_figure"],
        )

    @app.callback(
        Output(ids.COMPARE_DOWNLOAD, "data"),
        Input(ids.COMPARE_DOWNLOAD_BUTTON, "n_clicks"),
        State(ids.SELECTION, "data"),
        prevent_initial_call=True,
    )
    def download_csv(n_clicks, selection):
        sel = Selection.from_dict(selection)
        if not n_clicks or sel.dataset is None:
            raise PreventUpdate
        table = tables.summary_table(store, sel.dataset)
        return dcc.send_data_frame(table.to_csv, f"{sel.dataset}-comparison.csv", index=False)
