"""The Search view's rendering (playground/views/search.py): the grid's pages, the query panel, result cards,
duplicate badges and the duplicates panel."""

from __future__ import annotations

import json

import numpy as np
import pytest

from playground.ranking import query_results, query_scores
from playground.state import resolve_selection
from playground.views.search import grid_page, render_query_panel, render_results
from tests.helpers import find_class, text_of

PIXELS, LITE = "pixels", "efficientnet-lite0-random"


def test_grid_paging_opens_the_page_of_the_query(store, monkeypatch):
    monkeypatch.setattr("playground.views.search.PAGE_SIZE", 10)
    sel = resolve_selection(store, {"dataset": "shapes", "query": 23})
    ids, page, n_pages = grid_page(store, sel, None, None)
    assert (page, n_pages, ids) == (2, 3, [20, 21, 22, 23])
    ids, page, _ = grid_page(store, sel, "square", None)
    assert ids == list(range(8, 16)) and page == 0


def test_unlabeled_dataset_hides_scores_and_still_searches(store):
    sel = resolve_selection(store, {"dataset": "shapes-flat"})
    results = query_results(store, sel.dataset, sel.model, sel.layer, sel.metric, 1, 3)
    assert len(results) == 3 and all(r.same_class is None and r.label is None for r in results)
    assert query_scores(store, sel.dataset, sel.model, sel.layer, sel.metric, 1) is None
    assert "no labels" in text_of(render_query_panel(store, sel))
    assert len(find_class(render_results(store, sel), "result-card")) == 5  # k capped by what exists: 5 others


def test_results_badge_duplicates_of_the_query(trust):
    store, pair = trust
    sel = resolve_selection(store, {"dataset": "shapes", "model": PIXELS, "layer": "pixels_8x8", "query": 0})
    cards = {
        card.to_plotly_json()["props"]["data-image-id"]: card
        for card in find_class(render_results(store, sel), "result-card")
    }
    assert text_of(find_class(cards[str(pair["first"])], "badges")) == "exact duplicate"
    # A look-alike pair across classes is said as such, not as a label mistake (issue #24: it accused correct
    # labels); a label is called probably wrong only on confident learning's evidence, with its suggestion.
    assert text_of(find_class(cards[str(pair["other"])], "badges")) == "near-duplicate look alike, labels differ"
    assert "mistake" not in text_of(render_results(store, sel)) and "mislabeled" not in str(render_results(store, sel))
    assert text_of(find_class(cards[str(pair["second"])], "badges")) == (
        "feature near-duplicate label probably wrong (suggested: hats, confidence 0.93)"
    )
    badged = {key for key, card in cards.items() if find_class(card, "badge")}
    assert "label probably wrong (suggested: hats" in text_of(
        render_query_panel(store, resolve_selection(store, {"dataset": "shapes", "query": pair["second"]}))
    )
    assert badged == {str(pair[name]) for name in ("first", "second", "other")}
    assert "3 of them form a duplicate pair" in text_of(render_results(store, sel))
    # Another layer holds no feature pairs: only the dataset's hash pairs are badged.
    sel.layer = "pixels_16x16"
    cards = find_class(render_results(store, sel), "result-card")
    assert all("feature" not in text_of(find_class(card, "badges")) for card in cards)


def test_duplicates_panel_lists_pairs_with_counts(trust, monkeypatch):
    from playground import ids
    from playground.views.search import render_duplicates

    store, pair = trust
    sel = resolve_selection(store, {"dataset": "shapes", "model": PIXELS, "layer": "pixels_8x8", "query": 5})
    children = render_duplicates(store, sel)
    summary = text_of(children[0])
    assert summary == (
        "Duplicates: 3 pairs (1 exact, 1 near, 2 feature); 1 with labels that differ; 1 label probably wrong"
    )
    text = text_of(children)
    assert "free top-1 hit" in text and "guaranteed miss" in text and "as given" in text
    assert "at most 4 of 64 bits" in text and "0.25 × the layer's median nearest-neighbour distance" in text
    # cleanlab's label issues come first, with the suggested label; then the pairs, those across classes first.
    issue, *rows = find_class(children, "duplicate-pair")
    assert "label-issue" in issue.className.split() and "confidence 0.93" in text_of(issue)
    assert text_of(children).index("Labels probably wrong: 1") < text_of(children).index("Duplicate pairs")
    assert len(rows) == 3 and "cross" in rows[0].className.split()
    assert "look alike, labels differ" in text_of(rows[0]) and "labels differ" not in text_of(rows[1:])
    buttons = [b for row in rows for b in row.children if getattr(b, "id", None)]
    assert [b.id["type"] for b in buttons] == [ids.DUPLICATE_PICK] * 6
    assert len({json.dumps(b.id, sort_keys=True) for b in buttons + issue.children[:1]}) == 7  # unique ids
    assert [b.id["index"] for b in buttons[:2]] == [0, pair["other"]]
    monkeypatch.setattr("playground.views.search.MAX_PAIRS_SHOWN", 1)
    assert "2 more pairs" in text_of(render_duplicates(store, sel))


def test_older_artifacts_show_no_badges_and_say_duplicates_were_not_looked_for(old_store):
    from playground.views.search import render_duplicates

    sel = resolve_selection(old_store, {"dataset": "shapes", "model": PIXELS, "layer": "pixels_8x8", "query": 0})
    assert not find_class(render_results(old_store, sel), "badge")
    assert "not looked for" in text_of(render_duplicates(old_store, sel))
    flat = resolve_selection(old_store, {"dataset": "shapes-flat"})
    assert "not looked for" in text_of(render_duplicates(old_store, flat))


def test_a_missing_duplicates_file_is_a_message_not_a_crash(trust, artifacts_copy):
    from playground.views.search import render_duplicates
    from precompute import artifacts as art

    store, _ = trust
    art.duplicates_path(artifacts_copy, "shapes").unlink()
    sel = resolve_selection(store, {"dataset": "shapes", "model": PIXELS, "layer": "pixels_8x8", "query": 0})
    assert all("badge-issue" in badge.className for badge in find_class(render_results(store, sel), "badge"))
    children = render_duplicates(store, sel)
    assert "unreadable" in text_of(children[0]) and "duplicates.parquet" in text_of(children)


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "manhattan", "chebyshev"])
def test_result_cards_name_the_metric_and_scale_bars_within_the_results(store, metric):
    from playground.components import format_distance

    sel = resolve_selection(
        store, {"dataset": "shapes", "model": PIXELS, "layer": "pixels_32x32", "metric": metric, "query": 4, "k": 12}
    )
    rendered = render_results(store, sel)
    cards = find_class(rendered, "result-card")
    results = query_results(store, "shapes", PIXELS, "pixels_32x32", metric, 4, 12)
    props = [card.to_plotly_json()["props"] for card in cards]
    assert [float(p["data-distance"]) for p in props] == pytest.approx([r.distance for r in results])
    bars = [float(p["data-bar"]) for p in props]
    assert bars[0] == 1.0 and bars[-1] == 0.0 and bars == sorted(bars, reverse=True)
    distances = np.array([r.distance for r in results])
    assert bars == pytest.approx((distances.max() - distances) / (distances.max() - distances.min()), abs=1e-4)
    for card, result in zip(cards, results, strict=True):
        text = text_of(find_class(card, "distance"))
        assert text.startswith(metric) and text.endswith(format_distance(result.distance))
    assert f"{metric} distance to the query" in text_of(rendered)
