"""Pure figure builders: data in, ``go.Figure`` out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

PALETTE = qualitative.Plotly + qualitative.D3 + qualitative.Alphabet
_LAYOUT = {"template": "plotly_white", "margin": {"l": 40, "r": 10, "t": 40, "b": 40}}


def empty_figure(text: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5, font={"size": 14})
    fig.update_layout(**_LAYOUT, xaxis={"visible": False}, yaxis={"visible": False})
    return fig


def umap_figure(
    coords: np.ndarray, labels: np.ndarray | None, query: int | None, results: list[int], title: str = ""
) -> go.Figure:
    """UMAP scatter (Scattergl), one trace per class; the query and its results highlighted.

    ``customdata`` of every point is its image id, so clicks and hovers map back to images.
    """
    coords = np.asarray(coords)
    ids = np.arange(len(coords))
    groups = np.asarray(labels).astype(str) if labels is not None else np.full(len(coords), "images")
    fig = go.Figure()
    for i, group in enumerate(pd.unique(groups)):
        mask = groups == group
        fig.add_trace(
            go.Scattergl(
                x=coords[mask, 0],
                y=coords[mask, 1],
                mode="markers",
                name=str(group),
                customdata=ids[mask].tolist(),  # plain JSON: Dash reads click/hover ids from it
                marker={"size": 7, "color": PALETTE[i % len(PALETTE)], "opacity": 0.75},
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
                marker={"size": 13, "color": "rgba(0,0,0,0)", "line": {"width": 2, "color": "#111"}},
                hovertemplate="result: image %{customdata}<extra></extra>",
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
                marker={"size": 20, "symbol": "star", "color": "#ffd400", "line": {"width": 1.5, "color": "#111"}},
                hovertemplate="query: image %{customdata}<extra></extra>",
            )
        )
    fig.update_layout(
        **_LAYOUT,
        title=title,
        clickmode="event",
        hovermode="closest",
        legend={"itemsizing": "constant"},
        uirevision=title,
        xaxis={"showticklabels": False, "title": "UMAP 1"},
        yaxis={"showticklabels": False, "title": "UMAP 2"},
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
    """Best score against extraction time per image, one point per model (marker size: parameters).

    ``<score_column> low`` / ``high`` columns, when present, draw the score's interval as error bars.
    """
    if table.empty or score_column not in table.columns or table[score_column].isna().all():
        return empty_figure("No scores to set against cost.")
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(table))]  # same colour per model as the line chart
    part = table.assign(_colour=colours).dropna(subset=[score_column])
    params = part["parameters"].fillna(0).astype(float)
    sizes = 10 + 30 * np.sqrt(params / max(params.max(), 1.0))
    fig = go.Figure(
        go.Scatter(
            x=part["ms/image"],
            y=part[score_column],
            mode="markers+text",
            text=part["model"],
            textposition="top center",
            marker={"size": sizes, "color": list(part["_colour"])},
            error_y=_error_bars(part, score_column, f"{score_column} low", f"{score_column} high"),
            customdata=np.stack([params, part["GFLOPs/image"].fillna(0)], axis=1),
            hovertemplate="%{text}<br>%{x:.2f} ms/image<br>"
            + score_column
            + " %{y:.3f}<br>%{customdata[0]:,.0f} parameters<br>%{customdata[1]:.3f} GFLOPs<extra></extra>",
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
