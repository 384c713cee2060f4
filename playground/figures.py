"""Pure figure builders: data in, ``go.Figure`` out."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

PALETTE = qualitative.Plotly + qualitative.D3 + qualitative.Alphabet
# Classes on the embeddings map. Ten colours from the colour-blind-safe schemes of Paul Tol and of Okabe & Ito,
# chosen to keep the smallest CIEDE2000 difference between any two of them, the white background and the
# query's yellow star as large as possible (11.7) under normal, protan, deutan and tritan vision (Machado et al.
# 2009 simulation; tests/test_playground_logic.py checks it), ordered so that the first few are the most
# distinct. Classes 11 to 20 reuse the colours with another marker shape, so 20 classes stay distinct.
CLASS_COLOURS = (
    "#332288",  # indigo
    "#77AADD",  # light blue
    "#117733",  # green
    "#EE3377",  # magenta
    "#BBBBBB",  # grey
    "#999933",  # olive
    "#AA4499",  # purple
    "#99DDFF",  # pale cyan
    "#882255",  # wine
    "#CC79A7",  # pink
)
CLASS_SYMBOLS = ("circle", "diamond", "square", "triangle-up")
QUERY_COLOUR = "#FFD400"
# Draw thumbnails instead of dots up to this many points (beyond, hundreds of images clutter and load slowly).
MAX_THUMBNAIL_POINTS = 500
_LAYOUT = {"template": "plotly_white", "margin": {"l": 40, "r": 10, "t": 40, "b": 40}}


def class_style(index: int) -> tuple[str, str]:
    """(colour, marker symbol) of the ``index``-th class: distinct for the first 20, then repeating."""
    n = len(CLASS_COLOURS)
    return CLASS_COLOURS[index % n], CLASS_SYMBOLS[(index // n) % len(CLASS_SYMBOLS)]


def empty_figure(text: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5, font={"size": 14})
    fig.update_layout(**_LAYOUT, xaxis={"visible": False}, yaxis={"visible": False})
    return fig


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
    """UMAP scatter (Scattergl), one trace per class; the query and its results highlighted.

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

    fig = go.Figure()
    for i, group in enumerate(pd.unique(groups)):
        mask = groups == group
        colour, symbol = class_style(i)
        fig.add_trace(
            go.Scattergl(
                x=coords[mask, 0],
                y=coords[mask, 1],
                mode="markers",
                name=str(group),
                customdata=ids[mask].tolist(),  # plain JSON: Dash reads click/hover ids from it
                marker={
                    "size": 6 if thumbs else 8,
                    "color": colour,
                    "symbol": symbol,
                    "opacity": 0.9,
                    "line": {"width": 0.6, "color": "#ffffff" if thumbs else "rgba(0,0,0,0.55)"},
                },
                selected={"marker": {"opacity": 1.0}},
                unselected={"marker": {"opacity": 0.15}},
                **selection_of(ids[mask]),
                hovertemplate=f"{group}<br>image %{{customdata}}<extra></extra>"
                if labels is not None
                else "image %{customdata}<extra></extra>",
            )
        )
    if results:
        sel = np.asarray(results, dtype=int)
        fig.add_trace(
            go.Scattergl(
                x=coords[sel, 0],
                y=coords[sel, 1],
                mode="markers",
                name="top results",
                customdata=sel.tolist(),
                marker={"size": 14, "color": "rgba(0,0,0,0)", "line": {"width": 2, "color": "#111"}},
                hovertemplate="result: image %{customdata}<extra></extra>",
                **selection_of(sel),
            )
        )
    if query is not None and 0 <= query < len(coords):
        fig.add_trace(
            go.Scattergl(
                x=[coords[query, 0]],
                y=[coords[query, 1]],
                mode="markers",
                name="query",
                customdata=[int(query)],
                marker={"size": 20, "symbol": "star", "color": QUERY_COLOUR, "line": {"width": 1.5, "color": "#111"}},
                hovertemplate="query: image %{customdata}<extra></extra>",
                **selection_of(np.array([query])),
            )
        )
    layout: dict = {}
    if thumbs:
        span = float(np.ptp(coords, axis=0).max()) if len(coords) > 1 else 1.0
        size = max(span, 1e-9) * min(0.06, 1.2 / np.sqrt(len(coords)))
        layout["images"] = [
            {"source": url, "x": float(x), "y": float(y), "xref": "x", "yref": "y", "sizex": size, "sizey": size,
             "xanchor": "center", "yanchor": "middle", "layer": "below", "sizing": "contain"}
            for url, (x, y) in zip(thumb_urls, coords, strict=True)
        ]
    revision = revision or title
    selection_revision = selection_revision or revision
    fig.update_layout(
        **_LAYOUT,
        **layout,
        title=title,
        clickmode="event",
        dragmode="lasso",
        hovermode="closest",
        legend={"itemsizing": "constant", "title": {"text": "class" if labels is not None else ""}},
        uirevision=revision,
        selectionrevision=selection_revision,
        xaxis={"showticklabels": False, "title": "UMAP 1", "zeroline": False},
        yaxis={"showticklabels": False, "title": "UMAP 2", "zeroline": False},
    )
    return fig


