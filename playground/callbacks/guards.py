"""The guards every callback starts with (the page has a selection yet, and it is this view's), and the
handler of any callback that fails."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from dash import set_props
from dash.exceptions import PreventUpdate

from playground import components, ids
from playground.state import Selection
from playground.store import MissingArtifact, Store

log = logging.getLogger(__name__)


def selection_in_view(selection: dict[str, Any] | None, view: str) -> Selection:
    """The current selection, or PreventUpdate while the page has none yet or shows another view."""
    sel = Selection.from_dict(selection)
    if selection is None or sel.view != view:
        raise PreventUpdate
    return sel


def selection_with_dataset(selection: dict[str, Any] | None) -> Selection:
    """The current selection, or PreventUpdate while the page has none yet or it holds no dataset."""
    sel = selection_or_stop(selection)
    if sel.dataset is None:
        raise PreventUpdate
    return sel


def selection_or_stop(selection: dict[str, Any] | None) -> Selection:
    """The current selection in any view, or PreventUpdate while the page has none yet."""
    if selection is None:
        raise PreventUpdate
    return Selection.from_dict(selection)


def callback_error_handler(store: Store) -> Callable[[Exception], None]:
    """Dash's ``on_error`` for every callback: the notice bar says what failed, the outputs stay as they were.

    Views show a missing or broken artifact in place where they expect one; this catches the rest, so that a
    broken file or a bug gives a message in the page instead of a 500 and a view that never fills. A missing
    or broken artifact is named (relative to the artifacts root) with its fix; anything else is logged with
    its traceback and named by its type, with no server path in the text.
    """

    def show_error(exc: Exception) -> None:
        if isinstance(exc, MissingArtifact):
            log.warning("callback: %s", exc)
            text = str(exc)
        else:
            log.error("callback failed", exc_info=exc)
            text = (
                f"This view could not be updated ({type(exc).__name__}: {store.public_text(str(exc))}). "
                "The server's log has the details."
            )
        set_props(ids.NOTICE, {"children": components.message(text, "error")})
        return None  # every output: no_update

    return show_error
