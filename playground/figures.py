"""Pure figure builders: data in, ``go.Figure`` out."""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Callable, Collection

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import qualitative

from playground.tables import PARAMS_RUN, PARAMS_WHOLE

PALETTE = qualitative.Plotly + qualitative.D3 + qualitative.Alphabet
_LAYOUT = {"template": "plotly_white", "margin": {"l": 40, "r": 10, "t": 40, "b": 40}}
# Compare's figures: the title starts below plotly's toolbar (about 30 px tall, top right, shown on hover), so that
# at any width the toolbar never covers it, and tick labels get the margin they need (long model names).
MODEBAR_ROOM = 32
# Each model's panel in the score-per-layer figure: panels per row, and the height of one row of panels.
LAYER_PANELS_PER_ROW = 3
_PANEL_HEIGHT = 300


def caption(title: str, note: str) -> str:
    """A figure title with a smaller second line (what the marks mean)."""
    return f"{title}<br><span style='font-size:11px'>{note}</span>"


def _compare_layout(title: str) -> dict:
    """``update_layout`` arguments of a Compare figure: the title at the figure's left edge under the toolbar's
    row (a second line from :func:`caption` gets its room too)."""
    # Plotly lifts a two-line title by about half a line: its pad makes up for it.
    lines = title.count("<br>")
    return {
        "template": "plotly_white",
        "margin": {"l": 50, "r": 20, "t": MODEBAR_ROOM + 36 + 28 * lines, "b": 40, "autoexpand": True},
        "title": {"text": title, "x": 0, "xanchor": "left", "xref": "container", "y": 1, "yref": "container",
                  "yanchor": "top", "pad": {"t": MODEBAR_ROOM + 14 * lines, "l": 12}, "font": {"size": 15}},
    }


def bold(text: str) -> str:
    """Plotly's markup for bold text (winners in labels and titles)."""
    return f"<b>{text}</b>"


def format_count(value: float) -> str:
    """A parameter count as a tick label: 500k, 1M, 2.5M, 130M."""
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    return f"{value / 1e3:g}k" if value >= 1e3 else f"{value:g}"


def format_ms(value: float) -> str:
    """A time per image as a tick label, with its unit: 0.5 ms, 20 ms, 1.5 s."""
    return f"{value / 1e3:g} s" if value >= 1e3 else f"{value:g} ms"


def log_ticks(log_range: list[float] | None, formatter: Callable[[float], str], max_ticks: int = 7) -> dict:
    """``tickvals`` / ``ticktext`` of a log axis over ``log_range`` (log10 bounds), each label with its unit.

    Plotly's own log ticks label the minor steps with their first digit only ("0.1 2 5 1 2 5 10 2"); here every
    tick is a whole number written out: the densest of 1-1.5-2-3-5-7, 1-2-5, 1-3 and 1 steps per decade that
    gives at most ``max_ticks`` ticks. Empty (plotly's default) without a range.
    """
    if not log_range:
        return {}
    low, high = log_range
    chosen: list[float] = []
    for steps in ((1, 1.5, 2, 3, 5, 7), (1, 2, 5), (1, 3), (1,)):
        values = [m * 10.0**e for e in range(math.floor(low), math.ceil(high) + 1) for m in steps]
        values = [float(f"{v:.6g}") for v in values if low <= math.log10(v) <= high]
        chosen = values
        if len(values) <= max_ticks:
            break
    return {"tickmode": "array", "tickvals": chosen, "ticktext": [formatter(v) for v in chosen]}


def _template(name: str) -> dict:
    """A plotly template by name, as the dict a figure's layout holds (what validation would have put there)."""
    return copy.deepcopy(_template_json(name))


@functools.cache
def _template_json(name: str) -> dict:
    return pio.templates[name].to_plotly_json()


def empty_figure(text: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5, font={"size": 14})
    fig.update_layout(**_LAYOUT, xaxis={"visible": False}, yaxis={"visible": False})
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


