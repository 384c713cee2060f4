"""The Embeddings view's rendering (playground/views/embeddings.py): the map, its tooltip, thumbnails, the
selection strip and the neighbours beside the map."""

from __future__ import annotations

from playground.ranking import query_results
from playground.state import resolve_selection
from playground.views.embeddings import render_embeddings, tooltip
from tests.helpers import find_class, text_of


def test_embeddings_figure_and_tooltip(store):
    sel = resolve_selection(store, {"view": "embeddings", "dataset": "shapes", "query": 2, "k": 5})
    figure, info = render_embeddings(store, sel)
    names = [trace.name for trace in figure.data]
    assert names == ["circle", "square", "triangle", "top results", "query"]
    assert list(figure.data[-1].customdata) == [2] and len(figure.data[-2].customdata) == 5
    show, bbox, children = tooltip(store, sel, {"points": [{"customdata": 9, "bbox": {"x0": 1}}]})
    assert show and "square" in text_of(children)
    assert tooltip(store, sel, None)[0] is False


def test_embeddings_figure_selection_and_thumbnails(store, monkeypatch):
    from playground import map_figure

    sel = resolve_selection(store, {"view": "embeddings", "dataset": "shapes", "query": 2, "k": 5})
    figure, _ = render_embeddings(store, sel)
    assert figure.layout.dragmode == "lasso" and not figure.layout.images
    assert all(trace.unselected.marker.opacity < 0.5 for trace in figure.data[:3])
    assert [trace.marker.color for trace in figure.data[:3]] == list(map_figure.CLASS_COLOURS[:3])
    figure, _ = render_embeddings(store, sel, thumbnails=True)
    assert len(figure.layout.images) == 24 and figure.layout.images[5].source == "/thumbs/shapes/5.jpg"
    monkeypatch.setattr(map_figure, "MAX_THUMBNAIL_POINTS", 10)
    figure, info = render_embeddings(store, sel, thumbnails=True)
    assert not figure.layout.images and "up to 10 images" in text_of(info)


def test_selection_strip_counts_classes_and_offers_each_image(store):
    from playground import ids
    from playground.views.embeddings import class_mix, render_selection, selected_ids

    sel = resolve_selection(store, {"view": "embeddings", "dataset": "shapes", "query": 2})
    points = {"points": [{"customdata": i} for i in (0, 1, 9, 17, 1, 2)] + [{"customdata": 2}]}
    assert selected_ids(points) == [0, 1, 9, 17, 2]  # the query and result markers repeat images
    assert class_mix(["b", "a", "a", "c", "b", "a"]) == [("a", 3), ("b", 2), ("c", 1)]
    strip = render_selection(store, sel, selected_ids(points))
    assert text_of(strip).startswith("5 selected:  3 circle (60%), 1 square (20%), 1 triangle (20%)")
    buttons = [b for b in find_class(strip, "result-pick")]
    assert [b.id["index"] for b in buttons] == [0, 1, 9, 17, 2] and buttons[0].id["type"] == ids.IMAGE_PICK
    assert "No image inside" in text_of(render_selection(store, sel, []))
    assert "Lasso" in text_of(render_selection(store, sel, None))


def test_the_map_keeps_a_selection_across_queries_and_clears_it_on_another_map(store):
    from playground import ids
    from playground.views.embeddings import next_selection

    lasso = {"points": [{"customdata": 3}, {"customdata": 5}], "lassoPoints": {"x": [0], "y": [0]}}
    state = next_selection(None, "shapes/pixels/a", "selection", None)
    assert state == {"key": "shapes/pixels/a", "ids": None, "cleared": 0}
    state = next_selection(state, "shapes/pixels/a", ids.UMAP_GRAPH, lasso)
    assert state["ids"] == [3, 5]
    assert next_selection(state, "shapes/pixels/a", "selection", None)["ids"] == [3, 5]  # a new query keeps it
    echo = {"points": [], "selections": []}  # plotly's own report after a redraw
    assert next_selection(state, "shapes/pixels/a", ids.UMAP_GRAPH, echo) == state
    empty = next_selection(state, "shapes/pixels/a", ids.UMAP_GRAPH, {"points": [], "range": {"x": [0, 1]}})
    assert empty["ids"] == [] and empty["cleared"] == 1  # a box over nothing: redraw with nothing faded
    assert next_selection(state, "shapes/pixels/a", ids.UMAP_GRAPH, None)["ids"] is None  # double-click
    assert next_selection(state, "shapes/pixels/b", "selection", None)["ids"] is None  # another layer
    sel = resolve_selection(store, {"view": "embeddings", "dataset": "shapes", "query": 2, "k": 3})
    figure, _ = render_embeddings(store, sel, selected=[0, 1, 9])
    chosen = [[int(trace.customdata[i]) for i in trace.selectedpoints] for trace in figure.data[:3]]
    assert chosen == [[0, 1], [9], []]


def test_neighbours_beside_the_map_are_the_query_results(store):
    from playground.views.embeddings import render_neighbours

    sel = resolve_selection(
        store, {"view": "embeddings", "dataset": "shapes", "metric": "euclidean", "query": 6, "k": 7}
    )
    panel = render_neighbours(store, sel)
    items = find_class(panel, "neighbour")
    expected = query_results(store, "shapes", sel.model, sel.layer, "euclidean", 6, 7)
    assert [item.to_plotly_json()["props"]["data-image-id"] for item in items] == [str(r.image_id) for r in expected]
    assert "euclidean" in text_of(panel) and "query: image 6" in text_of(panel)
