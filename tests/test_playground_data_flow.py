"""The app's data flow without a browser: uploads kept by key, the controller writing only what changed, and a
callback graph in which a click runs the controller and the shown view's callback (bench/requests_per_click.py
measures the same in Chromium)."""

from __future__ import annotations

import pytest
from dash import no_update

from playground import ids, uploads
from playground.callbacks.controller import unchanged, view_selection
from playground.state import Selection


@pytest.fixture
def kept(monkeypatch):
    """An empty store of kept uploads, with a small bound."""
    monkeypatch.setattr(uploads, "_kept_uploads", type(uploads._kept_uploads)())
    monkeypatch.setattr(uploads, "KEPT_UPLOAD_BYTES", 25)
    return uploads._kept_uploads


def test_uploads_are_kept_by_key_within_the_bound(kept):
    first = uploads.keep_upload(b"a" * 10)
    assert uploads.kept_upload(first) == b"a" * 10
    assert uploads.keep_upload(b"a" * 10) == first and len(kept) == 1  # the key is the contents' hash
    second = uploads.keep_upload(b"b" * 10)
    uploads.kept_upload(first)  # used again: the newest
    third = uploads.keep_upload(b"c" * 10)  # 30 bytes > 25: the least recently used goes
    assert uploads.kept_upload(second) is None
    assert uploads.kept_upload(first) == b"a" * 10 and uploads.kept_upload(third) == b"c" * 10
    huge = uploads.keep_upload(b"d" * 100)  # over the bound alone: still kept, as the only one
    assert uploads.kept_upload(huge) == b"d" * 100 and len(kept) == 1
    assert uploads.kept_upload(None) is None and uploads.kept_upload("not a key") is None


def test_the_controller_writes_only_the_shown_views_store_and_only_when_it_changed():
    sel = Selection(view="search", dataset="d", model="m", layer="l", metric="cosine", query=3, notices=["x"])
    assert view_selection(sel, "embeddings", None) is no_update
    assert view_selection(sel, "search", None) == sel.to_dict()
    assert view_selection(sel, "search", {**sel.to_dict(), "notices": []}) is no_update  # notices are not the view's
    assert view_selection(sel, "search", {**sel.to_dict(), "query": 4}) == sel.to_dict()
    assert unchanged("cosine", "cosine") is no_update and unchanged(15, None) == 15


def test_a_click_runs_the_controller_and_the_shown_views_callback(tmp_path):
    from playground.app import create_app

    app = create_app(tmp_path)  # an empty root: the graph is the same
    inputs = {
        key: [f"{dep['id']}.{dep['property']}" for dep in spec["inputs"]] for key, spec in app.callback_map.items()
    }
    on_server = {key for key, spec in app.callback_map.items() if "callback" in spec}  # clientside ones have none
    readers = [key for key, names in inputs.items() if f"{ids.SELECTION}.data" in names]
    # Only Compare's view callback still listens to the shared selection (answering 204 in other views).
    assert all("compare-" in key for key in readers), readers
    for view in ("search", "upload", "embeddings"):
        own = [key for key, names in inputs.items() if f"{ids.VIEW_SELECTION.format(view)}.data" in names]
        servers = [key for key in own if key in on_server]
        assert len(servers) == 1, (view, own)  # one round trip renders the view
    # The upload's contents are the input of one callback, which empties them once it has kept the file.
    contents = [key for key, names in inputs.items() if f"{ids.UPLOAD}.contents" in names]
    assert len(contents) == 1 and f"{ids.UPLOAD}.contents" in contents[0]
    # Pattern-matched buttons reach the server only through clientside callbacks (their zero clicks stay there).
    for key, spec in app.callback_map.items():
        if any(isinstance(dep["id"], dict) for dep in spec["inputs"]):
            assert key not in on_server, key
