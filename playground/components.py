"""Small shared pieces of layout: controls, graphs, thumbnails, result cards, duplicate badges, messages, score
tables, the image viewer and the neighbour list."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any
from urllib.parse import quote

import pandas as pd
from dash import dcc, html

from playground import ids
from playground.duplicate_tables import DUPLICATE_KINDS, LABELS_DIFFER, label_issue_text
from playground.ranking import WEAK_MATCH_QUANTILE, DistanceReference, Result, closeness
from playground.tables import interval_columns

THUMB_ROUTE = "/thumbs"
IMAGE_ROUTE = "/images"  # full-size images (downscaled to at most playground.images.MAX_SIDE px)

# Every graph's modebar, offline: no "Share chart..." button (it uploads the chart to Plotly Cloud), no Plotly
# logo, and no cloud address for anything to be sent to. Use ``graph_config()`` or ``graph()``.
GRAPH_CONFIG: dict[str, Any] = {
    "displaylogo": False,
    "showSendToCloud": False,
    "plotlyServerURL": "",
    "modeBarButtonsToRemove": ["sendChartToCloud", "sendDataToCloud"],
    "toImageButtonOptions": {"format": "png", "scale": 2},
}


def graph_config(**overrides: Any) -> dict[str, Any]:
    """:data:`GRAPH_CONFIG` with a graph's own additions (``scrollZoom=True``, ...); the cloud stays off."""
    config = {**GRAPH_CONFIG, **overrides}
    extra = overrides.get("modeBarButtonsToRemove", [])
    removed = list(dict.fromkeys([*GRAPH_CONFIG["modeBarButtonsToRemove"], *extra]))
    config.update(displaylogo=False, showSendToCloud=False, plotlyServerURL="", modeBarButtonsToRemove=removed)
    return config


def graph(component_id: str, config: dict[str, Any] | None = None, **kwargs: Any) -> dcc.Graph:
    """A ``dcc.Graph`` with :func:`graph_config` (``config`` holds the graph's own additions)."""
    return dcc.Graph(id=component_id, config=graph_config(**(config or {})), **kwargs)


def thumb_url(dataset: str, image_id: int) -> str:
    return f"{THUMB_ROUTE}/{quote(dataset)}/{int(image_id)}.jpg"


def image_url(dataset: str, image_id: int) -> str:
    """The full-size image (at most ``images.MAX_SIDE`` px, JPEG) of a dataset image."""
    return f"{IMAGE_ROUTE}/{quote(dataset)}/{int(image_id)}.jpg"


def control(label: str, component: Any, class_name: str = "", component_id: str | None = None) -> html.Div:
    """A labelled control; ``component_id`` ties the label to it (``for``), for screen readers and clicks."""
    return html.Div(
        [html.Label(label, className="control-label", htmlFor=component_id, id=f"{component_id}-label"
                    if component_id else None), component],
        className=f"control {class_name}",
    )


def label_text(label: str | None) -> list[Any]:
    """A class label with line breaks allowed only after its underscores (``computer_<wbr>hardware``)."""
    if not label:
        return []
    parts = str(label).split("_")
    out: list[Any] = []
    for i, part in enumerate(parts):
        if i < len(parts) - 1:
            out += [part + "_", html.Wbr()]
        else:
            out.append(part)
    return out


def format_distance(distance: float | None) -> str:
    """A distance with four significant digits, without exponent from 0.0001 up ("0.3512", "12.31", "1,234")."""
    if distance is None or not math.isfinite(distance):
        return "—"
    magnitude = abs(distance)
    if magnitude >= 1000:
        return f"{distance:,.0f}"
    if magnitude >= 1:
        return f"{distance:.{3 - int(math.floor(math.log10(magnitude)))}f}"
    return f"{distance:#.4g}"


def zoom_button(image_id: int, where: str, label: str | None = None) -> html.Button:
    """A small button that opens the image viewer on a dataset image (``where``: keeps ids unique per view)."""
    name = f"image {image_id}" + (f" ({label})" if label else "")
    return html.Button(
        "⤢",
        id={"type": ids.VIEW_IMAGE, "where": where, "index": int(image_id)},
        className="zoom-button",
        title=f"Show {name} full size",
        n_clicks=0,
        **{"aria-label": f"Show {name} full size"},
    )


