"""The comparison tables of a dataset, built from the artifact index and the score files."""

from __future__ import annotations

import pandas as pd

from playground.store import MissingArtifact, Store

COST_COLUMNS = {
    "n_params": "parameters",
    "gflops_per_image": "GFLOPs/image",
    "ms_per_image": "ms/image",
    "images_per_second": "images/s",
}


def summary_table(store: Store, dataset: str) -> pd.DataFrame:
    """One row per computed (model, layer, metric) with every summary score and the model's costs.

    Columns: model, layer, order, dim, metric, the summary scores (rwp@15, precision@k, ..., ap; none
    for an unlabeled dataset), then parameters, GFLOPs/image, ms/image, images/s of the whole model.
    """
    rows = []
    for model in store.models(dataset):
        entry = store.model(dataset, model)
        cost = entry.get("cost", {})
        for layer in store.layers(dataset, model):
            layer_entry = store.layer(dataset, model, layer)
            for metric, result in layer_entry.get("metrics", {}).items():
                summary = {k: v for k, v in (result.get("summary") or {}).items() if k != "n_queries"}
                row = {
                    "model": model,
                    "layer": layer,
                    "order": layer_entry.get("order", 0),
                    "dim": layer_entry.get("dim"),
                    "metric": metric,
                    **summary,
                }
                row.update({label: cost.get(key) for key, label in COST_COLUMNS.items()})
                rows.append(row)
    return pd.DataFrame(rows)


def score_names(table: pd.DataFrame) -> list[str]:
    """Score columns of a summary table, in their stored order."""
    fixed = {"model", "layer", "order", "dim", "metric", *COST_COLUMNS.values()}
    return [c for c in table.columns if c not in fixed]


def layer_scores(table: pd.DataFrame, metric: str, score: str) -> pd.DataFrame:
    """Rows of one metric: model, layer, order, score value, sorted by model then network order."""
    if table.empty or score not in table.columns:
        return pd.DataFrame(columns=["model", "layer", "order", score])
    part = table[table["metric"] == metric][["model", "layer", "order", score]]
    model_rank = {model: i for i, model in enumerate(dict.fromkeys(table["model"]))}  # the index's model order
    part = part.assign(_rank=part["model"].map(model_rank)).sort_values(["_rank", "order"], kind="stable")
    return part.drop(columns="_rank").reset_index(drop=True)


def best_layers(table: pd.DataFrame, metric: str, score: str) -> pd.DataFrame:
    """Each model's best layer under ``metric`` by ``score``: index model, columns layer and score."""
    part = layer_scores(table, metric, score).dropna(subset=[score])
    if part.empty:
        return pd.DataFrame(columns=["layer", score])
    best = part.loc[part.groupby("model", sort=False)[score].idxmax()]
    return best.set_index("model")[["layer", score]]


def metric_model_table(table: pd.DataFrame, score: str) -> pd.DataFrame:
    """Best ``score`` over layers for each metric (rows) and model (columns); NaN where not computed."""
    if table.empty or score not in table.columns:
        return pd.DataFrame()
    pivot = table.pivot_table(index="metric", columns="model", values=score, aggfunc="max", sort=False)
    return pivot.reindex(columns=list(dict.fromkeys(table["model"])))


def class_breakdown(store: Store, dataset: str, metric: str, score: str) -> pd.DataFrame:
    """Per-class ``score`` of each model at its best layer (columns ``model (layer)``) and of a random ranking.

    Rows are the classes (from ``summarize_scores`` of each best layer's per-query scores).
    """
    table = summary_table(store, dataset)
    best = best_layers(table, metric, score)
    columns = {}
    for model, row in best.iterrows():
        try:
            summary = store.class_summary(dataset, model, row["layer"], metric)
        except MissingArtifact:
            continue
        if summary is not None and score in summary.columns:
            columns[f"{model} ({row['layer']})"] = summary[score].drop("__all__", errors="ignore")
    baseline = store.baseline(dataset)
    if baseline is not None and score in baseline.columns:
        columns["random"] = baseline[score].drop("__all__", errors="ignore")
    return pd.DataFrame(columns)


def cost_table(store: Store, dataset: str, metric: str, score: str) -> pd.DataFrame:
    """Per model: its costs beside its best layer and score under ``metric``."""
    table = summary_table(store, dataset)
    best = best_layers(table, metric, score) if score in table.columns else pd.DataFrame()
    rows = []
    for model in store.models(dataset):
        entry = store.model(dataset, model)
        cost = entry.get("cost", {})
        row = {"model": model, "weights": (entry.get("weights") or {}).get("source", "")}
        row.update({label: cost.get(key) for key, label in COST_COLUMNS.items()})
        if model in best.index:
            row["best layer"] = best.loc[model, "layer"]
            row[f"best {score}"] = best.loc[model, score]
        rows.append(row)
    return pd.DataFrame(rows)
