"""The selection (playground/state.py): defaults, notices for what the artifacts lack, the URL form and the default
query."""

from __future__ import annotations

import pandas as pd
import pytest

from playground.state import Selection, parse_url, resolve_selection, to_url
from playground.store import Store

PIXELS, LITE = "pixels", "efficientnet-lite0-random"


def test_resolve_selection_defaults_to_the_best_layer(store):
    sel = resolve_selection(store, {"dataset": "shapes", "model": LITE})
    best = max(
        store.layers("shapes", LITE),
        key=lambda layer: store.metric("shapes", LITE, layer, "cosine").summary["rwp@15"],
    )
    assert (sel.metric, sel.layer, sel.query, sel.k, sel.notices) == ("cosine", best, 0, 15, [])


def test_resolve_selection_replaces_unknown_names_with_a_notice(store):
    sel = resolve_selection(
        store, {"dataset": "shapes", "model": "vgg16", "layer": "x", "metric": "cosine", "query": "999", "k": "500"}
    )
    assert sel.model in store.models("shapes")
    assert sel.query == 0 and sel.k == 50
    assert any("vgg16" in n for n in sel.notices) and any("999" in n for n in sel.notices)


def test_url_round_trip(store):
    sel = resolve_selection(store, {"view": "compare", "dataset": "shapes", "model": LITE, "query": 7, "k": 9})
    pathname, search = to_url(sel)
    assert pathname == "/compare"
    again = resolve_selection(store, parse_url(pathname, search))
    assert again.to_dict() == sel.to_dict()


def test_selection_dict_round_trip():
    sel = Selection(dataset="d", model="m", layer="l", metric="cosine", query=3, k=7, notices=["x"])
    assert Selection.from_dict(sel.to_dict()) == sel


def test_default_query_is_the_one_nearest_the_mean_score(store, monkeypatch):
    from playground.state import best_layer, default_query

    model = store.models("shapes")[0]
    layer = best_layer(store, "shapes", model, "cosine")
    scores = store.scores("shapes", model, layer, "cosine")["rwp@15"]
    gaps = (scores - scores.mean()).abs()
    expected = int(min(gaps.index[gaps == gaps.min()]))
    assert default_query(store, "shapes") == expected != 0
    assert default_query(store, "shapes-flat") == 0  # unlabeled: image 0
    # Ties go to the lower id: two queries exactly at the mean.
    tied = pd.DataFrame({"label": "circle", "rwp@15": [0.0, 0.5, 1.0, 0.5]}, index=pd.Index([0, 1, 2, 3], name="query"))
    monkeypatch.setattr(Store, "scores", lambda self, *args: tied)
    assert default_query(store, "shapes") == 1


@pytest.mark.parametrize(
    "url, notice, field, value",
    [
        ("/search?dataset=shapes&query=abc", "Query 'abc' is not an image id", "query", 0),
        ("/search?dataset=shapes&query=-1", "Image -1 is not in shapes", "query", 0),
        ("/search?dataset=shapes&k=0", "Results must be 1 to 50; 0 became 1", "k", 1),
        ("/search?dataset=shapes&k=1000", "Results must be 1 to 50; 1000 became 50", "k", 50),
        ("/search?dataset=shapes&k=ten", "Results 'ten' is not a whole number; showing 15", "k", 15),
        ("/search?dataset=shapes&k=2.5", "Results '2.5' is not a whole number", "k", 15),
        ("/nowhere?dataset=shapes", "There is no view '/nowhere'", "view", "search"),
    ],
)
def test_malformed_or_out_of_range_url_values_get_a_notice(store, url, notice, field, value):
    pathname, _, search = url.partition("?")
    sel = resolve_selection(store, parse_url(pathname, search))
    assert any(notice in text for text in sel.notices), sel.notices
    assert getattr(sel, field) == value
