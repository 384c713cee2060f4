"""The controller (playground/callbacks/controller.py): one selection after each trigger, the control options, the
view links, the model line and what a click asks for."""

from __future__ import annotations

import pytest

from playground.callbacks.controller import control_options, update_selection
from playground.state import parse_url, resolve_selection

PIXELS, LITE = "pixels", "efficientnet-lite0-random"


def test_switching_model_keeps_dataset_and_query_and_picks_a_layer(store):
    sel = resolve_selection(store, {"dataset": "shapes", "model": PIXELS, "query": 5})
    controls = {"model": LITE}
    switched = update_selection(store, "model-select", "/search", "", controls, None, sel.to_dict())
    assert (switched.dataset, switched.model, switched.query) == ("shapes", LITE, 5)
    assert switched.layer in store.layers("shapes", LITE)
    options = control_options(store, switched)
    assert [o["value"] for o in options["layer"]] == store.layers("shapes", LITE)


def test_switching_dataset_resets_the_query(store):
    sel = resolve_selection(store, {"dataset": "shapes", "query": 20})
    switched = update_selection(store, "dataset-select", "/", "", {"dataset": "shapes-flat"}, None, sel.to_dict())
    assert (switched.dataset, switched.query, switched.labeled) == ("shapes-flat", 0, False)


def test_a_dataset_opens_on_its_default_query(store):
    from playground.state import default_query

    first = update_selection(store, None, "/", "", {}, None, None)
    assert first.query == default_query(store, "shapes") and not first.notices
    linked = update_selection(store, "url", "/search", "?dataset=shapes&query=7", {}, None, first.to_dict())
    assert linked.query == 7
    flat = update_selection(store, "dataset-select", "/", "", {"dataset": "shapes-flat"}, None, first.to_dict())
    back = update_selection(store, "dataset-select", "/", "", {"dataset": "shapes"}, None, flat.to_dict())
    assert back.query == default_query(store, "shapes")
    bad = update_selection(store, None, "/search", "?dataset=shapes&query=999", {}, None, None)
    assert bad.query == default_query(store, "shapes") and "showing image" in bad.notices[0]


def test_the_results_box_out_of_range_or_empty_gets_a_notice(store):
    sel = resolve_selection(store, {"dataset": "shapes", "k": 9})
    for typed, notice, k in [
        (0, "0 became 1", 1),
        (100, "100 became 50", 50),
        (None, "The Results box is empty", 9),
        (2.5, "2.5 is not a whole number", 9),
        (12.0, None, 12),
    ]:
        after = update_selection(store, "top-k", "/search", "", {"k": typed}, None, sel.to_dict())
        assert after.k == k
        assert (notice in " ".join(after.notices)) if notice else not after.notices
    assert parse_url("/", "") == {} and parse_url("/search/", "")["view"] == "search"


def test_view_links_carry_the_selection_and_mark_the_current_view(store):
    from playground.callbacks.controller import tab_links

    sel = resolve_selection(store, {"view": "embeddings", "dataset": "shapes", "query": 5})
    links = tab_links(sel)
    assert [href.split("?")[0] for href, _ in links] == ["/search", "/upload", "/embeddings", "/compare"]
    assert all("query=5" in href and "dataset=shapes" in href for href, _ in links)
    assert [cls for _, cls in links] == ["tab", "tab", "tab tab-selected", "tab"]


def test_model_info_is_one_clamped_line_with_the_whole_text_as_tooltip(store):
    from playground.callbacks.controller import model_info

    sel = resolve_selection(store, {"dataset": "shapes", "model": LITE})
    info = model_info(store, sel)
    assert info.className == "model-info-text" and info.title == info.children and "Weights:" in info.title


def test_query_requests_from_uploads_and_the_viewer_open_search():
    from dash.exceptions import PreventUpdate

    from playground import ids
    from playground.callbacks.controller import click_request as query_request

    assert query_request({"type": ids.UPLOAD_PICK, "index": 4}, [{"value": 1}], None, None)["view"] == "search"
    grid = query_request({"type": ids.PICK, "index": 4}, [{"value": 1}], None, None)
    assert grid["id"] == 4 and "view" not in grid
    assert query_request(ids.VIEWER_SEARCH, [{"value": 1}], None, 9) | {"at": 0} == {"id": 9, "view": "search", "at": 0}
    map_click = query_request(ids.UMAP_GRAPH, [{"value": 1}], {"points": [{"customdata": 11}]}, None)
    assert map_click["id"] == 11
    with pytest.raises(PreventUpdate):
        query_request({"type": ids.IMAGE_PICK, "where": "selection", "index": 2}, [{"value": 0}], None, None)
