"""Compare view: scores per layer, the metric x model table, per-class heatmap, cost beside quality."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, State, dcc
from dash.exceptions import PreventUpdate

from playground import components, figures, ids, tables
from playground.callbacks.guards import selection_in_view
from playground.state import Selection
from playground.store import Store


def render_compare(store: Store, sel: Selection, score: str | None) -> dict[str, Any]:
    """Everything the compare view shows, keyed by what it fills."""
    out: dict[str, Any] = {"message": None, "score_options": [], "score": score}
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
        out["layers"] = figures.layer_scores_figure(
            rows, score, baseline, f"{score} per layer ({metric}), ★ best layer, dashed: random ranking"
        )
        pivot = tables.metric_model_table(summary, score)
        pivot = pivot.reset_index().rename(columns={"metric": f"metric \\ model ({score}, best layer)"})
        if baseline is not None:
            pivot["random"] = baseline
        out["table"] = components.frame_table(pivot)
        out["heatmap"] = figures.class_heatmap(tables.class_breakdown(store, sel.dataset, metric, score), score)
    else:
        out["layers"] = figures.empty_figure("No scores (unlabeled dataset).")
        out["table"] = None
        out["heatmap"] = figures.empty_figure("No per-class scores (unlabeled dataset).")
    cost = tables.cost_table(store, sel.dataset, metric, score or "")
    out["cost"] = components.frame_table(cost)
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
        Output(ids.COMPARE_LAYERS, "figure"),
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
            out["layers"],
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
