"""Static HTML panels (playground/static_html.py): html components as plain nodes, click routing, the component."""

from __future__ import annotations

import json

import pytest
from dash import dcc, html

from playground import components, ids
from playground.ranking import Result
from playground.static_html import CLICK_STORES, StaticHtml, static, style_text, to_tree
from playground.views.search import DUPLICATES


def test_nodes_keep_tags_attributes_text_and_order():
    tree = to_tree([
        html.Label("Layer", htmlFor="layer-select", className="control-label"),
        "text",
        7,
        None,
        html.Div([html.Span("a_", title="t"), html.Wbr(), "b"], role="img", style={"width": "5%"},
                 **{"aria-label": "bar", "data-image-id": "3"}),
    ])
    assert tree == [
        ["label", {"for": "layer-select", "class": "control-label"}, ["Layer"]],
        "text",
        "7",
        ["div", {"role": "img", "style": "width: 5%", "aria-label": "bar", "data-image-id": "3"},
         [["span", {"title": "t"}, ["a_"]], ["wbr", {}, []], "b"]],
    ]
    assert style_text({"backgroundColor": "#fff", "width": "2.50%"}) == "background-color: #fff; width: 2.50%"


def test_buttons_keep_dash_ids_and_name_the_store_their_click_goes_to():
    [button] = to_tree(components.pick_button("shapes", 4, "circle", selected=True))
    tag, attributes, children = button
    assert tag == "button" and "n_clicks" not in attributes
    assert attributes["id"] == '{"index":4,"type":"pick-image"}'  # as Dash writes a pattern-matching id
    assert json.loads(attributes["id"]) == {"type": ids.PICK, "index": 4}
    assert attributes["data-click-store"] == ids.QUERY_CLICK and attributes["class"] == "grid-item selected"
    assert children[0][0] == "img" and children[0][1]["src"] == "/thumbs/shapes/4.jpg"
    [zoom] = to_tree(components.zoom_button(4, "results", "circle"))
    assert zoom[1]["data-click-store"] == ids.VIEWER_CLICK
    assert zoom[1]["aria-label"] == "Show image 4 (circle) full size"
    # Every pick type reaches the controller, the full-size button the viewer.
    assert set(CLICK_STORES.values()) == {ids.QUERY_CLICK, ids.VIEWER_CLICK}
    assert {ids.PICK, ids.RESULT_PICK, ids.DUPLICATE_PICK, ids.IMAGE_PICK, ids.VIEW_IMAGE} <= set(CLICK_STORES)


def test_a_result_card_keeps_its_data_attributes_and_text():
    result = Result(rank=1, image_id=9, distance=0.25, similarity=0.75, label="circle_big", same_class=True)
    [grid] = to_tree(components.results_grid("shapes", [result], metric="cosine"))
    card = grid[2][0]
    assert card[1]["class"] == "result-card same" and card[1]["data-image-id"] == "9"
    assert card[1]["data-same"] == "true" and card[1]["data-distance"] == "0.25"

    def texts(nodes):
        return "".join(n if isinstance(n, str) else texts(n[2]) for n in nodes)

    assert "#1" in texts([card]) and "circle_big" in texts([card]) and "✓ same class" in texts([card])


def test_only_html_components_and_known_props_convert():
    with pytest.raises(ValueError, match="only dash.html components"):
        to_tree(html.Div(dcc.Graph(id="g")))
    with pytest.raises(ValueError, match="contentEditable"):
        to_tree(html.Div("x", contentEditable="true"))


def test_the_component_carries_its_tree_and_attributes():
    panel = static(DUPLICATES, html.Summary("Duplicates"), tag="details", className="duplicates-panel")
    props = panel.to_plotly_json()
    assert props["namespace"] == "playground_static" and props["type"] == "StaticHtml"
    assert props["props"] == {"id": DUPLICATES, "tree": [["summary", {}, ["Duplicates"]]], "tag": "details",
                              "className": "duplicates-panel"}
    assert StaticHtml(id="x", **{"aria-live": "polite"}).to_plotly_json()["props"]["aria-live"] == "polite"
    with pytest.raises(TypeError):
        StaticHtml(id="x", children="no children")