def _click_data(model: str, layer: str, metric: str, *extra) -> list:
    """A point's ``customdata``: [model, layer, metric, ...]. A click on a Compare chart opens that configuration
    in Search (``playground.views.compare.search_target`` reads the first three)."""
    return [model, layer, metric, *extra]


def _hline(y: float, dash: str, colour: str, text: str, position: str, axis: str = "") -> tuple[dict, dict | None]:
    """A horizontal line across a plot and its label: (shape, annotation or None), as ``fig.add_hline`` draws them
    but without its cost (about 0.1 s a call). ``axis`` is the subplot's suffix ("", "2", ...); ``position`` is
    "top left" or "bottom right"."""
    shape = {"type": "line", "xref": f"x{axis} domain", "x0": 0, "x1": 1, "yref": f"y{axis}", "y0": y, "y1": y,
             "line": {"dash": dash, "color": colour}}
    if not text:
        return shape, None
    vertical, horizontal = position.split()
    annotation = {"text": text, "showarrow": False, "xref": f"x{axis} domain", "x": 0 if horizontal == "left" else 1,
                  "xanchor": horizontal, "yref": f"y{axis}", "y": y, "yanchor": vertical}
    return shape, annotation


def layer_scores_figure(
    rows: pd.DataFrame, score: str, baseline: float | None = None, title: str = "", metric: str = ""
) -> go.Figure:
    """Score per layer: one panel per model, its layers by their Keras names in network order (shallow to deep).

    ``rows`` has columns model, layer, order and ``score`` (see ``tables.layer_scores``); with
    ``<score> low`` and ``<score> high`` columns too, each point carries its 95 % bootstrap interval as an
    error bar (and in its hover text). Each model's best layer is starred, its name in bold on the star and on
    the axis; the panel of the model with the highest score carries "★ best" in bold in its title. Panels share
    the score axis; each has its own layer axis, so a model with 3 layers (pixels) is not drawn as the shallow
    end of a deeper one. Every point's ``customdata`` starts with [model, layer, ``metric``] (see
    :func:`_click_data`): clicking it opens that configuration in Search.
    """
    if rows.empty:
        return empty_figure("No scores: the dataset has no labels, or nothing was computed.")
    low, high = f"{score} low", f"{score} high"
    models = list(dict.fromkeys(rows["model"]))
    tops = {model: rows.loc[rows["model"] == model, score].max() for model in models}
    scored = {model: value for model, value in tops.items() if pd.notna(value)}
    winner = max(scored, key=scored.get) if scored else None
    n_cols = min(len(models), LAYER_PANELS_PER_ROW)
    n_rows = math.ceil(len(models) / n_cols)
    # The panels' grid, as make_subplots would lay it out. The figure is built in one go.Figure call: through
    # make_subplots and per-panel calls (add_trace(row=, col=), update_xaxes, add_hline) it took 4x as long.
    h_gap, v_gap = 0.04, min(0.5, 150 / (n_rows * _PANEL_HEIGHT)) if n_rows > 1 else 0.0
    width, height = (1 - h_gap * (n_cols - 1)) / n_cols, (1 - v_gap * (n_rows - 1)) / n_rows
    traces, axes, shapes, annotations = [], {}, [], []
    for i, model in enumerate(models):
        suffix = "" if i == 0 else str(i + 1)  # the i-th panel, row by row
        left, top = (i % n_cols) * (width + h_gap), 1 - (i // n_cols) * (height + v_gap)
        annotations.append({"text": bold(f"{model} ★ best") if model == winner else model, "showarrow": False,
                            "xref": "paper", "yref": "paper", "x": left + width / 2, "y": top, "xanchor": "center",
                            "yanchor": "bottom", "font": {"size": 12}})
        part = rows[rows["model"] == model].sort_values("order")
        colour = PALETTE[i % len(PALETTE)]
        layers = [str(layer) for layer in part["layer"]]
        interval, hover = _interval_hover(part, low, high)
        traces.append(
            go.Scatter(
                x=layers,
                y=part[score],
                xaxis=f"x{suffix}",
                yaxis=f"y{suffix}",
                mode="lines+markers",
                name=model,
                line={"color": colour},
                marker={"size": 9},
                customdata=[_click_data(model, layer, metric, text) for layer, text in zip(layers, interval,
                                                                                           strict=True)],
                error_y=_error_bars(part, score, low, high, colour),
                hovertemplate=f"{model}<br>%{{x}}<br>{score} %{{y:.3f}}"
                + hover.replace("%{customdata}", "%{customdata[3]}")
                + "<br>click: open in Search<extra></extra>",
            )
        )
        ticktext = list(layers)
        if part[score].notna().any():
            best = int(np.nanargmax(part[score].to_numpy(dtype=float)))
            ticktext[best] = bold(layers[best])
            traces.append(
                go.Scatter(
                    x=[layers[best]],
                    y=[part[score].iloc[best]],
                    xaxis=f"x{suffix}",
                    yaxis=f"y{suffix}",
                    mode="markers+text",
                    showlegend=False,
                    marker={"symbol": "star", "size": 16, "color": colour, "line": {"width": 1, "color": "#111"}},
                    text=[bold(layers[best])],
                    textposition="top center",
                    textfont={"size": 10},
                    cliponaxis=False,
                    customdata=[_click_data(model, layers[best], metric)],
                    hovertemplate=f"best layer of {model}: %{{x}}<br>{score} %{{y:.3f}}"
                    "<br>click: open in Search<extra></extra>",
                )
            )
        axes[f"xaxis{suffix}"] = {"type": "category", "categoryorder": "array", "categoryarray": layers,
                                  "tickmode": "array", "tickvals": layers, "ticktext": ticktext, "tickangle": -40,
                                  "tickfont": {"size": 10}, "automargin": True,
                                  "domain": [max(0.0, left), min(1.0, left + width)],
                                  "anchor": f"y{suffix}"}
        axes[f"yaxis{suffix}"] = {"domain": [max(0.0, top - height), min(1.0, top)], "anchor": f"x{suffix}",
                                  "automargin": True,
                                  **({"title": {"text": score}} if i % n_cols == 0 else {"showticklabels": False}),
                                  **({"matches": "y"} if i else {})}  # one score axis for all panels
        if baseline is not None and np.isfinite(baseline):
            shape, annotation = _hline(baseline, "dash", "#888", f"random {baseline:.3f}" if i == 0 else "",
                                       "bottom right", suffix)
            shapes.append(shape)
            annotations += [annotation] if annotation else []
    return go.Figure(
        data=traces,
        layout={
            **_compare_layout(title or f"{score} per layer"),
            **axes,
            "shapes": shapes,
            "annotations": annotations,
            "height": MODEBAR_ROOM + 36 + n_rows * _PANEL_HEIGHT,
            "showlegend": False,
            "hovermode": "closest",
        },
    )


def class_heatmap(
    table: pd.DataFrame, score: str, targets: dict[str, tuple[str, str, str]] | None = None
) -> go.Figure:
    """Classes (rows) x models (columns) heatmap of a per-class score, values written in the cells.

    Each class's highest value among the models (the random column aside) is written in bold. ``targets`` maps
    a column to its (model, layer, metric): such a column is labelled with the model's name alone (its layer is in
    the hover text), so long names fit. A click on a cell reports its column (``x``), which names the
    configuration (``playground.views.compare.search_target``).
    """
    if table.empty:
        return empty_figure("No per-class scores (unlabeled dataset or nothing computed).")
    targets = targets or {}
    values = table.to_numpy(dtype=float)
    models = np.array([column != "random" for column in table.columns])
    best = np.full(values.shape, False)
    if models.any():
        part = np.where(models[None, :], values, np.nan)
        top = np.nanmax(np.where(np.isnan(part), -np.inf, part), axis=1, keepdims=True)
        best = models[None, :] & np.isfinite(part) & (part == top)

    def cell(v: float, winner: bool) -> str:
        return "" if np.isnan(v) else bold(f"{v:.2f}") if winner else f"{v:.2f}"

    columns = [str(column) for column in table.columns]
    labels = [targets[c][0] if c in targets else c for c in columns]  # the layer is in the hover text
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=columns,
            y=[str(i) for i in table.index],
            colorscale="Viridis",
            zmin=0,
            zmax=1,
            text=[[cell(v, w) for v, w in zip(row, flags, strict=True)] for row, flags in zip(values, best,
                                                                                              strict=True)],
            texttemplate="%{text}",
            textfont={"size": 10 if len(table.columns) <= 10 else 8},
            hovertemplate="%{y} / %{x}<br>" + score + " %{z:.3f}<br>click: open in Search<extra></extra>",
            colorbar={"title": {"text": score}, "thickness": 14},
        )
    )
    fig.update_layout(
        **_compare_layout(caption(f"{score} per class", "each model at its best layer; bold: best per class")),
        height=max(320, 28 * len(table) + 200),
        yaxis={"autorange": "reversed", "automargin": True},
        xaxis={"tickvals": columns, "ticktext": labels, "tickangle": 0 if len(columns) <= 3 else -45,
               "tickfont": {"size": 10}, "automargin": True},
    )
    return fig


