"""Small shared pieces of layout: controls, thumbnails, result cards, duplicate badges, messages, score tables."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any
from urllib.parse import quote

import pandas as pd
from dash import dcc, html

from playground import ids
from playground.ranking import Result
from playground.tables import DUPLICATE_KINDS, LABEL_MISTAKE, interval_columns

THUMB_ROUTE = "/thumbs"


def thumb_url(dataset: str, image_id: int) -> str:
    return f"{THUMB_ROUTE}/{quote(dataset)}/{int(image_id)}.jpg"


def control(label: str, component: Any, class_name: str = "") -> html.Div:
    return html.Div([html.Label(label, className="control-label"), component], className=f"control {class_name}")


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
    """Badges of one duplicate pair: its strongest kind, and "likely label mistake" across classes.

    Parameters
    ----------
    evidence : the pair's rows from ``tables.duplicates_of`` (strongest kind first); None or [] for no badge
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
                LABEL_MISTAKE,
                className="badge badge-mistake",
                title="The two images look alike but carry different labels: one of them is probably mislabeled.",
            )
        )
    return badges


def result_card(
    dataset: str, result: Result, clickable: bool = True, duplicate: list[dict[str, Any]] | None = None
) -> html.Div:
    """One ranked result: thumbnail, rank, similarity bar and number, label, same/other class mark, and
    duplicate badges when the result and the query form a duplicate pair (``duplicate``: that pair's rows)."""
    width = max(0.0, min(1.0, result.similarity)) * 100
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
            id={"type": ids.RESULT_PICK, "index": result.image_id},
            className="result-pick",
            title="Search with this image",
            n_clicks=0,
        )
    return html.Div(
        [
            html.Div(f"#{result.rank}", className="rank"),
            image,
            html.Div(
                [html.Div(className="bar-fill", style={"width": f"{width:.1f}%"})],
                className="bar",
                title=f"similarity {result.similarity:.4f} (distance {result.distance:.4g})",
            ),
            html.Div(f"{result.similarity:.3f}", className="similarity"),
            html.Div(result.label or "", className="label"),
            html.Div(mark, className=f"mark {mark_class}") if mark else None,
            html.Div(duplicate_badges(duplicate), className="badges") if duplicate else None,
        ],
        className=f"result-card {mark_class}",
        **{
            "data-image-id": str(result.image_id),
            "data-same": "" if result.same_class is None else str(result.same_class).lower(),
            "data-duplicate": duplicate[0]["kind"] if duplicate else "",
        },
    )


def results_grid(
    dataset: str,
    results: list[Result],
    clickable: bool = True,
    duplicates: dict[int, list[dict[str, Any]]] | None = None,
) -> html.Div:
    """Result cards in rank order; ``duplicates`` maps a result id to its duplicate pair with the query."""
    duplicates = duplicates or {}
    return html.Div(
        [result_card(dataset, r, clickable, duplicates.get(r.image_id)) for r in results], className="results-grid"
    )


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