def message(text: Any, kind: str = "info") -> html.Div:
    """A notice in the page: kind is info, warning or error."""
    return html.Div(text, className=f"message message-{kind}", role="alert" if kind == "error" else None)


def thumbnail(dataset: str, image_id: int, label: str | None = None, size: str = "") -> html.Img:
    alt = f"image {image_id}" + (f" ({label})" if label else "")
    return html.Img(src=thumb_url(dataset, image_id), alt=alt, title=alt, className=f"thumb {size}")


def pick_button(dataset: str, image_id: int, label: str | None, selected: bool = False) -> html.Button:
    """A clickable thumbnail that makes its image the query."""
    return html.Button(
        thumbnail(dataset, image_id, label),
        id={"type": ids.PICK, "index": int(image_id)},
        className="grid-item" + (" selected" if selected else ""),
        title=f"Use image {image_id}" + (f" ({label})" if label else "") + " as the query",
        n_clicks=0,
    )


def _evidence(row: dict[str, Any]) -> str:
    """Why a pair is a duplicate, in words (a badge's tooltip)."""
    if row["kind"] == "exact":
        return "the same pixels"
    if row["kind"] == "near":
        return f"perceptual hashes {int(row['phash_distance'])} of 64 bits apart"
    return f"feature distance {row['distance']:.3g}, far below this layer's typical nearest neighbour"


def duplicate_badges(evidence: list[dict[str, Any]] | None, partner: str = "the query") -> list[html.Span]:
    """Badges of one duplicate pair: its strongest kind, and "look alike, labels differ" across classes.

    Parameters
    ----------
    evidence : the pair's rows from ``duplicate_tables.duplicates_of`` (strongest kind first); None or [] for no badge
    partner : who the pair is formed with, for the tooltip
    """
    if not evidence:
        return []
    kind = evidence[0]["kind"]
    title = f"A duplicate of {partner}: " + "; ".join(_evidence(row) for row in evidence) + "."
    badges = [html.Span(DUPLICATE_KINDS[kind], className=f"badge badge-{kind}", title=title)]
    if any(row["cross_class"] for row in evidence):
        badges.append(
            html.Span(
                LABELS_DIFFER,
                className="badge badge-differ",
                title="The two images look alike but carry different labels. On its own that is weak evidence of a "
                "wrong label (close pairs are common in shallow or untrained layers); the label check (cleanlab) "
                "flags the labels that are probably wrong.",
            )
        )
    return badges


def label_issue_badge(issue: dict[str, Any] | None) -> html.Span | None:
    """The badge of an image whose label confident learning finds probably wrong
    (``duplicate_tables.label_issues_by_id``)."""
    if not issue:
        return None
    return html.Span(
        label_issue_text(issue),
        className="badge badge-issue",
        title=f"Given label {issue['label']}. A linear classifier (shrinkage LDA) on a trained deep layer's "
        "features, cross-validated so that it never saw this image's label, gives that label little probability "
        f"(cleanlab confident learning; label quality {float(issue['quality']):.3f}). Check the image and fix the "
        "label if it is wrong.",
    )


def _bar_title(result: Result, metric: str | None, fraction: float, near: float, far: float) -> str:
    name = f"{metric} distance" if metric else "distance"
    text = f"{name} {format_distance(result.distance)}"
    if metric == "cosine":
        text += f" (cosine similarity {result.similarity:.4f})"
    if far > near:
        text += (f". Bar: {fraction:.0%} of the way from the farthest result shown ({format_distance(far)}) "
                 f"to the closest ({format_distance(near)}).")
    return text