_POSITIONS = ("top center", "bottom center", "middle right", "middle left", "top right", "top left",
              "bottom right", "bottom left")


def place_labels(
    x: Collection[float], y: Collection[float], labels: Collection[str], x_range: Collection[float],
    y_range: Collection[float], sizes: Collection[float] | float = 10, width: float = 400, height: float = 300,
    font: float = 11,
) -> list[str]:
    """A ``textposition`` per point that keeps each label off the other labels and markers and inside the plot.

    ``x`` and ``y`` are in axis units (log10 of the value on a log axis) over ``x_range`` and ``y_range``;
    ``sizes`` are marker diameters in px, ``width`` x ``height`` the plot area in px (the smallest it is drawn:
    a half-width figure at a 1000 px window), ``font`` the label size. Greedy: each label in turn takes the first
    of :data:`_POSITIONS` with the least overlap (estimated text widths; bold markup ignored).
    """
    xs, ys = np.asarray(list(x), dtype=float), np.asarray(list(y), dtype=float)
    n = len(xs)
    radii = np.broadcast_to(np.asarray(sizes, dtype=float), (n,)) / 2
    (x0, x1), (y0, y1) = x_range, y_range
    px = (xs - x0) / max(x1 - x0, 1e-12) * width
    py = (y1 - ys) / max(y1 - y0, 1e-12) * height  # screen y grows downwards
    obstacles = [(cx - r, cy - r, cx + r, cy + r) for cx, cy, r in zip(px, py, radii, strict=True)]

    def box(i: int, position: str) -> tuple[float, float, float, float]:
        text = re.sub(r"<[^>]+>", "", str(list(labels)[i]))
        w, h, r, cx, cy = 0.6 * font * len(text), 1.3 * font, radii[i], px[i], py[i]
        vertical, horizontal = position.split()
        top = {"top": cy - r - h, "bottom": cy + r, "middle": cy - h / 2}[vertical]
        left = {"center": cx - w / 2, "right": cx + (r if vertical == "middle" else r / 2),
                "left": cx - w - (r if vertical == "middle" else r / 2)}[horizontal]
        return left, top, left + w, top + h

    def overlap(a, b) -> float:
        return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))

    # A label must not sit right beside another model's marker either, or it reads as that marker's name (issue
    # #24: "efficientnet-lite1" beside lite0's dot): other markers count with this margin around them.
    margin = font

    def cost(i: int, candidate) -> float:
        inside = overlap(candidate, (0, 0, width, height))
        area = (candidate[2] - candidate[0]) * (candidate[3] - candidate[1])
        others = [(o[0] - margin, o[1] - margin, o[2] + margin, o[3] + margin) if j < n else o
                  for j, o in enumerate(obstacles) if j != i]
        return 2 * (area - inside) + sum(overlap(candidate, o) for o in others)

    positions = []
    for i in range(n):
        costs = [cost(i, box(i, position)) for position in _POSITIONS]
        chosen = _POSITIONS[int(np.argmin(costs))]
        positions.append(chosen)
        obstacles.append(box(i, chosen))
    return positions


