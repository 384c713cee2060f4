"""The embeddings map: a UMAP layout drawn as a scatter of classes, the query and its results highlighted."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from playground.figures import _LAYOUT, _template

# Classes on the embeddings map (issue #24): every colour at least 3:1 contrast on the white map (WCAG's bound for
# graphics; the former pale cyan #99DDFF had 1.49:1) and at least 30 CIEDE2000 apart from each other for normal
# vision (the former palette had pairs at 21-26). Found by a farthest-point search over the sRGB colours (steps of
# 15) with that contrast, ordered so that the first few are the most distinct. The price: under simulated
# protan, deutan and tritan vision (Machado et al. 2009) the closest pair is 6.9 apart (the former palette kept
# 11.7); dark colours with 3:1 contrast leave little room on the axes those eyes lose. tests/test_trust_round3.py
# and tests/test_figures.py check both. Classes 11 to 20 reuse the colours with another marker shape.
CLASS_COLOURS = (
    "#961EF0",  # violet
    "#2DA500",  # green
    "#F06900",  # orange
    "#0F0F00",  # near black
    "#0096E1",  # blue
    "#960F2D",  # wine
    "#1E003C",  # deep indigo
    "#A58796",  # mauve grey
    "#00695A",  # teal
    "#785A00",  # brown
)
CLASS_SYMBOLS = ("circle", "diamond", "square", "triangle-up")
QUERY_COLOUR = "#FFD400"
# Draw thumbnails instead of dots up to this many points (beyond, hundreds of images clutter and load slowly).
MAX_THUMBNAIL_POINTS = 500
# Maps of up to this many points are drawn in SVG (go.Scatter), larger ones with WebGL (go.Scattergl): a WebGL
# context costs about 100-300 ms to set up in a browser without a GPU, more than SVG needs for a few thousand
# markers; beyond, WebGL draws faster. Clicks, hovers, lasso and box selection behave the same in both.
MAX_SVG_POINTS = 2000


def class_style(index: int) -> tuple[str, str]:
    """(colour, marker symbol) of the ``index``-th class: distinct for the first 20, then repeating."""
    n = len(CLASS_COLOURS)
    return CLASS_COLOURS[index % n], CLASS_SYMBOLS[(index // n) % len(CLASS_SYMBOLS)]


def umap_figure(
    coords: np.ndarray,
    labels: np.ndarray | None,
    query: int | None,
    results: list[int],
    title: str = "",
    thumb_urls: list[str] | None = None,
    revision: str | None = None,
    selection_revision: str | None = None,
    selected: Collection[int] | None = None,
) -> go.Figure:
    """UMAP scatter (SVG up to :data:`MAX_SVG_POINTS` points, else WebGL), one trace per class; the query and its
    results highlighted.

    ``customdata`` of every point is its image id, so clicks, hovers and lasso or box selections map back to
    images. Dragging draws a lasso (the modebar switches to box select, zoom or pan); unselected points fade.
    ``thumb_urls`` (one per point, at most :data:`MAX_THUMBNAIL_POINTS`) draws each image's thumbnail under
    its dot. ``selected`` (image ids of a lasso or box selection) are drawn selected and the other points faded,
    so that a selection survives a redraw (a new query). Zoom is kept while ``revision`` stays the same
    (default: the title), plotly's own selection while ``selection_revision`` does (default: ``revision``).
    """
    coords = np.asarray(coords)
    ids = np.arange(len(coords))
    groups = np.asarray(labels).astype(str) if labels is not None else np.full(len(coords), "images")
    thumbs = thumb_urls is not None and 0 < len(thumb_urls) == len(coords) <= MAX_THUMBNAIL_POINTS
    chosen = None if selected is None else np.isin(ids, np.asarray(list(selected), dtype=int))

    def selection_of(members: np.ndarray) -> dict:
        """``selectedpoints`` of a trace over the images ``members`` (nothing when no selection is held)."""
        return {} if chosen is None else {"selectedpoints": np.flatnonzero(chosen[members]).tolist()}

    kind = "scatter" if len(coords) <= MAX_SVG_POINTS else "scattergl"
    traces = []
    for i, group in enumerate(pd.unique(groups)):
        mask = groups == group
        colour, symbol = class_style(i)
        traces.append(
            {
                "type": kind,
                "x": coords[mask, 0],
                "y": coords[mask, 1],
                "mode": "markers",
                "name": str(group),
                "customdata": ids[mask].tolist(),  # plain JSON: Dash reads click/hover ids from it
                "marker": {
                    "size": 6 if thumbs else 8,
                    "color": colour,
                    "symbol": symbol,
                    "opacity": 0.9,
                    "line": {"width": 0.6, "color": "#ffffff" if thumbs else "rgba(0,0,0,0.55)"},
                },
                "selected": {"marker": {"opacity": 1.0}},
                "unselected": {"marker": {"opacity": 0.15}},
                **selection_of(ids[mask]),
                "hovertemplate": f"{group}<br>image %{{customdata}}<extra></extra>"
                if labels is not None
                else "image %{customdata}<extra></extra>",
            }
        )
    if results:
        sel = np.asarray(results, dtype=int)
        traces.append(
            {
                "type": kind,
                "x": coords[sel, 0],
                "y": coords[sel, 1],
                "mode": "markers",
                "name": "top results",
                "customdata": sel.tolist(),
                "marker": {"size": 14, "color": "rgba(0,0,0,0)", "line": {"width": 2, "color": "#111"}},
                "hovertemplate": "result: image %{customdata}<extra></extra>",
                **selection_of(sel),
            }
        )
    if query is not None and 0 <= query < len(coords):
        traces.append(
            {
                "type": kind,
                "x": [coords[query, 0]],
                "y": [coords[query, 1]],
                "mode": "markers",
                "name": "query",
                "customdata": [int(query)],
                "marker": {
                    "size": 20,
                    "symbol": "star",
                    "color": QUERY_COLOUR,
                    "line": {"width": 1.5, "color": "#111"},
                },
                "hovertemplate": "query: image %{customdata}<extra></extra>",
                **selection_of(np.array([query])),
            }
        )
    layout: dict = {}
    if thumbs:
        span = float(np.ptp(coords, axis=0).max()) if len(coords) > 1 else 1.0
        size = max(span, 1e-9) * min(0.06, 1.2 / np.sqrt(len(coords)))
        layout["images"] = [
            {
                "source": url,
                "x": float(x),
                "y": float(y),
                "xref": "x",
                "yref": "y",
                "sizex": size,
                "sizey": size,
                "xanchor": "center",
                "yanchor": "middle",
                "layer": "below",
                "sizing": "contain",
            }
            for url, (x, y) in zip(thumb_urls, coords, strict=True)
        ]
    revision = revision or title
    selection_revision = selection_revision or revision
    layout.update(
        _LAYOUT,
        template=_template(_LAYOUT["template"]),
        title={"text": title},
        clickmode="event",
        dragmode="lasso",
        hovermode="closest",
        # Under the map, in rows: at 1000 px a legend beside it took a third of a 450 px map (issue #24).
        legend={
            "itemsizing": "constant",
            "title": {"text": "class" if labels is not None else ""},
            "orientation": "h",
            "x": 0,
            "xanchor": "left",
            "y": -0.04,
            "yanchor": "top",
        },
        uirevision=revision,
        selectionrevision=selection_revision,
        xaxis={"showticklabels": False, "title": {"text": "UMAP 1"}, "zeroline": False},
        yaxis={"showticklabels": False, "title": {"text": "UMAP 2"}, "zeroline": False},
    )
    # Built unvalidated: plotly's validators took 20 of the callback's 25 ms for these few literal traces (the
    # tests read the figure back through the same go.Figure attributes).
    return go.Figure(data=traces, layout=layout, _validate=False)
