"""Compare's "Adapted" section: every trained head (``<backbone>+head``, ``precompute.head``) against its base.

Pure builders over the index's ``HeadLayer`` records: :func:`adapted_rows` (one row per head: held-out scores with
intervals, the paired verdict, training seconds, parameters, size added to each export), :func:`adapted_sentence`
(the plain sentence on top), :func:`learning_curve_figure` and :func:`render_adapted` (the section's components).
"""

from __future__ import annotations

import contextlib
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from dash import html

from playground import components
from playground.store import Store

SCORES = ("precision@1", "precision@5", "precision@15", "rwp@15", "ap")
PROTOCOL_WORDS = {
    "headline": "queries from the held-out half, searched against the whole collection",
    "strict": "queries and gallery both from the held-out half",
}
# Shown in Search (and the Adapted section) for a head model: its in-collection ranking has seen the labels.
SEEN_LABELS_NOTE = (
    "This model's head was trained on this dataset's labels: its rankings of the collection's own "
    "images have seen those labels, so they look better than they are. Its scores in Compare are "
    "held out (each image scored by a head that never saw it); an uploaded image is a fair query."
)


def is_head_model(store: Store, dataset: str, model: str) -> bool:
    try:
        return bool(store.model(dataset, model).trained_heads)
    except LookupError:
        return False


def _interval(values: list[float | None] | None) -> str:
    if not values or None in values:
        return ""
    return f"[{values[0]:.3f}, {values[1]:.3f}]"


def adapted_rows(store: Store, dataset: str, protocol: str = "headline") -> pd.DataFrame:
    """One row per (head model, layer): base and head precision@5 etc. held out, the difference and its verdict."""
    rows = []
    for key in store.models(dataset):
        entry = store.model(dataset, key)
        for layer, record in (entry.trained_heads or {}).items():
            evaluation = record.heldout.get(protocol, {})
            row: dict[str, Any] = {
                "model": key,
                "layer": layer,
                "base": record.base_model,
                "kind": record.head_kind,
                "labels": record.n_labels,
            }
            for score in SCORES:
                item = evaluation.get(score)
                if not item:
                    continue
                row[f"base {score}"] = item["base"]
                row[f"head {score}"] = item["head"]
                row[f"difference {score}"] = item["difference"]
                row[f"interval {score}"] = _interval(item["ci"])
                row[f"p {score}"] = f"{item['p_value']:.2g}"
                row[f"verdict {score}"] = (
                    "head better"
                    if item["ci"][0] > 0
                    else "base better"
                    if item["ci"][1] < 0
                    else "not distinguishable"
                )
            row["train seconds"] = record.fit_seconds
            row["head parameters"] = record.n_params
            row["head dims"] = f"{record.input_dim} → {record.head_dim}"
            row["export bytes added"] = _export_added(store, dataset, key, record.base_model)
            rows.append(row)
    return pd.DataFrame(rows)


def _export_added(store: Store, dataset: str, key: str, base: str) -> str:
    """Per TF.js variant, the bytes the head adds to the base's export, and the share of it."""
    head, original = store.model(dataset, key).tfjs, None
    with contextlib.suppress(LookupError):
        original = store.model(dataset, base).tfjs
    if head is None or not head.variant_bytes or original is None or not original.variant_bytes:
        return ""
    parts = []
    for variant, size in head.variant_bytes.items():
        if variant in original.variant_bytes:
            added = size - original.variant_bytes[variant]
            parts.append(f"{variant} +{added / 1e3:.0f} kB ({100 * added / original.variant_bytes[variant]:.2f} %)")
    return ", ".join(parts)


def adapted_sentence(rows: pd.DataFrame, score: str = "precision@5") -> str | None:
    """ "A head trained on your 200 labels lifts held-out precision@5 from 0.50 to 0.59 (+0.09 [0.05, 0.13])." for
    the head with the largest gain (None without heads)."""
    column = f"difference {score}"
    if rows.empty or column not in rows.columns:
        return None
    best = rows.loc[rows[column].astype(float).idxmax()]
    base, head, difference = best[f"base {score}"], best[f"head {score}"], best[column]
    verb = "lifts" if difference > 0 else "lowers" if difference < 0 else "leaves"
    return (
        f"A head trained on your {best['labels']} labels ({best['model']}, {best['layer']}) {verb} held-out "
        f"{score} from {base:.2f} to {head:.2f} ({difference:+.2f} {best[f'interval {score}']})."
    )


def learning_curve_figure(curve: list[dict[str, Any]], title: str, score: str = "precision@5") -> go.Figure:
    """Held-out score of base and head against labels per class, with 95 % intervals as error bars."""
    labels = [str(point["labels_per_class"]) for point in curve]
    figure = go.Figure()
    for name, key, colour in (("frozen base", "base", "#888"), ("head", "head", "#1f77b4")):
        values = [point[key] for point in curve]
        bounds = [point[f"{key}_ci"] for point in curve]
        figure.add_trace(
            go.Scatter(
                x=labels,
                y=values,
                name=name,
                mode="lines+markers",
                line={"color": colour},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [b[1] - v for b, v in zip(bounds, values, strict=True)],
                    "arrayminus": [v - b[0] for b, v in zip(bounds, values, strict=True)],
                },
            )
        )
    figure.update_layout(
        title=title,
        xaxis_title="labels per class (training half)",
        yaxis_title=f"held-out {score}",
        height=320,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.25},
    )
    return figure


def render_adapted(store: Store, dataset: str | None) -> Any:
    """The section's components, or None when the dataset has no trained head."""
    if dataset is None:
        return None
    rows = adapted_rows(store, dataset)
    if rows.empty:
        return None
    strict = adapted_rows(store, dataset, "strict")
    children: list[Any] = [
        html.H3("Adapted: heads trained on your labels"),
        html.P(adapted_sentence(rows), className="answer-text"),
    ]
    shown = rows[
        [
            "model",
            "layer",
            "kind",
            "labels",
            *[c for c in rows.columns if c.endswith("precision@5")],
            "train seconds",
            "head parameters",
            "head dims",
            "export bytes added",
        ]
    ]
    children.append(
        html.P(
            "Held out, headline protocol (" + PROTOCOL_WORDS["headline"] + "); the paired interval "
            "and Wilcoxon p compare head and frozen base on the same queries.",
            className="hint",
        )
    )
    children.append(components.frame_table(shown))
    if not strict.empty:
        columns = ["model", "layer", *[c for c in strict.columns if c.endswith("precision@5")]]
        children.append(html.P("Strict protocol (" + PROTOCOL_WORDS["strict"] + ").", className="hint"))
        children.append(components.frame_table(strict[columns]))
    others = [c for c in rows.columns if any(c.endswith(s) for s in SCORES if s != "precision@5")]
    if others:
        children.append(
            html.Details(
                [
                    html.Summary("Every score (headline protocol)"),
                    components.frame_table(rows[["model", "layer", *others]]),
                ]
            )
        )
    for key in dict.fromkeys(rows["model"]):
        for layer, record in (store.model(dataset, key).trained_heads or {}).items():
            if record.learning_curve:
                children.append(
                    components.graph(
                        f"adapted-curve-{key}-{layer}".replace("+", "-"),
                        figure=learning_curve_figure(record.learning_curve, f"Learning curve: {key} / {layer}"),
                    )
                )
    return html.Div(children, className="adapted-section")


__all__ = [
    "SEEN_LABELS_NOTE",
    "adapted_rows",
    "adapted_sentence",
    "is_head_model",
    "learning_curve_figure",
    "render_adapted",
]