def _error_bars(part: pd.DataFrame, value: str, low: str, high: str, colour: str | None = None) -> dict | None:
    """Asymmetric plotly error bars from interval columns, or None when the rows hold no interval."""
    if low not in part.columns or high not in part.columns or part[[low, high]].isna().all().all():
        return None
    y = part[value].to_numpy(dtype=float)
    return {
        "type": "data",
        "symmetric": False,
        "array": np.nan_to_num(part[high].to_numpy(dtype=float) - y).tolist(),
        "arrayminus": np.nan_to_num(y - part[low].to_numpy(dtype=float)).tolist(),
        "thickness": 1.2,
        "width": 3,
        **({"color": colour} if colour else {}),
    }


def _interval_hover(part: pd.DataFrame, low: str, high: str) -> tuple[list[str], str]:
    """Per-point interval text for ``customdata`` and the hover line that shows it ("" without intervals)."""
    if low not in part.columns or high not in part.columns:
        return [""] * len(part), ""
    bounds = zip(part[low], part[high], strict=True)
    return ["" if pd.isna(lo) or pd.isna(hi) else f" [{lo:.3f}, {hi:.3f}]" for lo, hi in bounds], "%{customdata}"


def layer_scores_figure(rows: pd.DataFrame, score: str, baseline: float | None = None, title: str = "") -> go.Figure:
    """Score per layer, one line per model, layers in network order; each model's best layer starred.

    ``rows`` has columns model, layer, order and ``score`` (see ``tables.layer_scores``); with
    ``<score> low`` and ``<score> high`` columns too, each point carries its 95 % bootstrap interval as an
    error bar (and in its hover text).
    """
    if rows.empty:
        return empty_figure("No scores: the dataset has no labels, or nothing was computed.")
    low, high = f"{score} low", f"{score} high"
    fig = go.Figure()
    for i, (model, part) in enumerate(rows.groupby("model", sort=False)):
        part = part.sort_values("order")
        colour = PALETTE[i % len(PALETTE)]
        x = np.arange(1, len(part) + 1)
        interval, hover = _interval_hover(part, low, high)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=part[score],
                mode="lines+markers",
                name=model,
                line={"color": colour},
                text=part["layer"],
                customdata=interval,
                error_y=_error_bars(part, score, low, high, colour),
                hovertemplate=f"{model}<br>%{{text}}<br>{score} %{{y:.3f}}{hover}<extra></extra>",
            )
        )
        if part[score].notna().any():
            best = int(np.nanargmax(part[score].to_numpy(dtype=float)))
            fig.add_trace(
                go.Scatter(
                    x=[x[best]],
                    y=[part[score].iloc[best]],
                    mode="markers+text",
                    showlegend=False,
                    marker={"symbol": "star", "size": 16, "color": colour, "line": {"width": 1, "color": "#111"}},
                    text=[part["layer"].iloc[best]],
                    textposition="top center",
                    textfont={"size": 10},
                    hovertemplate=f"best layer of {model}: %{{text}}<br>{score} %{{y:.3f}}<extra></extra>",
                )
            )
    if baseline is not None and np.isfinite(baseline):
        fig.add_hline(
            y=baseline,
            line_dash="dash",
            line_color="#888",
            annotation_text=f"random {baseline:.3f}",
            annotation_position="bottom right",
        )
    fig.update_layout(
        **_LAYOUT,
        title=title or f"{score} per layer",
        xaxis={"title": "layer (shallow → deep)", "dtick": 1},
        yaxis={"title": score},
    )
    return fig


def class_heatmap(table: pd.DataFrame, score: str) -> go.Figure:
    """Classes (rows) x models (columns) heatmap of a per-class score, values written in the cells."""
    if table.empty:
        return empty_figure("No per-class scores (unlabeled dataset or nothing computed).")
    values = table.to_numpy(dtype=float)
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=list(table.columns),
            y=[str(i) for i in table.index],
            colorscale="Viridis",
            zmin=0,
            zmax=1,
            text=np.vectorize(lambda v: "" if np.isnan(v) else f"{v:.2f}")(values),
            texttemplate="%{text}",
            hovertemplate="%{y} / %{x}<br>" + score + " %{z:.3f}<extra></extra>",
            colorbar={"title": score},
        )
    )
    fig.update_layout(
        **_LAYOUT,
        title=f"{score} per class (each model at its best layer)",
        height=max(320, 28 * len(table) + 160),
        yaxis={"autorange": "reversed"},
    )
    return fig