def result_card(
    dataset: str,
    result: Result,
    clickable: bool = True,
    duplicate: list[dict[str, Any]] | None = None,
    metric: str | None = None,
    fraction: float = 1.0,
    span: tuple[float, float] = (0.0, 0.0),
    pick_type: str = ids.RESULT_PICK,
    where: str = "results",
    issue: dict[str, Any] | None = None,
    closer: float | None = None,
) -> html.Div:
    """One ranked result: thumbnail, rank, its distance with the metric named, a bar placing it between the
    farthest (empty) and the closest (full) result shown, label, same/other class mark, a full-size button,
    and duplicate badges when the result and the query form a duplicate pair (``duplicate``: that pair's rows).

    ``fraction`` is the result's :func:`~playground.ranking.closeness` and ``span`` the (closest, farthest)
    distances of its result set; ``pick_type`` is the id type of the thumbnail button (clicks make the image
    the query) and ``where`` keeps the full-size buttons' ids unique per view.
    """
    if result.same_class is None:
        mark, mark_class = "", ""
    elif result.same_class:
        mark, mark_class = "✓ same class", "same"
    else:
        mark, mark_class = "✗ other class", "other"
    image = thumbnail(dataset, result.image_id, result.label)
    if clickable:
        image = html.Button(
            image,
            id={"type": pick_type, "index": result.image_id},
            className="result-pick",
            title="Search with this image",
            n_clicks=0,
        )
    title = _bar_title(result, metric, fraction, *span)
    absolute = None
    if closer is not None and math.isfinite(closer):
        absolute = closer_text(closer)
        title = f"{absolute} in this collection (same model, layer and metric). {title}"
    return html.Div(
        [
            html.Div(f"#{result.rank}", className="rank"),
            zoom_button(result.image_id, where, result.label),
            image,
            html.Div(
                [html.Div(className="bar-fill", style={"width": f"{100 * fraction:.1f}%"})],
                className="bar",
                title=title,
                role="img",
                **{"aria-label": f"{fraction:.0%} of the way from the farthest result shown to the closest"},
            ),
            html.Div(
                [html.Span(metric or "distance", className="metric-name"), " ", format_distance(result.distance)],
                className="distance",
                title=title,
            ),
            html.Div(absolute, className="closer-than", title=title) if absolute else None,
            html.Div(label_text(result.label), className="label"),
            html.Div(mark, className=f"mark {mark_class}") if mark else None,
            html.Div(duplicate_badges(duplicate), className="badges") if duplicate else None,
            html.Div(label_issue_badge(issue), className="badges") if issue else None,
        ],
        className=f"result-card {mark_class}",
        **{
            "data-image-id": str(result.image_id),
            "data-same": "" if result.same_class is None else str(result.same_class).lower(),
            "data-duplicate": duplicate[0]["kind"] if duplicate else "",
            "data-distance": repr(float(result.distance)),
            "data-bar": f"{fraction:.4f}",
        },
    )


def results_grid(
    dataset: str,
    results: list[Result],
    clickable: bool = True,
    duplicates: dict[int, list[dict[str, Any]]] | None = None,
    metric: str | None = None,
    pick_type: str = ids.RESULT_PICK,
    where: str = "results",
    issues: dict[int, dict[str, Any]] | None = None,
    reference: DistanceReference | None = None,
) -> html.Div:
    """Result cards in rank order; ``duplicates`` maps a result id to its duplicate pair with the query and
    ``issues`` an image id to its label issue (``duplicate_tables.label_issues_by_id``).

    Each card's bar is its :func:`~playground.ranking.closeness` within these results.
    """
    duplicates = duplicates or {}
    distances = [r.distance for r in results]
    fractions = closeness(distances)
    finite = [d for d in distances if math.isfinite(d)]
    span = (min(finite), max(finite)) if finite else (0.0, 0.0)
    return html.Div(
        [
            result_card(dataset, r, clickable, duplicates.get(r.image_id), metric, float(f), span, pick_type, where,
                        (issues or {}).get(r.image_id),
                        None if reference is None else reference.closer_than(r.distance))
            for r, f in zip(results, fractions, strict=True)
        ],
        className="results-grid",
    )


def closer_text(share: float) -> str:
    """``closer than 97 % of pairs``: a result's distance against the collection's own pairs. Floors, so that
    "100 %" means no pair at all is closer."""
    return f"closer than {math.floor(100 * share)} % of pairs"


def match_strength_note(results: Sequence[Result], reference: DistanceReference | None) -> html.P | None:
    """A warning line when even the best result is far: farther than most images are from their nearest
    neighbour in this collection (``DistanceReference.weak``)."""
    if not results or reference is None or not reference.weak(results[0].distance):
        return None
    share = reference.closer_than(results[0].distance)
    return html.P(
        f"Weak match: even the best result ({format_distance(results[0].distance)}) is farther than "
        f"{100 * WEAK_MATCH_QUANTILE:.0f} % of this collection's images are from their nearest neighbour "
        f"(it is only {closer_text(share)}). Nothing here may look like the query.",
        className="hint weak-match",
    )


