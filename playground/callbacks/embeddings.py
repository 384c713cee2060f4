"""Embeddings view: the UMAP scatter with the query and its results, and thumbnail tooltips."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, State, html, no_update
from dash.exceptions import PreventUpdate

from playground import components, figures, ids
from playground.callbacks.guards import selection_in_view
from playground.ranking import query_results
from playground.state import Selection
from playground.store import MissingArtifact, Store


def render_embeddings(store: Store, sel: Selection) -> tuple[Any, Any]:
    """(figure, info) for the selection: a UMAP scatter or an empty figure saying what is missing."""
    if sel.dataset is None or sel.model is None:
        return figures.empty_figure("No model computed for this dataset."), None
    try:
        coords = store.umap(sel.dataset, sel.model, sel.layer)
    except MissingArtifact as exc:
        return figures.empty_figure("UMAP layout not computed"), components.message(str(exc), "warning")
    info = None
    try:
        results = [
            r.image_id for r in query_results(store, sel.dataset, sel.model, sel.layer, sel.metric, sel.query, sel.k)
        ]
    except MissingArtifact as exc:
        results, info = [], components.message(f"Results not highlighted: {exc}", "warning")
    title = f"{sel.model} / {sel.layer}"
    return figures.umap_figure(coords, store.labels(sel.dataset), sel.query, results, title), info


def tooltip(store: Store, sel: Selection, hover_data: dict | None) -> tuple[bool, Any, Any]:
    """(show, bbox, children) of the thumbnail tooltip for a hovered point."""
    try:
        point = hover_data["points"][0]
        image_id = int(point["customdata"])
        bbox = point["bbox"]
    except (TypeError, KeyError, IndexError, ValueError):
        return False, no_update, no_update
    labels = store.labels(sel.dataset) if sel.dataset else None
    label = None if labels is None or image_id >= len(labels) else str(labels[image_id])
    children = html.Div(
        [
            components.thumbnail(sel.dataset, image_id, label),
            html.Div(f"{label or 'image'} · {image_id}", className="tooltip-label"),
        ],
        className="tooltip-card",
    )
    return True, bbox, children


def register(app: Dash, store: Store) -> None:
    @app.callback(
        Output(ids.UMAP_GRAPH, "figure"),
        Output(ids.UMAP_INFO, "children"),
        Input(ids.SELECTION, "data"),
    )
    def update_embeddings(selection):
        sel = selection_in_view(selection, "embeddings")
        return render_embeddings(store, sel)

    @app.callback(
        Output(ids.UMAP_TOOLTIP, "show"),
        Output(ids.UMAP_TOOLTIP, "bbox"),
        Output(ids.UMAP_TOOLTIP, "children"),
        Input(ids.UMAP_GRAPH, "hoverData"),
        State(ids.SELECTION, "data"),
    )
    def update_tooltip(hover_data, selection):
        if selection is None:
            raise PreventUpdate
        return tooltip(store, Selection.from_dict(selection), hover_data)