def cost_quality_figure(table: pd.DataFrame, score_column: str) -> go.Figure:
    """Best score against extraction time per image, one point per model (marker size: the model's size in MB,
    ``model MB``: a quantised variant's point is smaller than its float32 model's).

    ``<score_column> low`` / ``high`` columns, when present, draw the score's interval as error bars.
    """
    if table.empty or score_column not in table.columns or table[score_column].isna().all():
        return empty_figure("No scores to set against cost.")
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(table))]  # same colour per model as the line chart
    part = table.assign(_colour=colours).dropna(subset=[score_column])
    params = part["parameters"].fillna(0).astype(float)
    megabytes = part["model MB"].fillna(0).astype(float) if "model MB" in part else params * 4 / 1e6
    sizes = 10 + 30 * np.sqrt(megabytes / max(megabytes.max(), 1e-9))
    fig = go.Figure(
        go.Scatter(
            x=part["ms/image"],
            y=part[score_column],
            mode="markers+text",
            text=part["model"],
            textposition="top center",
            marker={"size": sizes, "color": list(part["_colour"])},
            error_y=_error_bars(part, score_column, f"{score_column} low", f"{score_column} high"),
            customdata=np.stack([params, part["GFLOPs/image"].fillna(0), megabytes], axis=1),
            hovertemplate="%{text}<br>%{x:.2f} ms/image<br>"
            + score_column
            + " %{y:.3f}<br>%{customdata[0]:,.0f} parameters<br>%{customdata[1]:.3f} GFLOPs"
            + "<br>%{customdata[2]:.2f} MB model file<extra></extra>",
        )
    )
    fig.update_layout(
        **_LAYOUT,
        title="Quality against cost",
        xaxis={"title": "extraction ms/image (log)", "type": "log", "range": _log_range(part["ms/image"])},
        yaxis={"title": score_column},
    )
    return fig


def _log_range(values: pd.Series) -> list[float] | None:
    """A log-axis range with room for marker labels on both sides."""
    positive = values[values > 0].astype(float)
    if positive.empty:
        return None
    low, high = np.log10(positive.min()), np.log10(positive.max())
    return [low - 0.4, high + 0.4]


def family_figure(table: pd.DataFrame, score: str, baseline: float | None = None, title: str = "") -> go.Figure:
    """Parameters (log x) against each model's best score: one line per family of scaled variants.

    ``table`` has columns model, family, parameters, layer, metric and ``score`` (see ``tables.family_table``),
    optionally ``<score> low`` / ``<score> high`` for error bars. Models of one family (EfficientNet-Lite0/1/2)
    are joined smallest first; a model alone in its family is a single point. Models without parameters (raw
    pixels) have no place on a log axis: each is drawn as a dotted horizontal line at its score, and the random
    ranking's score (``baseline``) as a dashed one.
    """
    if table.empty or score not in table.columns or table[score].isna().all():
        return empty_figure("No scores to set against model size.")
    low, high = f"{score} low", f"{score} high"
    part = table.dropna(subset=[score])
    sized = part[part["parameters"].fillna(0) > 0]
    fig = go.Figure()
    for i, (family, members) in enumerate(sized.groupby("family", sort=False)):
        members = members.sort_values("parameters", kind="stable")
        colour = PALETTE[i % len(PALETTE)]
        interval, hover = _interval_hover(members, low, high)
        fig.add_trace(
            go.Scatter(
                x=members["parameters"],
                y=members[score],
                mode="lines+markers+text" if len(members) > 1 else "markers+text",
                name=family,
                text=members["model"],
                # Neighbours on a curve take turns above and below it, so that their names do not overlap.
                textposition=["top center" if j % 2 == 0 else "bottom center" for j in range(len(members))],
                textfont={"size": 10},
                line={"color": colour},
                marker={"size": 10, "color": colour},
                error_y=_error_bars(members, score, low, high, colour),
                customdata=np.stack([members["layer"], members["metric"], interval], axis=1),
                hovertemplate="%{text}<br>%{x:,.0f} parameters<br>best: %{customdata[0]} / %{customdata[1]}<br>"
                + score
                + " %{y:.3f}"
                + hover.replace("%{customdata}", "%{customdata[2]}")
                + "<extra></extra>",
            )
        )
    for _, row in part[part["parameters"].fillna(0) <= 0].iterrows():
        fig.add_hline(
            y=row[score],
            line_dash="dot",
            line_color="#555",
            annotation_text=f"{row['model']} (no parameters) {row[score]:.3f}",
            annotation_position="top left",
        )
    if baseline is not None and np.isfinite(baseline):
        fig.add_hline(
            y=baseline,
            line_dash="dash",
            line_color="#888",
            annotation_text=f"random {baseline:.3f}",
            annotation_position="bottom right",
        )
    fig.update_layout(
        **_LAYOUT,
        title=title or f"Model size against best {score}",
        xaxis={"title": "parameters (log)", "type": "log", "range": _log_range(sized["parameters"])},
        yaxis={"title": score},
    )
    return fig