def _value_range(values: Collection[float], pad: float = 0.08) -> list[float]:
    """A linear axis range over ``values`` (NaN ignored) with ``pad`` of the span on each side."""
    finite = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if finite.size == 0:
        return [0.0, 1.0]
    low, high = float(finite.min()), float(finite.max())
    span = max(high - low, 0.05)
    return [low - pad * span, high + pad * span]


def cost_quality_figure(table: pd.DataFrame, score_column: str, metric: str = "") -> go.Figure:
    """Best score against extraction time per image, one point per model (marker size: the model's size in MB,
    ``model MB``: a quantised variant's point is smaller than its float32 model's; the caption under the title
    says so, with the largest model's size).

    ``<score_column> low`` / ``high`` columns, when present, draw the score's interval as error bars. The model
    with the highest score is labelled in bold. Each point's ``customdata`` starts with [model, best layer,
    ``metric``] (:func:`_click_data`).
    """
    if table.empty or score_column not in table.columns or table[score_column].isna().all():
        return empty_figure("No scores to set against cost.")
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(table))]  # same colour per model as the line chart
    part = table.assign(_colour=colours).dropna(subset=[score_column])
    params = part[PARAMS_WHOLE].fillna(0).astype(float)
    megabytes = part["model MB"].fillna(0).astype(float) if "model MB" in part else params * 4 / 1e6
    sizes = 10 + 30 * np.sqrt(megabytes / max(megabytes.max(), 1e-9))
    winner = part[score_column].astype(float).idxmax()
    layers = part["best layer"] if "best layer" in part else pd.Series("", index=part.index)
    x_range = _log_range(part["ms/image"])
    low, high = f"{score_column} low", f"{score_column} high"
    y_range = _value_range([*part[score_column], *part.get(low, []), *part.get(high, [])])
    names = [bold(m) if i == winner else m for i, m in zip(part.index, part["model"], strict=True)]
    times = part["ms/image"].astype(float)
    positions = (
        place_labels(np.log10(times.where(times > 0)), part[score_column], names, x_range, y_range, sizes)
        if x_range else "top center"
    )
    fig = go.Figure(
        go.Scatter(
            x=part["ms/image"],
            y=part[score_column],
            mode="markers+text",
            text=names,
            textposition=positions,
            textfont={"size": 11},
            cliponaxis=False,
            marker={"size": sizes, "color": list(part["_colour"])},
            error_y=_error_bars(part, score_column, low, high),
            customdata=[
                _click_data(model, str(layer or ""), metric, p, g, mb)
                for model, layer, p, g, mb in zip(part["model"], layers.fillna(""), params,
                                                  part["GFLOPs/image"].fillna(0), megabytes, strict=True)
            ],
            hovertemplate="%{text}<br>%{x:.2f} ms/image<br>"
            + score_column
            + " %{y:.3f} (best layer %{customdata[1]})<br>%{customdata[3]:,.0f} " + PARAMS_WHOLE + "<br>"
            + "%{customdata[4]:.3f} GFLOPs<br>%{customdata[5]:.2f} MB model file<br>click: open in Search"
            + "<extra></extra>",
        )
    )
    note = (f"marker area: model file size (largest {megabytes.max():.1f} MB); bold: best"
            if megabytes.max() > 0 else "bold: best")
    fig.update_layout(
        **_compare_layout(caption("Quality against cost", note)),
        xaxis={"title": "extraction time per image (log axis)", "type": "log", "range": x_range,
               **log_ticks(x_range, format_ms), "automargin": True},
        yaxis={"title": score_column, "range": y_range, "automargin": True},
        hovermode="closest",
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
    ranking's score (``baseline``) as a dashed one. The model with the highest score is labelled in bold; the
    x axis is labelled in parameters (500k, 1M, 2M). Each point's ``customdata`` is [model, layer, metric,
    interval text] (:func:`_click_data`).
    """
    if table.empty or score not in table.columns or table[score].isna().all():
        return empty_figure("No scores to set against model size.")
    low, high = f"{score} low", f"{score} high"
    part = table.dropna(subset=[score])
    sized = part[part["parameters"].fillna(0) > 0]
    winner = part.loc[part[score].astype(float).idxmax(), "model"]
    x_range = _log_range(sized["parameters"])
    y_range = _value_range([*part[score], *part.get(low, []), *part.get(high, []),
                            *([baseline] if baseline is not None else [])])
    groups = [(family, members.sort_values("parameters", kind="stable"))
              for family, members in sized.groupby("family", sort=False)]
    every = pd.concat([members for _, members in groups]) if groups else sized
    placed = (
        place_labels(np.log10(every["parameters"].astype(float)), every[score], every["model"], x_range, y_range)
        if x_range else ["top center"] * len(every)
    )
    fig = go.Figure()
    for i, (family, members) in enumerate(groups):
        positions, placed = placed[: len(members)], placed[len(members):]
        colour = PALETTE[i % len(PALETTE)]
        interval, hover = _interval_hover(members, low, high)
        whole = members.get(PARAMS_WHOLE, pd.Series([np.nan] * len(members), index=members.index))
        whole_text = ["?" if pd.isna(n) else f"{n:,.0f}" for n in whole]
        fig.add_trace(
            go.Scatter(
                x=members["parameters"],
                y=members[score],
                mode="lines+markers+text" if len(members) > 1 else "markers+text",
                name=family,
                text=[bold(m) if m == winner else m for m in members["model"]],
                textposition=positions,  # off the other names and markers (place_labels)
                textfont={"size": 10},
                cliponaxis=False,
                line={"color": colour},
                marker={"size": 10, "color": colour},
                error_y=_error_bars(members, score, low, high, colour),
                customdata=[
                    [*_click_data(m, layer, metric, text), n_whole]
                    for m, layer, metric, text, n_whole in zip(members["model"], members["layer"],
                                                               members["metric"], interval, whole_text, strict=True)
                ],
                hovertemplate="%{text}<br>%{x:,.0f} " + PARAMS_RUN + " (up to its deepest layer computed)<br>"
                "%{customdata[4]} " + PARAMS_WHOLE + "<br>best: %{customdata[1]} / %{customdata[2]}<br>"
                + score
                + " %{y:.3f}"
                + hover.replace("%{customdata}", "%{customdata[3]}")
                + "<br>click: open in Search<extra></extra>",
            )
        )
    lines = [_hline(row[score], "dot", "#555", f"{row['model']} (no parameters) {row[score]:.3f}", "top left")
             for _, row in part[part["parameters"].fillna(0) <= 0].iterrows()]
    if baseline is not None and np.isfinite(baseline):
        lines.append(_hline(baseline, "dash", "#888", f"random {baseline:.3f}", "bottom right"))
    fig.update_layout(
        shapes=[shape for shape, _ in lines],
        annotations=[annotation for _, annotation in lines if annotation],
        **_compare_layout(title or f"Model size against best {score}"),
        xaxis={"title": f"{PARAMS_RUN} (to the deepest layer; log axis)", "type": "log",
               "range": x_range, **log_ticks(x_range, format_count), "automargin": True},
        yaxis={"title": score, "range": y_range, "automargin": True},
        legend={"orientation": "h", "y": -0.25, "x": 0},
        hovermode="closest",
    )
    return fig
