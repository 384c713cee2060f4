"""Embeddings: the UMAP layout of the selected model and layer, coloured by class."""

from dash import dcc, html

from playground import ids


def layout() -> html.Div:
    return html.Div(
        [
            html.P(
                "Each point is an image, placed by UMAP from the selected layer's features. The star is the "
                "query, the circled points its top results. Click a point to make it the query.",
                className="hint",
            ),
            html.Div(id=ids.UMAP_INFO),
            dcc.Graph(id=ids.UMAP_GRAPH, clear_on_unhover=True, config={"displaylogo": False}, className="umap-graph"),
            dcc.Tooltip(id=ids.UMAP_TOOLTIP),
        ]
    )