def scale_note(metric: str | None) -> html.P:
    """What the number and the bar of a result card mean (under the results)."""
    return html.P(
        f"Each card shows the {metric or ''} distance to the query (smaller is closer), how many of the "
        "collection's own image pairs are farther apart (an absolute scale), and a bar placing it between the "
        "farthest result shown (empty) and the closest (full): a full bar on #1 says nothing of how good it is.",
        className="hint",
    )


def neighbour_list(
    dataset: str, results: Sequence[Result], metric: str | None, where: str = "neighbours"
) -> html.Ol:
    """A compact ranked list (thumbnail, label, distance, bar, same/other class) whose thumbnails make their
    image the query; for the side of the embeddings map."""
    fractions = closeness([r.distance for r in results])
    items = []
    for r, fraction in zip(results, fractions, strict=True):
        mark = "" if r.same_class is None else ("same" if r.same_class else "other")
        items.append(
            html.Li(
                [
                    html.Button(
                        thumbnail(dataset, r.image_id, r.label, "small"),
                        id={"type": ids.IMAGE_PICK, "where": where, "index": r.image_id},
                        className="result-pick",
                        title=f"Make image {r.image_id} the query",
                        n_clicks=0,
                    ),
                    html.Div(
                        [
                            html.Div([html.Span(f"#{r.rank} ", className="muted"), *label_text(r.label)],
                                     className="label"),
                            html.Div(
                                [html.Span(metric or "distance", className="metric-name"), " ",
                                 format_distance(r.distance)],
                                className="distance",
                            ),
                            html.Div(html.Div(className="bar-fill", style={"width": f"{100 * fraction:.1f}%"}),
                                     className="bar"),
                        ],
                        className="neighbour-text",
                    ),
                    html.Span("✓" if mark == "same" else "✗" if mark == "other" else "", className=f"mark {mark}",
                              title={"same": "same class as the query", "other": "another class"}.get(mark)),
                ],
                className=f"neighbour {mark}",
                **{"data-image-id": str(r.image_id)},
            )
        )
    return html.Ol(items, className="neighbour-list")


def duplicate_pair(dataset: str, number: int, evidence: list[dict[str, Any]], query: int | None = None) -> html.Div:
    """One row of the duplicates panel: both thumbnails (click one to make it the query), labels and badges.

    ``number`` keeps the buttons' ids unique when an image belongs to several pairs.
    """
    row = evidence[0]
    a, b = int(row["a"]), int(row["b"])

    def picker(image_id: int, label: Any) -> html.Button:
        label = None if label is None else str(label)
        return html.Button(
            thumbnail(dataset, image_id, label),
            id={"type": ids.DUPLICATE_PICK, "pair": number, "index": image_id},
            className="result-pick",
            title=f"Search with image {image_id}" + (f" ({label})" if label else ""),
            n_clicks=0,
        )

    labels = [lab for lab in (row["label_a"], row["label_b"]) if lab is not None]
    caption = " ≠ ".join(labels) if row["cross_class"] else (labels[0] if labels else "")
    return html.Div(
        [
            picker(a, row["label_a"]),
            picker(b, row["label_b"]),
            html.Div(
                [
                    html.Div(f"images {a} and {b}", className="muted"),
                    html.Div(caption, className="label"),
                    html.Div(duplicate_badges(evidence, "each other"), className="badges"),
                    html.Div("the current query", className="muted") if query in (a, b) else None,
                ],
                className="pair-caption",
            ),
        ],
        className="duplicate-pair" + (" cross" if row["cross_class"] else "") + (" current" if query in (a, b) else ""),
        **{"data-pair": f"{a}-{b}", "data-kind": row["kind"]},
    )


