"""Small shared pieces of layout: controls, thumbnails, result cards, messages, score tables."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pandas as pd
from dash import dcc, html

from playground import ids
from playground.ranking import Result

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


def result_card(dataset: str, result: Result, clickable: bool = True) -> html.Div:
    """One ranked result: thumbnail, rank, similarity bar and number, label, same/other class mark."""
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
        ],
        className=f"result-card {mark_class}",
        **{
            "data-image-id": str(result.image_id),
            "data-same": "" if result.same_class is None else str(result.same_class).lower(),
        },
    )


def results_grid(dataset: str, results: list[Result], clickable: bool = True) -> html.Div:
    return html.Div([result_card(dataset, r, clickable) for r in results], className="results-grid")


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


def frame_table(table: pd.DataFrame, class_name: str = "data-table", digits: int = 3) -> html.Table:
    """A DataFrame as a plain HTML table: numbers right-aligned and rounded, missing values as a dash."""

    def cell(value: Any) -> html.Td:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return html.Td("—", className="num missing", title="not computed")
        if isinstance(value, float):
            text = f"{value:,.0f}" if value.is_integer() and abs(value) >= 1000 else f"{value:.{digits}f}"
            return html.Td(text, className="num")
        if isinstance(value, int):
            return html.Td(f"{value:,}", className="num")
        return html.Td(str(value))

    header = html.Thead(html.Tr([html.Th(str(column)) for column in table.columns]))
    body = html.Tbody([html.Tr([cell(v) for v in row]) for row in table.itertuples(index=False)])
    return html.Table([header, body], className=class_name)
