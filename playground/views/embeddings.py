"""Embeddings: the UMAP layout of the selected model and layer, coloured by class; the query's neighbours beside
it and the images of a lasso or box selection above it."""

from dash import dcc, html

from playground import components, ids
from playground.figures import MAX_THUMBNAIL_POINTS
from playground.static_html import StaticHtml, static


def layout() -> html.Div:
    return html.Div(
        [
            html.Div(
                [
                    html.P(
                        "Each point is an image, placed by UMAP from the selected layer's features. Click a point to "
                        "make it the query (the star; its top results are circled). Drag to lasso a group, or pick "
                        "box select, zoom or pan in the toolbar; double-click to clear or zoom out. UMAP keeps "
                        "neighbourhoods but distorts distances: the query's nearest results (circled) can land far "
                        "from it on the map, and gaps between groups mean little.",
                        className="hint",
                    ),
                    # A toggle button (aria-pressed): Dash 4's dcc.Checklist nests its input in an option role.
                    html.Button(
                        "Thumbnails instead of dots",
                        id=ids.UMAP_THUMBS,
                        n_clicks=0,
                        className="toggle",
                        title=f"Draw each image's thumbnail on the map (datasets up to {MAX_THUMBNAIL_POINTS} images)",
                        **{"aria-pressed": "false"},
                    ),
                ],
                className="umap-toolbar",
            ),
            html.Div(id=ids.UMAP_INFO),
            dcc.Store(id=ids.UMAP_STATE, data={"key": None, "ids": None, "cleared": 0}),
            html.Div(
                [
                    html.Div(
                        [
                            static(
                                ids.UMAP_SELECTION,
                                html.P("Lasso or box-select points on the map to see their images and class mix "
                                       "here.", className="hint"),
                                className="selection-strip",
                                **{"aria-live": "polite"},
                            ),
                            components.graph(
                                ids.UMAP_GRAPH,
                                config={"scrollZoom": True},
                                clear_on_unhover=True,
                                responsive=True,
                                className="umap-graph fit-viewport",
                            ),
                        ],
                        className="umap-main",
                    ),
                    html.Aside(
                        StaticHtml(id=ids.UMAP_NEIGHBOURS),
                        className="umap-side fit-viewport",
                        **{"aria-label": "Neighbours of the query"},
                    ),
                ],
                className="umap-layout",
            ),
            dcc.Tooltip(id=ids.UMAP_TOOLTIP),
        ]
    )
