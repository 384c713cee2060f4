"""The one guard every view callback starts with."""

from __future__ import annotations

from typing import Any

from dash.exceptions import PreventUpdate

from playground.state import Selection


def selection_in_view(selection: dict[str, Any] | None, view: str) -> Selection:
    """The current selection, or PreventUpdate while the page has none yet or shows another view."""
    sel = Selection.from_dict(selection)
    if selection is None or sel.view != view:
        raise PreventUpdate
    return sel