def label_issue_row(dataset: str, number: int, issue: dict[str, Any], query: int | None = None) -> html.Div:
    """One row of the duplicates panel's label checks: the image (click to make it the query), its given label
    and the flag with the suggested label."""
    image_id = int(issue["id"])
    return html.Div(
        [
            html.Button(
                thumbnail(dataset, image_id, str(issue["label"])),
                id={"type": ids.DUPLICATE_PICK, "pair": f"issue-{number}", "index": image_id},
                className="result-pick",
                title=f"Search with image {image_id} ({issue['label']})",
                n_clicks=0,
            ),
            html.Div(
                [
                    html.Div(f"image {image_id}", className="muted"),
                    html.Div(f"labelled {issue['label']}", className="label"),
                    html.Div(label_issue_badge(issue), className="badges"),
                    html.Div("the current query", className="muted") if query == image_id else None,
                ],
                className="pair-caption",
            ),
        ],
        className="duplicate-pair label-issue" + (" current" if query == image_id else ""),
        **{"data-issue": str(image_id), "data-suggested": str(issue["suggested"])},
    )


def scores_table(table: pd.DataFrame) -> html.Table:
    """The query's scores beside the means and the random baseline (rows: scores)."""
    from precompute.scores import SCORE_NAMES

    def describe(name: str) -> str:
        family = name if name in SCORE_NAMES else name.split("@")[0] + "@k"
        return SCORE_NAMES.get(family, "")

    header = html.Tr([html.Th("score")] + [html.Th(column) for column in table.columns])
    rows = []
    for name, row in table.iterrows():
        cells = [html.Td(name, title=describe(str(name)), className="score-name")]
        for column in table.columns:
            value = row[column]
            text = "—" if pd.isna(value) else f"{value:.3f}"
            better = column == "query" and not pd.isna(row.get("random")) and value > row["random"]
            cells.append(html.Td(text, className="num" + (" better" if better else "")))
        rows.append(html.Tr(cells))
    return html.Table([html.Thead(header), html.Tbody(rows)], className="scores-table")


def dropdown(component_id: str, clearable: bool = False, **kwargs: Any) -> dcc.Dropdown:
    return dcc.Dropdown(id=component_id, clearable=clearable, options=[], **kwargs)


def format_interval(value: Any, low: Any = None, high: Any = None, digits: int = 3) -> str:
    """A mean with its interval, "0.388 [0.351, 0.425]"; the mean alone without bounds; a dash when missing."""

    def missing(x: Any) -> bool:
        return x is None or (isinstance(x, float) and math.isnan(x))

    if missing(value):
        return "—"
    if missing(low) or missing(high):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def with_intervals(table: pd.DataFrame, columns: Collection[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Merge each column's ``<column> low`` / ``<column> high`` bounds into its text, "0.388 [0.351, 0.425]".

    Returns the new table and the names of the merged columns (to right-align in ``frame_table``). Columns
    without bounds are left as they are.
    """
    merged, out = [], table.copy()
    for column in columns if columns is not None else list(table.columns):
        low, high = interval_columns(column)
        if column in out.columns and low in out.columns and high in out.columns:
            out[column] = [
                format_interval(*(None if pd.isna(x) else float(x) for x in values))
                for values in zip(out[column], out[low], out[high], strict=True)
            ]
            out = out.drop(columns=[low, high])
            merged.append(column)
    return out, merged


def frame_table(
    table: pd.DataFrame, class_name: str = "data-table", digits: int = 3, numeric: Collection[str] = ()
) -> html.Table:
    """A DataFrame as a plain HTML table: numbers right-aligned and rounded, missing values as a dash.

    ``numeric`` names columns of preformatted numbers (intervals from ``with_intervals``) to right-align too.
    """

    def cell(value: Any, column: Any) -> html.Td:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return html.Td("—", className="num missing", title="not computed")
        if isinstance(value, float):
            text = f"{value:,.0f}" if value.is_integer() and abs(value) >= 1000 else f"{value:.{digits}f}"
            return html.Td(text, className="num")
        if isinstance(value, int):
            return html.Td(f"{value:,}", className="num")
        if column in numeric:
            return html.Td(str(value), className="num" + (" missing" if value == "—" else ""))
        return html.Td(str(value))

    columns = list(table.columns)
    header = html.Thead(html.Tr([html.Th(str(column)) for column in columns]))
    body = html.Tbody(
        [html.Tr([cell(v, c) for v, c in zip(row, columns, strict=True)]) for row in table.itertuples(index=False)]
    )
    return html.Table([header, body], className=class_name)
